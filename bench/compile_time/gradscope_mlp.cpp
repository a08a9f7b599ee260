// Compile-time probe (scripts/bench.sh times compiling this file): a program that includes
// gradscope.hpp and trains an MLP. Its twin, eigen_mlp.cpp, does the same against Eigen alone.
// It is timed header-only and with -DGRADSCOPE_PRECOMPILED (as when linking gradscope::precompiled).
// -DPROBE_PART_HEADERS: the same program including only the part headers it uses
// (nn.hpp and optim.hpp).
#ifdef PROBE_PART_HEADERS
#include <gradscope/nn.hpp>
#include <gradscope/optim.hpp>
#else
#include <gradscope/gradscope.hpp>
#endif

#include <cstdio>

int main() {
    using namespace gradscope;
    Rng rng(1);
    const auto x = TensorF::constant(rng.normal_matrix<float>(64, 32, 0.0, 1.0));
    const auto y = TensorF::constant(rng.normal_matrix<float>(64, 8, 0.0, 1.0));
    auto net = mlp<float>(
        {.widths = {32, 64, 64, 8}, .activation = ReLU{}, .init = init::he_normal(), .seed = 2});
    SGD<float> sgd(net->parameters(), {.lr = 0.01});
    float loss_value = 0;
    for (int step = 0; step < 100; ++step) {
        sgd.zero_grad();
        TensorF loss = mse_loss((*net)(x), y);
        loss.backward();
        sgd.step();
        loss_value = loss.item();
    }
    std::printf("final loss %g\n", static_cast<double>(loss_value));
}
