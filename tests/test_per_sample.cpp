// The monitor's per-sample mode: per-sample gradient norms, tr Sigma, the gradient noise scale,
// the critical batch size, the GSNR and Cockpit's three batch-size tests, per layer and for the
// network, equal the same statistics computed from explicit per-sample gradients (one forward
// and backward per sample, on that sample's own loss), for both loss reductions, with and
// without residual blocks; the cases with a known answer (identical samples, opposite samples,
// all-zero gradients, one sample, the mode off) come out as documented; and the histogram of
// the norms puts each sample in the bin its edges say.
#include "support/per_sample_problems.hpp"
#include "support/testing.hpp"

#include <gradscope/diag/json_report.hpp>
#include <gradscope/gradscope.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

using Net = NetD;
using Monitor = diag::GradientMonitor<double>;

// Sample i's gradient of its own loss term, every watched Linear's weight and bias flattened:
// grads[layer][i] is a vector of that layer's parameters.
using PerSampleGrads = std::vector<std::vector<std::vector<double>>>;

// The watched layers' weight and bias (a LayerNorm's scale and shift), in the monitor's order:
// every Linear, and every LayerNorm when `layer_norms`.
std::vector<std::pair<TensorD, TensorD>> watched_parameters(Net& net, bool layer_norms) {
    std::vector<std::pair<TensorD, TensorD>> out;
    for (auto& [path, module] : net->named_modules()) {
        if (auto* linear = dynamic_cast<Linear<double>*>(module)) {
            out.emplace_back(linear->weight(), linear->has_bias() ? linear->bias() : TensorD());
        } else if (auto* norm = dynamic_cast<LayerNorm<double>*>(module); norm && layer_norms) {
            out.emplace_back(norm->weight(), norm->bias());
        }
    }
    return out;
}

PerSampleGrads explicit_per_sample_gradients(Net& net, const Problem& p, bool layer_norms = false) {
    const auto layers = watched_parameters(net, layer_norms);
    PerSampleGrads grads(layers.size(), std::vector<std::vector<double>>(p.batch()));
    for (Index i = 0; i < p.batch(); ++i) {
        net->zero_grad();
        // A batch of one: its loss with either reduction is the sample's own term l_i.
        p.loss(net, i, 1).backward();
        for (std::size_t l = 0; l < layers.size(); ++l) {
            auto& g = grads[l][static_cast<std::size_t>(i)];
            const auto w = layers[l].first.grad();
            g.assign(w.data(), w.data() + w.size());
            if (layers[l].second.defined()) {
                const auto b = layers[l].second.grad();
                g.insert(g.end(), b.data(), b.data() + b.size());
            }
        }
    }
    return grads;
}

// The statistics from explicit per-sample gradients, computed the textbook way (two passes:
// the mean, then deviations from it) rather than with the monitor's one-pass formulas.
struct Expected {
    std::vector<double> norms;  // |g_i|, batch order
    double mean_sq = 0.0;       // |g_bar|^2
    double trace = 0.0;
    double noise_scale = 0.0;
    double gsnr = 0.0;
    double critical_batch_size = 0.0;
    double norm_test = 0.0;
    double inner_product_test = 0.0;
    double orthogonality_test = 0.0;
};

double mean_of(const std::vector<double>& v) {
    double sum = 0.0;
    for (double x : v) sum += x;
    return sum / static_cast<double>(v.size());
}

