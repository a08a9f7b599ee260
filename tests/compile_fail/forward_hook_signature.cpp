// A forward hook takes (Module&, const Tensor& input, const Tensor& output), not a tensor alone.
// expect-error: ForwardHookFor
#include <gradscope/nn.hpp>

int main() {
    auto net = gradscope::mlp<float>({.widths = {4, 8, 2}});
    auto handle = net->register_forward_hook([](const gradscope::Tensor<float>&) {});
}
