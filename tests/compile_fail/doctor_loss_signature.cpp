// diag::doctor calls the loss with the network's output alone; this one also wants the labels.
// expect-error: LossFunctionFor
#include <gradscope/diag.hpp>

int main() {
    using namespace gradscope;
    auto net = mlp<double>({.widths = {4, 8, 2}});
    const Matrix<double> x = Matrix<double>::Zero(3, 4);
    const std::vector<int> y{0, 1, 0};
    auto diagnosis = diag::doctor<double>(
        *net, x, [](const Tensor<double>& out, const std::vector<int>& labels) {
            return cross_entropy(out, labels);
        });
}