double quantile7(std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    const double h = static_cast<double>(v.size() - 1) * p;
    const auto lo = static_cast<std::size_t>(std::floor(h));
    const std::size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (h - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

// Cockpit's three tests from their definitions (Byrd et al. 2012 eq. 3.9, Bollapragada et al.
// 2018 eqs. 2.6 and 3.3): the mean, each sample's difference from it, its inner product with it
// and its part orthogonal to it, formed as vectors.
void batch_size_tests_from(const std::vector<std::vector<double>>& g, Expected& e) {
    const std::size_t batch = g.size();
    const std::size_t n = g.front().size();
    std::vector<double> mean(n, 0.0);
    for (const auto& gi : g) {
        for (std::size_t j = 0; j < n; ++j) mean[j] += gi[j] / static_cast<double>(batch);
    }
    double mean_sq = 0.0;
    for (double m : mean) mean_sq += m * m;
    double spread = 0.0, along = 0.0, across = 0.0;
    for (const auto& gi : g) {
        double dot = 0.0;
        for (std::size_t j = 0; j < n; ++j) dot += gi[j] * mean[j];
        along += (dot - mean_sq) * (dot - mean_sq);
        for (std::size_t j = 0; j < n; ++j) {
            spread += (gi[j] - mean[j]) * (gi[j] - mean[j]);
            const double orthogonal = gi[j] - dot / mean_sq * mean[j];
            across += orthogonal * orthogonal;
        }
    }
    const double scale = static_cast<double>(batch * (batch - 1));
    e.norm_test = std::sqrt(spread / (scale * mean_sq));
    e.inner_product_test = std::sqrt(along / (scale * mean_sq * mean_sq));
    e.orthogonality_test = std::sqrt(across / (scale * mean_sq));
}

// g[i] is sample i's gradient over the parameters taken together.
Expected expected_from(const std::vector<std::vector<double>>& g) {
    const std::size_t batch = g.size();
    const std::size_t n = g.front().size();
    Expected e;
    double gsnr_sum = 0.0;
    std::size_t gsnr_count = 0;
    for (std::size_t j = 0; j < n; ++j) {
        double mean = 0.0;
        for (std::size_t i = 0; i < batch; ++i) mean += g[i][j];
        mean /= static_cast<double>(batch);
        double deviations = 0.0;
        for (std::size_t i = 0; i < batch; ++i) deviations += (g[i][j] - mean) * (g[i][j] - mean);
        e.mean_sq += mean * mean;
        e.trace += deviations / static_cast<double>(batch - 1);
        const double variance = deviations / static_cast<double>(batch);
        if (variance > 0.0) {
            gsnr_sum += mean * mean / variance;
            ++gsnr_count;
        }
    }
    for (const auto& gi : g) {
        double sq = 0.0;
        for (double v : gi) sq += v * v;
        e.norms.push_back(std::sqrt(sq));
    }
    e.noise_scale = e.trace / (e.mean_sq - e.trace / static_cast<double>(batch));
    e.gsnr = gsnr_sum / static_cast<double>(gsnr_count);
    e.critical_batch_size = std::max(0.0, e.noise_scale);
    batch_size_tests_from(g, e);
    return e;
}

// The network's parameters taken together, per sample.
std::vector<std::vector<double>> concatenated(const PerSampleGrads& grads) {
    std::vector<std::vector<double>> out(grads.front().size());
    for (const auto& layer : grads) {
        for (std::size_t i = 0; i < layer.size(); ++i) {
            out[i].insert(out[i].end(), layer[i].begin(), layer[i].end());
        }
    }
    return out;
}

void check_close(double actual, double expected, const char* what) {
    INFO(what << ": monitor " << actual << ", explicit " << expected);
    CHECK(std::abs(actual - expected) <= 1e-10 * std::abs(expected));
}

void check_layer(const diag::LayerStats& s, const Expected& e, bool gsnr) {
    INFO("layer " << s.name);
    REQUIRE(s.per_sample_sq_norms.size() == e.norms.size());
    for (std::size_t i = 0; i < e.norms.size(); ++i) {
        check_close(std::sqrt(s.per_sample_sq_norms[i]), e.norms[i], "|g_i|");
    }
    check_close(s.per_sample_norm_mean, mean_of(e.norms), "mean");
    check_close(s.per_sample_norm_max, *std::max_element(e.norms.begin(), e.norms.end()), "max");
    check_close(s.per_sample_norm_q10, quantile7(e.norms, 0.1), "q10");
    check_close(s.per_sample_norm_q50, quantile7(e.norms, 0.5), "q50");
    check_close(s.per_sample_norm_q90, quantile7(e.norms, 0.9), "q90");
    check_close(s.mean_grad_sq_norm, e.mean_sq, "|g_bar|^2");
    check_close(s.trace_covariance, e.trace, "tr Sigma");
    check_close(s.gradient_noise_scale, e.noise_scale, "B_simple");
    if (gsnr) {
        check_close(s.gsnr, e.gsnr, "GSNR");
    } else {
        CHECK(std::isnan(s.gsnr));
        CHECK(std::isnan(s.gsnr_parameters));
    }
    check_close(s.critical_batch_size, e.critical_batch_size, "B_crit");
    check_close(s.norm_test, e.norm_test, "theta_norm");
    check_close(s.inner_product_test, e.inner_product_test, "theta_inner");
    check_close(s.orthogonality_test, e.orthogonality_test, "nu_orth");
}

// The monitor's record of one batch step on `p`, against the explicit per-sample loop.
// With `options` (per-sample mode on, the problem's reduction); a selector that takes
// LayerNorms compares them too.
void check_against_explicit_loop(Net net, const Problem& p, Monitor::Options options = {}) {
    // Written whole: options hold the reductions' code only where per-sample options are written
    // (PerSampleOptions::reducer).
    options.per_sample = {.enabled = true,
                          .loss_reduction = p.reduction,
                          .gsnr = options.per_sample.gsnr,
                          .every = options.per_sample.every};
    const bool layer_norms = static_cast<bool>(options.select);
    const bool gsnr = options.per_sample.gsnr;
    const PerSampleGrads grads = explicit_per_sample_gradients(net, p, layer_norms);
    Monitor monitor(*net, options);
    net->zero_grad();
    p.loss(net, 0, p.batch()).backward();
    const diag::GradientProfile& profile = monitor.last();
    REQUIRE(profile.size() == grads.size());
    for (std::size_t l = 0; l < grads.size(); ++l) {
        const Expected e = expected_from(grads[l]);
        REQUIRE(std::isfinite(e.noise_scale));  // the case checks a measured noise scale
        // ... and batch-size tests that are neither 0 nor infinite
        for (double theta : {e.norm_test, e.inner_product_test, e.orthogonality_test}) {
            REQUIRE(theta > 0.0);
            REQUIRE(std::isfinite(theta));
        }
        check_layer(profile.layers()[l], e, gsnr);
    }
    const Expected e = expected_from(concatenated(grads));
    const diag::PerSampleNetworkStats network = profile.per_sample_network();
    INFO("the network");
    CHECK(network.batch == static_cast<std::size_t>(p.batch()));
    CHECK(network.layers == grads.size());
    check_close(network.norms.mean, mean_of(e.norms), "mean");
    check_close(network.norms.max, *std::max_element(e.norms.begin(), e.norms.end()), "max");
    check_close(network.norms.q10, quantile7(e.norms, 0.1), "q10");
    check_close(network.norms.q50, quantile7(e.norms, 0.5), "q50");
    check_close(network.norms.q90, quantile7(e.norms, 0.9), "q90");
    check_close(network.mean_grad_sq_norm, e.mean_sq, "|g_bar|^2");
    check_close(network.trace_covariance, e.trace, "tr Sigma");
    check_close(network.gradient_noise_scale, e.noise_scale, "B_simple");
    if (gsnr) {
        check_close(network.gsnr, e.gsnr, "GSNR");
    } else {
        CHECK(std::isnan(network.gsnr));
    }
    check_close(network.critical_batch_size, e.critical_batch_size, "B_crit");
    check_close(network.norm_test, e.norm_test, "theta_norm");
    check_close(network.inner_product_test, e.inner_product_test, "theta_inner");
    check_close(network.orthogonality_test, e.orthogonality_test, "nu_orth");
    REQUIRE(network.per_sample_sq_norms.size() == e.norms.size());
    for (std::size_t i = 0; i < e.norms.size(); ++i) {
        check_close(std::sqrt(network.per_sample_sq_norms[i]), e.norms[i], "network |g_i|");
    }
}

// One Linear, 3 -> 1.
Net linear_model() { return mlp<double>({.widths = {3, 1}, .seed = 1}); }

diag::LayerStats one_step(Net& net, const Problem& p, Monitor::Options options = {}) {
    Monitor monitor(*net, options);
    net->zero_grad();
    p.loss(net, 0, p.batch()).backward();
    return monitor.last().layers().front();
}

}  // namespace

TEST_CASE("per-sample statistics equal an explicit per-sample loop: plain mlp, mse, mean and sum",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_loop(plain_net(), regression(r));
    }
}

