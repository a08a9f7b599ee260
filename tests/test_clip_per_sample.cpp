// PerSampleClipper: the clipped gradient equals explicit per-sample clipping then summing (one
// backward per sample, on that sample's own loss), for both loss reductions, with and without
// residual blocks; with C above every sample's norm it is the plain gradient; its noise has the
// documented variance and is reproducible from the seed; and what it cannot do is refused.
#include "support/per_sample_problems.hpp"
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

using Net = NetD;
using Clipper = PerSampleClipper<double>;

// Every trained parameter's gradient, flattened in parameters() order.
std::vector<double> flat_grads(const Net& net) {
    std::vector<double> out;
    for (const auto& p : net->parameters()) {
        if (!p.requires_grad()) continue;
        const auto g = p.grad();
        out.insert(out.end(), g.data(), g.data() + g.size());
    }
    return out;
}

double norm_of(const std::vector<double>& v) {
    double sum = 0.0;
    for (double x : v) sum += x * x;
    return std::sqrt(sum);
}

// Sample i's own gradient by a backward on a batch of one (whose loss is l_i under either
// reduction).
std::vector<std::vector<double>> per_sample_gradients(Net& net, const Problem& p) {
    std::vector<std::vector<double>> out;
    for (Index i = 0; i < p.batch(); ++i) {
        net->zero_grad();
        p.loss(net, i, 1).backward();
        out.push_back(flat_grads(net));
    }
    return out;
}

// sum_i min(1, C/|g_i|) g_i, divided by B for a mean.
std::vector<double> explicit_clipped(const std::vector<std::vector<double>>& g, double max_norm,
                                     Reduction reduction) {
    std::vector<double> sum(g.front().size(), 0.0);
    for (const auto& gi : g) {
        const double n = norm_of(gi);
        const double c = n > max_norm ? max_norm / n : 1.0;
        for (std::size_t j = 0; j < sum.size(); ++j) sum[j] += c * gi[j];
    }
    if (reduction == Reduction::mean) {
        for (double& s : sum) s /= static_cast<double>(g.size());
    }
    return sum;
}

// The clipper's result on the whole batch: backward, then clip(C).
std::vector<double> clipped_by_clipper(Net& net, const Problem& p, double max_norm,
                                       PerSampleClipResult* result = nullptr) {
    Clipper clipper(*net, {.loss_reduction = p.reduction});
    net->zero_grad();
    p.loss(net, 0, p.batch()).backward();
    const PerSampleClipResult r = clipper.clip(max_norm);
    if (result != nullptr) *result = r;
    return flat_grads(net);
}

void check_same(const std::vector<double>& got, const std::vector<double>& expected) {
    REQUIRE(got.size() == expected.size());
    double scale = 0.0;
    for (double e : expected) scale = std::max(scale, std::abs(e));
    for (std::size_t j = 0; j < got.size(); ++j) {
        INFO("entry " << j << ": got " << got[j] << ", expected " << expected[j]);
        REQUIRE(std::abs(got[j] - expected[j]) <= 1e-10 * std::max(1.0, scale));
    }
}

// C between the two middle sample norms, so that some samples are clipped and some are not
// (and none sits on the bound, where rounding would decide).
void check_against_explicit_clipping(Net net, const Problem& p) {
    const auto g = per_sample_gradients(net, p);
    std::vector<double> norms;
    for (const auto& gi : g) norms.push_back(norm_of(gi));
    std::vector<double> sorted = norms;
    std::sort(sorted.begin(), sorted.end());
    const std::size_t middle = sorted.size() / 2;
    const double max_norm = 0.5 * (sorted[middle - 1] + sorted[middle]);
    PerSampleClipResult result;
    const auto got = clipped_by_clipper(net, p, max_norm, &result);
    CHECK(result.batch == static_cast<std::size_t>(p.batch()));
    CHECK(result.clipped ==
          static_cast<std::size_t>(std::count_if(norms.begin(), norms.end(),
                                                 [max_norm](double n) { return n > max_norm; })));
    CHECK(result.clipped > 0);
    CHECK(result.clipped < static_cast<std::size_t>(p.batch()));
    check_same(got, explicit_clipped(g, max_norm, p.reduction));
}

