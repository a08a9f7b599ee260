// Compile-time probe (scripts/bench.sh times compiling this file): the program a newcomer writes
// first, in double: an MLP classifier trained with Adam on cross-entropy, a GradientMonitor
// watching its layers, and NoGradGuard for the evaluation. Its twin, eigen_newcomer.cpp, does the
// same against Eigen alone.
// -DPROBE_PART_HEADERS: the same program including only the part headers it uses
// (diag.hpp, nn.hpp and optim.hpp).
#ifdef PROBE_PART_HEADERS
#include <gradscope/diag.hpp>
#include <gradscope/nn.hpp>
#include <gradscope/optim.hpp>
#else
#include <gradscope/gradscope.hpp>
#endif

#include <cstdio>
#include <vector>

int main() {
    using namespace gradscope;
    Rng rng(1);
    const auto x = TensorD::constant(rng.normal_matrix<double>(64, 20, 0.0, 1.0));
    std::vector<int> y(64);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int>(i % 4);

    auto net = mlp<double>({.widths = {20, 64, 64, 4},
                            .activation = Tanh{},
                            .init = init::xavier_normal(),
                            .seed = 2});
    Adam<double> adam(net->parameters(), {.lr = 1e-3});
    diag::GradientMonitor<double> monitor(*net, {.keep_last = 1});
    for (int step = 0; step < 100; ++step) {
        adam.zero_grad();
        TensorD loss = cross_entropy((*net)(x), y);
        loss.backward();
        adam.step();
    }

    NoGradGuard no_grad;
    const Matrix<double> logits = (*net)(x).value();
    int correct = 0;
    for (Index i = 0; i < logits.rows(); ++i) {
        Index predicted = 0;
        logits.row(i).maxCoeff(&predicted);
        correct += predicted == y[static_cast<std::size_t>(i)] ? 1 : 0;
    }
    std::printf("accuracy %d/64, first layer |dL/dW| %g\n", correct,
                monitor.last().layers().front().weight_grad_norm);
}