TEST_CASE("per-sample statistics equal an explicit per-sample loop: plain mlp, cross-entropy",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_loop(plain_net(), classification(r));
    }
}

TEST_CASE("per-sample statistics equal an explicit per-sample loop: residual blocks",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_loop(residual_net(), regression(r));
        check_against_explicit_loop(residual_net(), classification(r));
    }
}

// A batch small against its layers: the monitor takes g_i^T g_bar from the samples' Gram
// matrices for the first two Linears (B^2 (in + out) / 2 below B in out, or below twice that
// without the GSNR: diag/per_sample_reduction.hpp) and through the mean gradient for the last
// (4 (12 + 1) = 52 >= 2 12 1, and >= 4 12 1), so both forms are checked in one network.
Net wide_net() { return mlp<double>({.widths = {8, 16, 12, 1}, .activation = Tanh{}, .seed = 13}); }

Problem small_batch_regression(Reduction reduction) {
    return {.x = normal(4, 8, 24),
            .targets = (normal(4, 1, 25, 0.3).array() + 3.0).matrix(),
            .reduction = reduction};
}

TEST_CASE("per-sample statistics equal an explicit per-sample loop: batch small against the layers",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_loop(wide_net(), small_batch_regression(r));
    }
}

// After zero_grad and one backward the weight's gradient is the mean per-sample gradient and the
// monitor takes it from there (diag/per_sample_reduction.hpp); when it is not (a second backward
// accumulated into it, or a penalty on the weight added its own term), the check must see it
// and the statistics must still be those of the samples' own gradients.
TEST_CASE("per-sample statistics when the weight's gradient is not the mean per-sample gradient",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        const Problem p = regression(r);
        Net net = plain_net();
        const PerSampleGrads grads = explicit_per_sample_gradients(net, p);
        Monitor monitor(*net, {.per_sample = {.enabled = true, .loss_reduction = r}});
        net->zero_grad();
        p.loss(net, 0, p.batch()).backward();
        p.loss(net, 0, p.batch()).backward();  // accumulates: the gradient is twice the mean
        auto linears = net->linear_layers();
        TensorD penalised = linears.front().second->weight();
        net->zero_grad();
        (p.loss(net, 0, p.batch()) + 0.3 * sum(penalised * penalised)).backward();
        REQUIRE(monitor.history().size() == 3);
        for (std::size_t step = 0; step < 3; ++step) {
            INFO("step " << step);
            for (std::size_t l = 0; l < grads.size(); ++l) {
                check_layer(monitor.history()[step].layers()[l], expected_from(grads[l]), true);
            }
        }
    }
}