// The noise the clipper adds: the gradient of the same batch clipped with noise, less it
// clipped without. `draws` clips of the same backward, concatenated.
std::vector<double> noise_of(Net& net, const Problem& p, double max_norm, double sigma,
                             std::uint64_t seed, int draws) {
    const auto noiseless = clipped_by_clipper(net, p, max_norm);
    Clipper clipper(*net, {.loss_reduction = p.reduction});
    Rng rng(seed);
    std::vector<double> noise;
    for (int d = 0; d < draws; ++d) {
        net->zero_grad();
        p.loss(net, 0, p.batch()).backward();
        clipper.clip(max_norm, sigma, rng);
        const auto noisy = flat_grads(net);
        for (std::size_t j = 0; j < noisy.size(); ++j) noise.push_back(noisy[j] - noiseless[j]);
    }
    return noise;
}

// The noise is N(0, s^2) per entry, s = sigma C (/ B for a mean). With the mean known to be 0,
// v = sum(x^2)/n estimates s^2 with standard error s^2 sqrt(2/n) (the variance of x^2 is 2 s^4
// for a normal x), and the sample mean has standard error s/sqrt(n). Five standard errors: an
// implementation with the documented variance fails with probability below 1e-6, and n (over
// 40 000 entries) makes five standard errors about 3.5 % of s^2, so a wrong factor (a missing
// 1/B, C instead of sigma C, noise added twice) fails by far.
void check_noise_variance(Reduction reduction) {
    Net net = mlp<double>({.widths = {5, 40, 40, 3}, .activation = Tanh{}, .seed = 31});
    const Problem p = regression(reduction);
    const double max_norm = 0.5, sigma = 1.3;
    const auto noise = noise_of(net, p, max_norm, sigma, 77, 20);
    const double n = static_cast<double>(noise.size());
    REQUIRE(n > 40000);
    const double s =
        sigma * max_norm / (reduction == Reduction::mean ? static_cast<double>(p.batch()) : 1.0);
    double sum = 0.0, sum_sq = 0.0;
    for (double x : noise) {
        sum += x;
        sum_sq += x * x;
    }
    const double variance = sum_sq / n;
    INFO("empirical variance " << variance << ", expected " << s * s);
    CHECK(std::abs(variance - s * s) <= 5.0 * s * s * std::sqrt(2.0 / n));
    CHECK(std::abs(sum / n) <= 5.0 * s / std::sqrt(n));
}

std::string refusal(const std::function<void()>& f) {
    try {
        f();
    } catch (const value_error& e) {
        return e.what();
    }
    return "(no value_error)";
}

// One Linear called twice in a forward: its rows are no longer one sample's gradient each.
class Twice : public Module<double> {
public:
    Twice() {
        Rng rng(3);
        layer_ = this->register_module("layer", std::make_shared<Linear<double>>(4, 4, rng));
    }
    TensorD forward_impl(const TensorD& x) override { return (*layer_)((*layer_)(x)); }
    [[nodiscard]] std::string type_name() const override { return "Twice"; }

private:
    std::shared_ptr<Linear<double>> layer_;
};

}  // namespace

TEST_CASE("per-sample clipping equals explicit per-sample clipping then summing: plain mlp",
          "[clip_per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_clipping(plain_net(), regression(r));
        check_against_explicit_clipping(plain_net(), classification(r));
    }
}

TEST_CASE("per-sample clipping equals explicit per-sample clipping then summing: residual blocks",
          "[clip_per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        check_against_explicit_clipping(residual_net(), regression(r));
        check_against_explicit_clipping(residual_net(), classification(r));
    }
}

TEST_CASE("per-sample clipping without biases equals explicit clipping", "[clip_per_sample]") {
    check_against_explicit_clipping(
        mlp<double>({.widths = {5, 7, 3}, .activation = Tanh{}, .bias = false, .seed = 13}),
        regression(Reduction::mean));
}

TEST_CASE("per-sample clipping leaves frozen parameters out of the norms and the result",
          "[clip_per_sample]") {
    Net net = plain_net();
    auto linears = net->linear_layers();
    linears[0].second->weight().set_requires_grad(false);
    linears[0].second->bias().set_requires_grad(false);
    linears[1].second->weight().set_requires_grad(false);
    check_against_explicit_clipping(net, regression(Reduction::mean));
}

TEST_CASE("with C above every sample's norm the clipped gradient is the plain batch gradient",
          "[clip_per_sample]") {
    for (Reduction r : {Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(r));
        Net net = residual_net();
        const Problem p = regression(r);
        net->zero_grad();
        p.loss(net, 0, p.batch()).backward();
        const auto plain = flat_grads(net);
        PerSampleClipResult result;
        const auto got = clipped_by_clipper(net, p, 1e12, &result);
        CHECK(result.clipped == 0);
        check_same(got, plain);
    }
}

