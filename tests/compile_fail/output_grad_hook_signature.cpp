// An output-gradient hook takes (Module&, MatrixView<T> dL/dz), not the output tensor.
// expect-error: OutputGradHookFor
#include <gradscope/nn.hpp>

int main() {
    auto net = gradscope::mlp<float>({.widths = {4, 8, 2}});
    auto handle = net->register_output_grad_hook(
        [](gradscope::Module<float>&, const gradscope::Tensor<float>&) {});
}