// The shortcut itself: the reduction takes g_bar's weight part from the weight's gradient when
// that is this pass's Delta^T A, and forms the product when the gradient holds anything else.
TEST_CASE(
    "g_bar is taken from the weight's gradient exactly when it is the mean per-sample "
    "gradient",
    "[per_sample]") {
    const Matrix<double> a = normal(6, 4, 31), dz = normal(6, 3, 32);
    auto w = TensorD::parameter(normal(3, 4, 33));
    auto b = TensorD::parameter(Matrix<double>::Zero(1, 3));
    // dL/dz = dz: the loss is sum(z o dz), so w's gradient is dz^T a.
    sum(linear(TensorD::constant(a), w, b) * TensorD::constant(dz)).backward();
    diag::detail::PerSampleReduction<double> reduction(diag::detail::SampleLayout::outer, true);
    const auto reduce = [&] {
        reduction.input = a;
        reduction.delta = dz;
        reduction.grads = 1;
        // A mean over 6 samples: delta_i = 6 dz_i, so g_bar = dz^T a, the weight's gradient.
        return reduction.reduce(Reduction::mean, true, w);
    };
    const Matrix<double> expected = dz.transpose() * a;
    const diag::PerSampleGradients<double> taken = reduce();
    CHECK(reduction.mean_taken_from_gradient());
    CHECK(Matrix<double>(taken.mean_weight).isApprox(expected, 1e-14));

    w.mutable_grad()(1, 2) += 1e-6;  // no longer the mean: a penalty, a second pass, a hook
    const diag::PerSampleGradients<double> formed = reduce();
    CHECK_FALSE(reduction.mean_taken_from_gradient());
    CHECK(Matrix<double>(formed.mean_weight).isApprox(expected, 1e-14));
}

// LayerNorm's scale and shift: g_i = (delta_i o xhat_i, delta_i), from the captured input.
Net layer_norm_net(bool residual) {
    return mlp<double>({.widths = {5, 6, 6, 6, 3},
                        .activation = Tanh{},
                        .norm = Normalization::layer,
                        .residual = residual,
                        .seed = 14});
}

TEST_CASE("per-sample statistics equal an explicit per-sample loop: LayerNorm's scale and shift",
          "[per_sample]") {
    for (const bool residual : {false, true}) {
        for (Reduction r : {Reduction::mean, Reduction::sum}) {
            INFO((residual ? "residual" : "plain") << ", reduction " << to_string(r));
            Net net = layer_norm_net(residual);
            Monitor probe(*net, {.select = Monitor::linear_or_layer_norm});
            const auto names = probe.layer_names();
            CHECK(std::count_if(names.begin(), names.end(), [](const std::string& n) {
                      return n.ends_with(".ln");
                  }) == 3);  // the three hidden layers' LayerNorms are among the watched
            // A selected norm layer reports its scale and shift as its weight and bias.
            regression(r).loss(net, 0, 9).backward();
            for (const diag::LayerStats& l : probe.last().layers()) {
                INFO(l.name);
                CHECK(std::isfinite(l.weight_grad_norm));
                CHECK(std::isfinite(l.bias_grad_norm));
            }
            probe.detach();
            check_against_explicit_loop(net, regression(r),
                                        {.select = Monitor::linear_or_layer_norm});
            check_against_explicit_loop(net, classification(r),
                                        {.select = Monitor::linear_or_layer_norm});
        }
    }
}

// Without the GSNR the mean gradient is formed only where the inner products need it: every
// other statistic must be unchanged, in both forms of g_i^T g_bar (wide_net has both).
TEST_CASE("per-sample statistics without the GSNR: the rest unchanged, the GSNR not measured",
          "[per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_loop(wide_net(), small_batch_regression(r),
                                    {.per_sample = {.gsnr = false}});
        check_against_explicit_loop(plain_net(), classification(r),
                                    {.per_sample = {.gsnr = false}});
        check_against_explicit_loop(
            layer_norm_net(true), regression(r),
            {.select = Monitor::linear_or_layer_norm, .per_sample = {.gsnr = false}});
    }
}

