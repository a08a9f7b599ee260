// Precompiled-mode check (ctest precompiled.part_headers): a program that includes only the parts
// it uses, nn.hpp, optim.hpp and diag.hpp, rather than gradscope.hpp. Each part header declares
// its own float and double specialisations `extern template` in precompiled mode, so this file
// must not compile them: tests/precompiled/check_part_headers.cmake reads its object file's
// symbols and fails if it defines the layers, the loss, the reverse pass, the second-order pass
// or the Lanczos iteration it calls, and runs the program, which must link against
// gradscope::precompiled, train, and measure the trained network's sharpness.
#include <gradscope/diag.hpp>
#include <gradscope/nn.hpp>
#include <gradscope/optim.hpp>

#include <cstdio>

int main() {
    using namespace gradscope;
    Rng rng(1);
    const auto x = TensorF::constant(rng.normal_matrix<float>(16, 4));
    const auto y = TensorF::constant(rng.normal_matrix<float>(16, 2));
    auto net = mlp<float>({.widths = {4, 8, 2}, .activation = Tanh{}, .seed = 2});
    SGD<float> sgd(net->parameters(), {.lr = 0.05});
    float first = 0, last = 0;
    for (int step = 0; step < 20; ++step) {
        sgd.zero_grad();
        TensorF loss = mse_loss((*net)(x), y);
        loss.backward();
        sgd.step();
        (step == 0 ? first : last) = loss.item();
    }
    Hessian<float> hessian(mse_loss((*net)(x), y), *net);
    const diag::EigenEstimate top = diag::hessian_top_eigenvalues(hessian);
    std::printf("loss %g -> %g, sharpness %g\n", static_cast<double>(first),
                static_cast<double>(last), top.values.at(0));
    return last < first && top.values.at(0) > 0 ? 0 : 1;
}
