// The README's first example, compiled by the build so that it cannot rot.
#include <gradscope/gradscope.hpp>

#include <iostream>

int main() {
    using namespace gradscope;
    Rng rng(42);
    auto x = TensorD::constant(rng.normal_matrix<double>(4, 3));             // a batch of 4 samples
    auto w = TensorD::parameter(rng.normal_matrix<double>(2, 3, 0.0, 0.5));  // [out x in]
    auto b = TensorD::parameter(Matrix<double>::Zero(1, 2));

    auto loss = mean(square(tanh(linear(x, w, b))));  // records the graph as it runs
    loss.backward();                                  // walks it once, in reverse

    std::cout << "loss = " << loss.item() << "\ndL/dW =\n" << w.grad() << "\n";
}