TEST_CASE("per-sample mode every N steps: those steps measured as on every step, the rest not",
          "[per_sample]") {
    auto net = plain_net();
    const Problem p = regression(Reduction::mean);
    Monitor every_step(*net, {.per_sample = {.enabled = true}});
    Monitor every_third(*net, {.per_sample = {.enabled = true, .every = 3}});
    SGD<double> sgd(net->parameters(), {.lr = 0.05});
    for (int step = 0; step < 7; ++step) {
        sgd.zero_grad();
        p.loss(net, 0, p.batch()).backward();
        sgd.step();
    }
    REQUIRE(every_third.history().size() == 7);
    for (std::size_t step = 0; step < 7; ++step) {
        INFO("step " << step);
        const diag::GradientProfile& all = every_step.history()[step];
        const diag::GradientProfile& some = every_third.history()[step];
        for (std::size_t l = 0; l < all.size(); ++l) {
            const diag::LayerStats& a = all.layers()[l];
            const diag::LayerStats& b = some.layers()[l];
            CHECK(b.output_grad_norm == a.output_grad_norm);  // the rest is measured every step
            if (step % 3 == 0) {
                CHECK(b.per_sample_sq_norms == a.per_sample_sq_norms);
                CHECK(b.gradient_noise_scale == a.gradient_noise_scale);
                CHECK(b.gsnr == a.gsnr);
                CHECK(b.orthogonality_test == a.orthogonality_test);
            } else {
                CHECK(b.per_sample_sq_norms.empty());
                CHECK(std::isnan(b.gradient_noise_scale));
                CHECK(std::isnan(b.gsnr));
                CHECK(std::isnan(b.per_sample_norm_max));
            }
        }
    }
    REQUIRE_THROWS_MATCHES(Monitor(*net, {.per_sample = {.enabled = true, .every = 0}}),
                           value_error, MessageContains({"per_sample.every", "0"}));
}

// The monitor's default options hold no reductions' code (so a program that never writes
// per-sample options does not compile them: ctest header_only.unused_code); turning on
// `enabled` in them afterwards is refused with what to write instead, and writing the options
// whole works.
TEST_CASE("per-sample mode switched on in default options says how to write it", "[per_sample]") {
    auto net = plain_net();
    const Problem p = regression(Reduction::mean);
    Monitor::Options options;
    CHECK(options.per_sample.reducer == nullptr);
    options.per_sample.enabled = true;
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, options), value_error,
        MessageContains({"per_sample.enabled", ".per_sample = {.enabled = true"}));
    options.per_sample = {.enabled = true, .loss_reduction = p.reduction};
    CHECK(options.per_sample.reducer != nullptr);
    Monitor monitor(*net, options);
    net->zero_grad();
    p.loss(net, 0, p.batch()).backward();
    CHECK(monitor.last().layers().front().per_sample_sq_norms.size() ==
          static_cast<std::size_t>(p.batch()));
}

// The GSNR's mean is evaluated in chunks with packet operations (layer_statistics.hpp); it must
// be what GsnrMean::add gives one parameter at a time, for parameters left out (m = 0), of
// infinite GSNR (variance within rounding), of finite GSNR, and with a NaN or an inf among them.
TEST_CASE("the vectorised GSNR mean equals GsnrMean::add one parameter at a time", "[per_sample]") {
    const Index n = 3000;  // several chunks and a partial one
    const Matrix<double> noise = normal(1, n, 41);
    Matrix<float> g_bar(1, n), second(1, n);
    for (Index j = 0; j < n; ++j) {
        const double g = noise(0, j);
        switch (j % 4) {
            case 0:  // no sample moves it
                g_bar(0, j) = 0.0F;
                second(0, j) = 0.0F;
                break;
            case 1:  // every sample agrees: variance 0
                g_bar(0, j) = static_cast<float>(g);
                second(0, j) = static_cast<float>(g) * static_cast<float>(g);
                break;
            default:
                g_bar(0, j) = static_cast<float>(g);
                second(0, j) = static_cast<float>(g * g + 0.5 + 0.001 * static_cast<double>(j));
        }
    }
    auto scalar = [](const Matrix<float>& mean, const Matrix<float>& m) {
        diag::GsnrMean out(16, static_cast<double>(std::numeric_limits<float>::epsilon()));
        for (Index j = 0; j < mean.size(); ++j) {
            out.add(static_cast<double>(mean(0, j)), static_cast<double>(m(0, j)));
        }
        return out;
    };
    auto vectorised = [](const Matrix<float>& mean, const Matrix<float>& m) {
        const std::vector<double> sq_norms(16, 1.0);
        const diag::PerSampleGradients<float> p{
            .sq_norms = sq_norms,
            .sorted_norms = {},
            .sq_deviations = {},
            .dot_deviations = {},
            .mean_weight = ConstMatrixView<float>(mean.data(), mean.rows(), mean.cols()),
            .second_weight = ConstMatrixView<float>(m.data(), m.rows(), m.cols())};
        const diag::GsnrMean& out = diag::detail::gsnr_of(p);
        return std::pair<double, double>(out.value(), out.count());
    };
    // The same parameters with the agreeing ones left out (m = 0): a finite mean.
    Matrix<float> g_finite = g_bar, m_finite = second;
    for (Index j = 1; j < n; j += 4) {
        g_finite(0, j) = 0.0F;
        m_finite(0, j) = 0.0F;
    }
    SECTION("with agreeing parameters: +inf") {
        const diag::GsnrMean expected = scalar(g_bar, second);
        const auto [value, count] = vectorised(g_bar, second);
        CHECK(value == std::numeric_limits<double>::infinity());
        CHECK(value == expected.value());
        CHECK(count == expected.count());
    }
    SECTION("without them: a finite mean, equal up to the sum's order") {
        const diag::GsnrMean expected = scalar(g_finite, m_finite);
        const auto [value, count] = vectorised(g_finite, m_finite);
        REQUIRE(std::isfinite(expected.value()));
        CHECK(std::abs(value - expected.value()) <= 1e-12 * expected.value());
        CHECK(count == expected.count());
    }
    SECTION("a NaN or an inf takes GsnrMean::add's way") {
        Matrix<float> m = m_finite;
        m(0, 2050) = std::numeric_limits<float>::quiet_NaN();
        CHECK(std::isnan(scalar(g_finite, m).value()));
        CHECK(std::isnan(vectorised(g_finite, m).first));
        m(0, 2050) = std::numeric_limits<float>::infinity();
        CHECK(scalar(g_finite, m).value() == std::numeric_limits<double>::infinity());
        CHECK(vectorised(g_finite, m).first == std::numeric_limits<double>::infinity());
        CHECK(vectorised(g_finite, m).second == scalar(g_finite, m).count());
    }
}

