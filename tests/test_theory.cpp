// Mean-field theory against what can be computed exactly, and against measurement where the
// quadrature is hardest (very large weights).
#include "support/testing.hpp"

#include <gradscope/diag.hpp>

using namespace gradscope;
using namespace gradscope::testing;

TEST_CASE("Gauss-Hermite integrates the moments of a standard normal exactly", "[theory]") {
    const diag::GaussHermite rule(96);
    CHECK(rule.expect([](double) { return 1.0; }) == Approx(1.0).epsilon(1e-13));
    CHECK(rule.expect([](double z) { return z * z; }) == Approx(1.0).epsilon(1e-13));
    CHECK(rule.expect([](double z) { return z * z * z * z; }) == Approx(3.0).epsilon(1e-13));
    CHECK(rule.expect([](double z) { return z > 0.0 ? 1.0 : 0.0; }) == Approx(0.5).epsilon(1e-13));
    CHECK_THROWS_AS(diag::GaussHermite(95), value_error);  // odd: a node would sit at 0
}

TEST_CASE("for ReLU chi = sigma_w^2 / 2 and for the identity chi = sigma_w^2, at every layer",
          "[theory]") {
    for (double s2 : {0.5, 2.0, 3.0}) {
        const auto relu = diag::mean_field(ReLU{}, 10, {.sigma_w2 = s2});
        for (double chi : relu.chi) CHECK(chi == Approx(s2 / 2.0).epsilon(1e-12));
        CHECK(relu.gain_per_layer == Approx(std::sqrt(s2 / 2.0)).epsilon(1e-12));
        const auto linear = diag::mean_field(Identity{}, 10, {.sigma_w2 = s2});
        CHECK(linear.q.back() == Approx(std::pow(s2, 10)).epsilon(1e-12));  // q_l = s2^l
        CHECK(linear.ratio_first_last == Approx(std::pow(s2, 4.5)).epsilon(1e-12));
    }
}

TEST_CASE("with naive N(0,1) weights the prediction still converges and matches measurement",
          "[theory]") {
    // sigma_w^2 = fan_in = 256: phi'(sqrt(q) z)^2 is a spike of width 1/16 in z, which a
    // Gauss-Hermite rule alone gets badly wrong (0.19 instead of 2.95 for tanh).
    const double tanh_gain = diag::mean_field(Tanh{}, 10, {.sigma_w2 = 256.0}).gain_per_layer;
    const double sigmoid_gain = diag::mean_field(Sigmoid{}, 10, {.sigma_w2 = 256.0}).gain_per_layer;
    const auto naive = init::Initializer<double>(init::normal(0.0, 1.0));
    const auto tanh_measured = diag::measure_depth<double>(Tanh{}, naive, {.depth = 10, .seed = 1});
    const auto sigmoid_measured =
        diag::measure_depth<double>(Sigmoid{}, naive, {.depth = 10, .seed = 1});
    INFO("tanh: predicted " << tanh_gain << ", measured " << tanh_measured.gain_per_layer());
    INFO("sigmoid: predicted " << sigmoid_gain << ", measured "
                               << sigmoid_measured.gain_per_layer());
    CHECK(tanh_measured.gain_per_layer() == Approx(tanh_gain).epsilon(0.03));
    CHECK(sigmoid_measured.gain_per_layer() == Approx(sigmoid_gain).epsilon(0.03));
}

TEST_CASE("mean_field refuses depths below 2 and non-positive variances", "[theory][errors]") {
    CHECK_THROWS_AS(diag::mean_field(Tanh{}, 1), value_error);
    CHECK_THROWS_AS(diag::mean_field(Tanh{}, 5, {.sigma_w2 = 0.0}), value_error);
}
