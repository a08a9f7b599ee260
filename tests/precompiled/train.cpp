// Precompiled-mode check (ctest precompiled.same_results): this program is built twice, once
// header-only and once against gradscope::precompiled, and tests/precompiled/compare.cmake
// checks that both print the same thing. It prints every step's loss as a hexadecimal float,
// so "the same" means bit for bit. It reaches, in float and in double, the layers, ops,
// losses and optimisers that the precompiled library provides, so that the precompiled build
// also proves they all link.
#include <gradscope/gradscope.hpp>

#include <cstdio>
#include <vector>

namespace {

using namespace gradscope;

// A normalised, residual, dropout MLP on a classification loss, trained by Adam with clipping.
template <class T>
void classify(Normalization norm, const char* label) {
    Rng rng(1);
    const auto x = Tensor<T>::constant(rng.normal_matrix<T>(32, 16));
    std::vector<int> labels(32);
    for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(rng.below(4));
    auto net = mlp<T>({.widths = {16, 24, 24, 24, 4},
                       .activation = GELU{},
                       .init = init::he_normal(),
                       .norm = norm,
                       .residual = true,
                       .dropout = 0.1,
                       .seed = 2});
    Adam<T> adam(net->parameters(), {.lr = 1e-2});
    for (int step = 0; step < 5; ++step) {
        adam.zero_grad();
        Tensor<T> loss = cross_entropy((*net)(x), labels);
        loss.backward();
        clip_grad_norm(net->parameters(), 1.0);
        adam.step();
        std::printf("%s step %d loss %a\n", label, step, static_cast<double>(loss.item()));
    }
    net->eval();
    std::printf("%s eval loss %a\n", label,
                static_cast<double>(cross_entropy((*net)(x), labels).item()));
}

// A plain tanh MLP on a regression loss built from elementary ops, trained by SGD with momentum
// under a gradient monitor.
template <class T>
void regress(const char* label) {
    Rng rng(3);
    const auto x = Tensor<T>::constant(rng.normal_matrix<T>(16, 8));
    const auto y = Tensor<T>::constant(rng.normal_matrix<T>(16, 2));
    auto net = mlp<T>({.widths = {8, 12, 2}, .activation = Tanh{}, .seed = 4});
    diag::GradientMonitor<T> monitor(*net);
    SGD<T> sgd(net->parameters(), {.lr = 0.05, .momentum = 0.9});
    for (int step = 0; step < 5; ++step) {
        sgd.zero_grad();
        const Tensor<T> diff = (*net)(x)-y;
        Tensor<T> loss = mean(square(diff)) + 0.5 * mse_loss(sigmoid(diff), relu(diff));
        loss.backward();
        sgd.step();
        std::printf("%s step %d loss %a\n", label, step, static_cast<double>(loss.item()));
    }
    const diag::GradientProfile& profile = monitor.last();
    std::printf("%s monitored layers %zu, first output-gradient norm %a\n", label, profile.size(),
                profile.layers().front().output_grad_norm);
}

}  // namespace

int main() {
    classify<float>(Normalization::batch, "float batch-norm");
    classify<double>(Normalization::layer, "double layer-norm");
    regress<float>("float");
    regress<double>("double");
}