TEST_CASE("identical samples: zero covariance trace, infinite GSNR, every batch-size test at 0",
          "[per_sample]") {
    const Matrix<double> row = normal(1, 5, 31);
    const Problem p{.x = row.replicate(6, 1),
                    .targets = Matrix<double>::Constant(6, 3, 0.5),
                    .reduction = Reduction::mean};
    auto net = plain_net();
    Monitor monitor(*net, {.per_sample = {.enabled = true}});
    p.loss(net, 0, p.batch()).backward();
    for (const diag::LayerStats& s : monitor.last().layers()) {
        INFO(s.name);
        CHECK(std::abs(s.trace_covariance) <=
              1e-12 * s.per_sample_norm_mean * s.per_sample_norm_mean);
        CHECK(s.gsnr == std::numeric_limits<double>::infinity());
        CHECK(s.per_sample_norm_max == Approx(s.per_sample_norm_mean).epsilon(1e-14));
        CHECK_FALSE(std::isnan(s.gradient_noise_scale));
        CHECK(std::abs(s.gradient_noise_scale) <= 1e-10);
        CHECK(s.critical_batch_size >= 0.0);
        CHECK(s.critical_batch_size <= 1e-10);
        // The deviations are rounding, set to 0 (sample_deviation): the tests are exactly 0.
        CHECK(s.norm_test == 0.0);
        CHECK(s.inner_product_test == 0.0);
        CHECK(s.orthogonality_test == 0.0);
    }
    const auto network = monitor.last().per_sample_network();
    CHECK(network.gsnr == std::numeric_limits<double>::infinity());
    CHECK(std::abs(network.gradient_noise_scale) <= 1e-10);
    CHECK(network.critical_batch_size <= 1e-10);
    CHECK(network.norm_test == 0.0);
    CHECK(network.inner_product_test == 0.0);
    CHECK(network.orthogonality_test == 0.0);
}

TEST_CASE("identical samples in float: the batch-size tests are 0 at float's rounding too",
          "[per_sample]") {
    // g_i^T g_bar through the mean gradient (5-7-6-3, batch 8), and through the samples' Gram
    // matrices for the first two Linears (8-16-12-4, batch 4; see wide_net).
    for (const std::vector<Index>& widths : {std::vector<Index>{5, 7, 6, 3}, {8, 16, 12, 4}}) {
        const Index batch = widths.front() == 5 ? 8 : 4;
        INFO("widths " << widths.front() << "-" << widths[1] << "-..., batch " << batch);
        auto net = mlp<float>({.widths = widths, .activation = Tanh{}, .seed = 11});
        diag::GradientMonitor<float> monitor(*net, {.per_sample = {.enabled = true}});
        const Matrix<float> x = normal(1, widths.front(), 31).cast<float>().replicate(batch, 1);
        const Matrix<float> targets = Matrix<float>::Constant(batch, widths.back(), 0.5F);
        mse_loss((*net)(TensorF::constant(x)), TensorF::constant(targets)).backward();
        for (const diag::LayerStats& s : monitor.last().layers()) {
            INFO(s.name);
            CHECK(s.norm_test == 0.0);
            CHECK(s.inner_product_test == 0.0);
            CHECK(s.orthogonality_test == 0.0);
        }
        CHECK(monitor.last().per_sample_network().norm_test == 0.0);
    }
}