TEST_CASE("sample_norms are the explicit per-sample gradient norms", "[clip_per_sample]") {
    Net net = plain_net();
    const Problem p = classification(Reduction::mean);
    const auto g = per_sample_gradients(net, p);
    Clipper clipper(*net);
    net->zero_grad();
    p.loss(net, 0, p.batch()).backward();
    clipper.clip(1.0);
    REQUIRE(clipper.sample_norms().size() == g.size());
    for (std::size_t i = 0; i < g.size(); ++i) {
        CHECK(std::abs(clipper.sample_norms()[i] - norm_of(g[i])) <= 1e-10);
    }
}

TEST_CASE("the noise has variance (sigma C)^2 for a summed loss", "[clip_per_sample]") {
    check_noise_variance(Reduction::sum);
}

TEST_CASE("the noise has variance (sigma C / B)^2 for a mean loss", "[clip_per_sample]") {
    check_noise_variance(Reduction::mean);
}

TEST_CASE("the same seed gives the same noise, another seed other noise", "[clip_per_sample]") {
    Net net = plain_net();
    const Problem p = regression(Reduction::mean);
    const auto a = noise_of(net, p, 0.5, 1.0, 5, 1);
    const auto b = noise_of(net, p, 0.5, 1.0, 5, 1);
    const auto c = noise_of(net, p, 0.5, 1.0, 6, 1);
    CHECK(a == b);
    CHECK(a != c);
}

TEST_CASE("per-sample clipping refuses bad bounds and noise multipliers", "[clip_per_sample]") {
    Net net = plain_net();
    Clipper clipper(*net);
    const Problem p = regression(Reduction::mean);
    Rng rng(1);
    const double inf = std::numeric_limits<double>::infinity();
    const double nan = std::numeric_limits<double>::quiet_NaN();
    for (double bad : {0.0, -1.0, inf, nan}) {
        INFO("max_norm " << bad);
        net->zero_grad();
        p.loss(net, 0, p.batch()).backward();
        CHECK(refusal([&] { clipper.clip(bad); }).find("max_norm") != std::string::npos);
    }
    for (double bad : {-0.5, inf, nan}) {
        INFO("noise_multiplier " << bad);
        CHECK(refusal([&] { clipper.clip(1.0, bad, rng); }).find("noise_multiplier") !=
              std::string::npos);
    }
}

TEST_CASE("per-sample clipping refuses batch norm and layer norm, naming the module",
          "[clip_per_sample]") {
    Net bn = mlp<double>({.widths = {5, 6, 3}, .norm = Normalization::batch, .seed = 1});
    const std::string bn_message = refusal([&] { Clipper c(*bn); });
    CHECK(bn_message.find("layers.0.") != std::string::npos);
    CHECK(bn_message.find("BatchNorm1d") != std::string::npos);
    CHECK(bn_message.find("couples the samples") != std::string::npos);
    Net ln = mlp<double>({.widths = {5, 6, 3}, .norm = Normalization::layer, .seed = 1});
    const std::string ln_message = refusal([&] { Clipper c(*ln); });
    CHECK(ln_message.find("layers.0.") != std::string::npos);
    CHECK(ln_message.find("LayerNorm") != std::string::npos);
    CHECK(ln_message.find("not a Linear's weight or bias") != std::string::npos);
}

TEST_CASE("per-sample clipping refuses a clip before a backward and a second clip",
          "[clip_per_sample]") {
    Net net = plain_net();
    Clipper clipper(*net);
    const Problem p = regression(Reduction::mean);
    CHECK(refusal([&] { clipper.clip(1.0); }).find("before a backward") != std::string::npos);
    net->zero_grad();
    TensorD loss = p.loss(net, 0, p.batch());
    CHECK(refusal([&] { clipper.clip(1.0); }).find("before a backward") != std::string::npos);
    loss.backward();
    clipper.clip(1.0);
    CHECK(refusal([&] { clipper.clip(1.0); }).find("before a backward") != std::string::npos);
}

TEST_CASE("per-sample clipping refuses a Linear called twice in one forward", "[clip_per_sample]") {
    Twice net;
    Clipper clipper(net, {.loss_reduction = Reduction::sum});
    sum(net(TensorD::constant(normal(3, 4, 1)))).backward();
    const std::string message = refusal([&] { clipper.clip(1.0); });
    CHECK(message.find("layer (Linear) received 2 output gradients") != std::string::npos);
}

TEST_CASE("per-sample clipping refuses a loss reduction other than mean or sum",
          "[clip_per_sample]") {
    Net net = plain_net();
    CHECK(refusal([&] {
              Clipper c(*net, {.loss_reduction = Reduction::none});
          }).find("loss_reduction") != std::string::npos);
}
