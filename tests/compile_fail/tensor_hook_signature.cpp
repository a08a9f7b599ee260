// A tensor hook takes the gradient as a MatrixView<T>, not the tensor.
// expect-error: GradHookFor
#include <gradscope/nn.hpp>

int main() {
    auto x = gradscope::Tensor<float>::zeros(2, 3, true);
    auto handle = x.register_hook([](gradscope::Tensor<float>& t, int) { (void)t; });
}