TEST_CASE(
    "two samples with opposite gradients: zero mean gradient, noise scale not measured, tests +inf",
    "[per_sample]") {
    // A linear model with dyadic weights and inputs computes its output exactly; targets at
    // equal distances either side of it make the two residuals, so the two gradients, exact
    // opposites. The third input is 0, so no sample moves the third weight: it is left out of
    // the GSNR, which is 0 over the other three parameters (g_bar_j = 0, sigma_j^2 > 0).
    auto net = linear_model();
    auto& linear = *net->linear_layers()[0].second;
    linear.weight().data() << 0.5, -0.25, 0.75;
    linear.bias().data() << 0.125;
    Matrix<double> x(2, 3);
    x << 1.0, 2.0, 0.0, 1.0, 2.0, 0.0;  // output 0.125 for both
    Matrix<double> y(2, 1);
    y << 0.625, -0.375;
    const Problem p{.x = x, .targets = y, .reduction = Reduction::mean};
    const diag::LayerStats s = one_step(net, p, {.per_sample = {.enabled = true}});
    CHECK(s.mean_grad_sq_norm == 0.0);
    // g_i = +-(2 * 0.5) * (1, 2, 0, 1): |g_i|^2 = 6, tr Sigma = (6 + 6 - 0) / 1.
    CHECK(s.per_sample_sq_norms == std::vector<double>{6.0, 6.0});
    CHECK(s.trace_covariance == 12.0);
    CHECK(std::isnan(s.gradient_noise_scale));
    CHECK(std::isnan(s.critical_batch_size));
    CHECK(s.gsnr == 0.0);
    CHECK(s.gsnr_parameters == 3.0);
    // |g_bar| = 0 while the samples differ: no theta passes, the documented value is +inf.
    constexpr double inf = std::numeric_limits<double>::infinity();
    CHECK(s.norm_test == inf);
    CHECK(s.inner_product_test == inf);
    CHECK(s.orthogonality_test == inf);
    const auto network = diag::GradientProfile({s}).per_sample_network();
    CHECK(std::isnan(network.gradient_noise_scale));
    CHECK(std::isnan(network.critical_batch_size));
    CHECK(network.norm_test == inf);
    CHECK(network.inner_product_test == inf);
    CHECK(network.orthogonality_test == inf);
}

TEST_CASE("every sample's gradient zero: the batch-size tests are not measured", "[per_sample]") {
    // The linear model above with targets equal to its output: every residual, so every
    // gradient, is exactly 0, and there is nothing for a test to pass or fail.
    auto net = linear_model();
    auto& linear = *net->linear_layers()[0].second;
    linear.weight().data() << 0.5, -0.25, 0.75;
    linear.bias().data() << 0.125;
    Matrix<double> x(2, 3);
    x << 1.0, 2.0, 0.0, 1.0, 2.0, 0.0;
    const Problem p{.x = x, .targets = Matrix<double>::Constant(2, 1, 0.125)};
    const diag::LayerStats s = one_step(net, p, {.per_sample = {.enabled = true}});
    CHECK(s.per_sample_sq_norms == std::vector<double>{0.0, 0.0});
    CHECK(s.mean_grad_sq_norm == 0.0);
    CHECK(std::isnan(s.norm_test));
    CHECK(std::isnan(s.inner_product_test));
    CHECK(std::isnan(s.orthogonality_test));
    const diag::NormHistogram h = diag::norm_histogram(s.per_sample_sq_norms);
    CHECK(h.counts.empty());
    CHECK(h.edges.empty());
    CHECK(h.zeros == 2);
}

TEST_CASE("a batch of one: norms measured, covariance, noise scale and GSNR not measured",
          "[per_sample]") {
    auto net = plain_net();
    const Problem p{.x = normal(1, 5, 41), .targets = normal(1, 3, 42)};
    Monitor monitor(*net, {.per_sample = {.enabled = true}});
    p.loss(net, 0, 1).backward();
    for (const diag::LayerStats& s : monitor.last().layers()) {
        INFO(s.name);
        REQUIRE(s.per_sample_sq_norms.size() == 1);
        CHECK(s.per_sample_norm_q50 == Approx(std::sqrt(s.per_sample_sq_norms[0])));
        CHECK(std::isnan(s.trace_covariance));
        CHECK(std::isnan(s.gradient_noise_scale));
        CHECK(std::isnan(s.gsnr));
        CHECK(std::isnan(s.critical_batch_size));
        CHECK(std::isnan(s.norm_test));
        CHECK(std::isnan(s.inner_product_test));
        CHECK(std::isnan(s.orthogonality_test));
    }
    const auto network = monitor.last().per_sample_network();
    CHECK(network.batch == 1);
    CHECK(std::isnan(network.trace_covariance));
    CHECK(std::isnan(network.gsnr));
    CHECK(std::isnan(network.norm_test));
}

TEST_CASE("per-sample mode is off by default: nothing measured, nothing kept", "[per_sample]") {
    auto net = plain_net();
    const diag::LayerStats s = one_step(net, regression(Reduction::mean));
    CHECK(s.per_sample_sq_norms.empty());
    CHECK(s.per_sample_sq_deviations.empty());
    CHECK(s.per_sample_dot_deviations.empty());
    for (double v :
         {s.per_sample_norm_mean, s.per_sample_norm_max, s.per_sample_norm_q10,
          s.per_sample_norm_q50, s.per_sample_norm_q90, s.mean_grad_sq_norm, s.trace_covariance,
          s.gradient_noise_scale, s.gsnr, s.gsnr_parameters, s.critical_batch_size, s.norm_test,
          s.inner_product_test, s.orthogonality_test}) {
        CHECK(std::isnan(v));
    }
    CHECK(diag::GradientProfile({s}).per_sample_network().batch == 0);
}

