// A parameter-gradient hook takes the module alone (the gradients are in its parameters), not a
// gradient matrix.
// expect-error: ParamGradHookFor
#include <gradscope/nn.hpp>

int main() {
    auto net = gradscope::mlp<float>({.widths = {4, 8, 2}});
    auto handle = net->register_param_grad_hook([](gradscope::MatrixView<float>) {});
}
