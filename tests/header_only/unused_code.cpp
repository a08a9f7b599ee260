// Header-only check (ctest header_only.unused_code): a program compiles only what it asks for.
// This one trains a plain mlp() under a GradientMonitor with per-sample mode off, as the
// README's first program does; tests/header_only/check_unused_code.cmake reads its object file's
// symbols and fails if it compiled the per-sample reductions (the monitor's options hold their
// code only where per-sample options are written) or the layers a plain mlp() does not build
// (batch norm, layer norm, dropout, residual blocks: the builder's options hold their makers).
#include <gradscope/gradscope.hpp>

#include <cstdio>
#include <vector>

int main() {
    using namespace gradscope;
    Rng rng(1);
    const auto x = TensorD::constant(rng.normal_matrix<double>(32, 6));
    std::vector<int> y(32);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int>(i % 3);
    auto net = mlp<double>({.widths = {6, 16, 3}, .activation = Tanh{}, .seed = 2});
    Adam<double> adam(net->parameters(), {.lr = 1e-2});
    diag::GradientMonitor<double> monitor(*net, {.keep_last = 1});
    double first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
        adam.zero_grad();
        TensorD loss = cross_entropy((*net)(x), y);
        loss.backward();
        adam.step();
        (step == 0 ? first : last) = loss.item();
    }
    std::printf("loss %g -> %g, first layer |dL/dW| %g\n", first, last,
                monitor.last().layers().front().weight_grad_norm);
    return last < first ? 0 : 1;
}