TEST_CASE(
    "per-sample mode measures Linear (and LayerNorm) layers only and refuses a loss "
    "reduction of none",
    "[per_sample]") {
    auto net = plain_net();
    Monitor monitor(*net, {.select =
                               [](const std::string& path, Module<double>&) {
                                   return path == "layers.0.act" || path == "layers.1.linear";
                               },
                           .per_sample = {.enabled = true}});
    REQUIRE(monitor.layer_count() == 2);
    regression(Reduction::mean).loss(net, 0, 9).backward();
    CHECK(std::isnan(monitor.last().layers()[0].gsnr));
    CHECK(monitor.last().layers()[0].per_sample_sq_norms.empty());
    CHECK(std::isfinite(monitor.last().layers()[1].gsnr));
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, {.per_sample = {.enabled = true, .loss_reduction = Reduction::none}}),
        value_error, MessageContains({"per_sample.loss_reduction", "none"}));
}

TEST_CASE("the history's CSV and JSON carry the per-sample columns", "[per_sample][report]") {
    auto net = plain_net();
    Monitor monitor(*net, {.per_sample = {.enabled = true}});
    regression(Reduction::mean).loss(net, 0, 9).backward();
    std::ostringstream csv;
    diag::write_history_csv(csv, monitor.history());
    const std::string header = csv.str().substr(0, csv.str().find('\n'));
    for (const char* column : {"per_sample_norm_q90", "trace_covariance", "gradient_noise_scale",
                               "gsnr", "gsnr_parameters", "critical_batch_size", "norm_test",
                               "inner_product_test", "orthogonality_test"}) {
        CHECK(header.find(column) != std::string::npos);
    }
    const nlohmann::json j = diag::history_json(monitor.history());
    const auto& layer = j["steps"][0]["layers"][0];
    CHECK(layer["gsnr"].get<double>() == monitor.last().layers()[0].gsnr);
    CHECK(layer["gradient_noise_scale"].get<double>() ==
          monitor.last().layers()[0].gradient_noise_scale);
    CHECK(layer["orthogonality_test"].get<double>() ==
          monitor.last().layers()[0].orthogonality_test);
}

TEST_CASE("the norm histogram: log-spaced bins over the positive norms, zeros and NaN apart",
          "[per_sample][histogram]") {
    // |g_i| = 0, 1, 2, 4, 10 and one NaN, in two bins: edges 1, sqrt(10), 10.
    const std::vector<double> sq{4.0, 0.0, 100.0, 1.0, std::nan(""), 16.0};
    const diag::NormHistogram h = diag::norm_histogram(sq, 2);
    REQUIRE(h.edges.size() == 3);
    CHECK(h.edges[0] == 1.0);
    CHECK(h.edges[1] == Approx(std::sqrt(10.0)).epsilon(1e-15));
    CHECK(h.edges[2] == 10.0);
    CHECK(h.counts == std::vector<std::size_t>{2, 2});  // {1, 2} and {4, 10}: 10 in the last
    CHECK(h.zeros == 1);
    CHECK(h.nonfinite == 1);

    // Equal norms: one bin, whatever the count asked for.
    const diag::NormHistogram same = diag::norm_histogram(std::vector<double>{9.0, 9.0, 9.0}, 5);
    CHECK(same.edges == std::vector<double>{3.0, 3.0});
    CHECK(same.counts == std::vector<std::size_t>{3});
    CHECK(diag::norm_histogram(std::vector<double>{}).counts.empty());
    REQUIRE_THROWS_MATCHES(diag::norm_histogram(sq, 0), value_error,
                           MessageContains({"norm_histogram", "bin"}));
}

TEST_CASE("the norm histogram of a monitored step: every sample in the bin its edges say",
          "[per_sample][histogram]") {
    auto net = residual_net();
    Monitor monitor(*net, {.per_sample = {.enabled = true}});
    const Problem p = regression(Reduction::mean);
    p.loss(net, 0, p.batch()).backward();
    const diag::PerSampleNetworkStats network = monitor.last().per_sample_network();
    std::vector<std::vector<double>> all{network.per_sample_sq_norms};
    for (const diag::LayerStats& s : monitor.last().layers()) all.push_back(s.per_sample_sq_norms);
    for (const std::vector<double>& sq : all) {
        const diag::NormHistogram h = diag::norm_histogram(sq, 4);
        REQUIRE(h.counts.size() == 4);
        CHECK(h.zeros == 0);
        std::vector<std::size_t> expected(4, 0);
        for (double v : sq) {
            const double norm = std::sqrt(v);
            std::size_t k = 0;
            while (k + 1 < 4 && norm >= h.edges[k + 1]) ++k;
            ++expected[k];
        }
        CHECK(h.counts == expected);
        CHECK(h.edges.front() == std::sqrt(*std::min_element(sq.begin(), sq.end())));
        CHECK(h.edges.back() == std::sqrt(*std::max_element(sq.begin(), sq.end())));
        CHECK(std::is_sorted(h.edges.begin(), h.edges.end()));
    }
}
