// LSUV (Mishkin & Matas 2016): every Linear layer's output ends at unit variance on the batch,
// with and without batch norm and residual blocks, and a layer that cannot get there says why.
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>
#include <gradscope/nn/lsuv.hpp>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// Each Linear layer's output variance over the batch (averaged over units), measured here by a
// forward pass of our own, in eval mode.
std::map<std::string, double> linear_output_variances(Module<double>& net,
                                                      const Matrix<double>& x) {
    std::map<std::string, double> out;
    ScopedHooks hooks;
    for (const auto& [path, module] : net.named_modules()) {
        if (dynamic_cast<Linear<double>*>(module) == nullptr) continue;
        hooks.add(module->register_forward_hook(
            [&out, name = path](Module<double>&, const TensorD&, const TensorD& y) {
                const Matrix<double> centred = y.value().rowwise() - y.value().colwise().mean();
                out[name] = centred.squaredNorm() / static_cast<double>(centred.size());
            }));
    }
    const bool was_training = net.is_training();
    net.eval();
    const NoGradGuard no_graph;
    net(TensorD::constant(x));
    net.train(was_training);
    return out;
}

// Inputs like pixels: in [0, 1], mean 0.5, far from unit variance.
Matrix<double> pixel_batch(Index rows, Index cols, std::uint64_t seed) {
    Rng rng(seed);
    Matrix<double> x(rows, cols);
    for (Index i = 0; i < x.size(); ++i) x.data()[i] = rng.uniform(0.0, 1.0);
    return x;
}

}  // namespace

TEST_CASE("lsuv brings every Linear layer of a deep ReLU network to unit variance",
          "[init][lsuv]") {
    auto net =
        mlp<double>({.widths = {32, 64, 64, 64, 64, 64, 64, 10}, .activation = ReLU{}, .seed = 2});
    const Matrix<double> batch = pixel_batch(256, 32, 4);
    const auto before = linear_output_variances(*net, batch);
    const auto layers = init::lsuv(*net, batch, {.tolerance = 0.05});
    REQUIRE(layers.size() == 7);
    CHECK(layers.front().name == "layers.0.linear");
    CHECK(layers.back().name == "layers.6.linear");
    const auto after = linear_output_variances(*net, batch);
    for (const auto& layer : layers) {
        INFO(layer.name << ": " << layer.iterations << " rescalings, variance "
                        << before.at(layer.name) << " -> " << after.at(layer.name));
        CHECK(layer.variance == Approx(after.at(layer.name)).epsilon(1e-12));
        CHECK(std::abs(after.at(layer.name) - 1.0) <= 0.05);
        CHECK(layer.iterations >= 1);
        CHECK(layer.iterations <= 10);
    }
    // PyTorch's default init leaves the deep layers far from unit variance on such data.
    CHECK(before.at("layers.5.linear") < 0.5);

    // The batch may be a tensor: the same rescalings, bit for bit.
    auto twin =
        mlp<double>({.widths = {32, 64, 64, 64, 64, 64, 64, 10}, .activation = ReLU{}, .seed = 2});
    const auto twin_layers = init::lsuv(*twin, TensorD::constant(batch), {.tolerance = 0.05});
    REQUIRE(twin_layers.size() == layers.size());
    for (std::size_t i = 0; i < layers.size(); ++i) {
        CHECK(twin_layers[i].iterations == layers[i].iterations);
        CHECK(twin_layers[i].variance == layers[i].variance);
    }
    const auto params = net->parameters();
    const auto twin_params = twin->parameters();
    for (std::size_t i = 0; i < params.size(); ++i)
        CHECK(twin_params[i].value() == params[i].value());
}

TEST_CASE(
    "lsuv works with batch norm and residual blocks, and leaves the mode and statistics alone",
    "[init][lsuv]") {
    auto net = mlp<double>({.widths = {16, 48, 48, 48, 48, 3},
                            .activation = Tanh{},
                            .norm = Normalization::batch,
                            .residual = true,
                            .seed = 3});
    const Matrix<double> batch = pixel_batch(128, 16, 5);
    const auto buffers_before = net->named_buffers();
    std::vector<Matrix<double>> running;
    for (const auto& [name, b] : buffers_before) running.emplace_back(b.value());
    net->train();
    const auto layers = init::lsuv(*net, batch);
    CHECK(net->is_training());
    for (std::size_t i = 0; i < running.size(); ++i) {
        INFO(buffers_before[i].first);
        CHECK(buffers_before[i].second.value() == running[i]);
    }
    const auto after = linear_output_variances(*net, batch);
    REQUIRE(layers.size() == after.size());
    for (const auto& layer : layers) {
        INFO(layer.name);
        CHECK(std::abs(after.at(layer.name) - 1.0) <= 0.1);
    }
}

TEST_CASE("lsuv says which layer cannot reach unit variance, and refuses bad batches",
          "[init][lsuv][errors]") {
    auto net = mlp<double>({.widths = {8, 16, 16, 4}, .activation = ReLU{}, .seed = 1});
    const Matrix<double> batch = pixel_batch(32, 8, 6);
    REQUIRE_THROWS_MATCHES(init::lsuv(*net, Matrix<double>(0, 8)), value_error,
                           MessageContains("lsuv: the batch is empty"));
    REQUIRE_THROWS_MATCHES(init::lsuv(*net, Matrix<double>::Ones(1, 8)), value_error,
                           MessageContains("at least 2 rows"));
    Matrix<double> with_nan = batch;
    with_nan(3, 2) = std::nan("");
    REQUIRE_THROWS_MATCHES(init::lsuv(*net, with_nan), value_error, MessageContains("non-finite"));
    REQUIRE_THROWS_MATCHES(init::lsuv(*net, batch, {.tolerance = 0.0}), value_error,
                           MessageContains("tolerance"));

    // The same row repeated: the first layer's output does not vary over the batch.
    REQUIRE_THROWS_MATCHES(init::lsuv(*net, batch.row(0).replicate(32, 1).eval()), value_error,
                           MessageContains("the output of layers.0.linear has variance 0"));

    // A dead ReLU layer: no unit of layers.0 is ever positive, so layers.1 sees zeros.
    auto dead = mlp<double>({.widths = {8, 16, 16, 4}, .activation = ReLU{}, .seed = 1});
    for (const auto& [path, module] : dead->named_modules()) {
        if (path == "layers.0.linear")
            dynamic_cast<Linear<double>&>(*module).bias().data().setConstant(-1e6);
    }
    REQUIRE_THROWS_MATCHES(init::lsuv(*dead, batch, {.orthogonal_first = false}), value_error,
                           MessageContains("layers.1.linear has variance 0 on the batch: every row "
                                           "it gets is the same (a dead ReLU layer before it"));
}
