// The edge of chaos: fixed points, depth scales and critical points of the mean-field maps,
// against closed forms, against an independent computation written here from scratch, and
// against networks measured at depth 100.
#include "support/testing.hpp"

#include <gradscope/diag.hpp>

#include <cmath>
#include <numbers>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// A user-defined activation: softsign(x) = x / (1 + |x|).
struct Softsign {
    static constexpr const char* name = "softsign";
    template <class T>
    T value(T x) const {
        return x / (T(1) + std::abs(x));
    }
    template <class T>
    T derivative(T x, T) const {
        const T d = T(1) + std::abs(x);
        return T(1) / (d * d);
    }
};

// The critical sigma_w^2 of tanh, computed without any of the library's machinery: E[f(sqrt(q) z)]
// by the trapezoidal rule on z in [-12, 12] (spectrally accurate for a smooth integrand times a
// Gaussian), q* by plain iteration of the variance map, and bisection on chi_1 - 1.
double independent_tanh_critical_sigma_w2(double sigma_b2) {
    auto expect = [](double q, auto f) {
        const double h = 0.04, s = std::sqrt(q);
        double total = 0.0;
        for (double z = -12.0; z <= 12.0 + 1e-12; z += h)
            total += f(s * z) * std::exp(-0.5 * z * z);
        return total * h / std::sqrt(2.0 * std::numbers::pi);
    };
    auto chi1 = [&](double sigma_w2) {
        double q = sigma_w2 + sigma_b2;
        for (int i = 0; i < 200; ++i) {  // xi_q < 2 here: 200 layers settle q to rounding
            q = sigma_w2 * expect(q, [](double x) { return std::tanh(x) * std::tanh(x); }) +
                sigma_b2;
        }
        return sigma_w2 * expect(q, [](double x) {
                   const double d = 1.0 - std::tanh(x) * std::tanh(x);
                   return d * d;
               });
    };
    double lo = 1.0, hi = 4.0;
    for (int i = 0; i < 50; ++i) {
        const double mid = 0.5 * (lo + hi);
        (chi1(mid) < 1.0 ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi);
}

// The arc-cosine kernel (Cho and Saul 2009): E[relu(u1) relu(u2)] for unit-correlation c
// and variance q is q / (2 pi) (sqrt(1 - c^2) + (pi - acos c) c).
double relu_correlation_map(double sigma_w2, double sigma_b2, double q, double c) {
    const double kernel = q / (2.0 * std::numbers::pi) *
                          (std::sqrt(1.0 - c * c) + (std::numbers::pi - std::acos(c)) * c);
    return (sigma_w2 * kernel + sigma_b2) / q;
}

}  // namespace

TEST_CASE("ReLU's fixed point, gain and depth scales have closed forms", "[theory][edge]") {
    // V(q) = sigma_w^2 q / 2 + sigma_b^2, so q* = sigma_b^2 / (1 - sigma_w^2 / 2) and every
    // slope is sigma_w^2 / 2.
    const auto fp = diag::fixed_point(ReLU{}, {.sigma_w2 = 1.5, .sigma_b2 = 0.1});
    REQUIRE(fp.has_value());
    CHECK(fp->q_star == Approx(0.4).epsilon(1e-10));
    CHECK(fp->chi1 == Approx(0.75).epsilon(1e-10));
    CHECK(fp->phase == diag::Phase::ordered);
    CHECK(fp->c_star == 1.0);
    CHECK(fp->xi_q == Approx(-1.0 / std::log(0.75)).epsilon(1e-8));
    CHECK(fp->xi_c == Approx(-1.0 / std::log(0.75)).epsilon(1e-8));
}

TEST_CASE("the correlation map of ReLU matches the arc-cosine kernel", "[theory][edge]") {
    // The product Gauss-Hermite rule meets ReLU's kink in both variables; 2e-3 is the accuracy
    // the header documents for kinked activations.
    for (const double c : {-0.5, 0.0, 0.3, 0.8, 0.99}) {
        INFO("c = " << c);
        CHECK(diag::correlation_map(ReLU{}, 0.7, c, {.sigma_w2 = 1.8, .sigma_b2 = 0.05}) ==
              Approx(relu_correlation_map(1.8, 0.05, 0.7, c)).margin(2e-3));
    }
    // For tanh the rule is exact to rounding: C(1) = 1 at the fixed point.
    const auto fp = diag::fixed_point(Tanh{}, {.sigma_w2 = 1.5, .sigma_b2 = 0.05});
    REQUIRE(fp.has_value());
    CHECK(diag::correlation_map(Tanh{}, fp->q_star, 1.0, {.sigma_w2 = 1.5, .sigma_b2 = 0.05}) ==
          Approx(1.0).epsilon(1e-12));
}

TEST_CASE("in the chaotic phase c* is a fixed point of the correlation map below 1",
          "[theory][edge]") {
    const diag::SignalPropagationOptions o{.sigma_w2 = 2.5, .sigma_b2 = 0.05};
    const auto fp = diag::fixed_point(Tanh{}, o);
    REQUIRE(fp.has_value());
    CHECK(fp->phase == diag::Phase::chaotic);
    CHECK(fp->chi1 > 1.0);
    CHECK(fp->c_star < 0.9);
    CHECK(diag::correlation_map(Tanh{}, fp->q_star, fp->c_star, o) ==
          Approx(fp->c_star).margin(1e-10));
    CHECK(fp->chi_c < 1.0);  // c* attracts
    CHECK(std::isfinite(fp->xi_c));
}

TEST_CASE("the variance map has no fixed point for ReLU at sigma_w2 = 2 with biases",
          "[theory][edge]") {
    CHECK_FALSE(diag::fixed_point(ReLU{}, {.sigma_w2 = 2.0, .sigma_b2 = 0.05}).has_value());
    CHECK_FALSE(diag::fixed_point(ReLU{}, {.sigma_w2 = 3.0}).has_value());
    // Without biases every q is a fixed point at sigma_w2 = 2: q stays where it starts.
    const auto marginal = diag::fixed_point(ReLU{}, {.sigma_w2 = 2.0});
    REQUIRE(marginal.has_value());
    CHECK(marginal->q_star == Approx(2.0).epsilon(1e-9));
    CHECK(marginal->phase == diag::Phase::critical);
    CHECK(std::isinf(marginal->xi_c));
}

TEST_CASE("critical points: ReLU at sigma_w2 = 2 and tanh approaching 1 as sigma_b2 -> 0",
          "[theory][edge]") {
    const auto relu = diag::critical_point(ReLU{});
    CHECK(relu.sigma_w2 == Approx(2.0).epsilon(1e-9));
    CHECK(relu.below == diag::Phase::ordered);
    CHECK(relu.above == diag::Phase::unbounded);

    // chi_1 - 1 vanishes to second order in sigma_w2 - 1 for tanh at sigma_b2 = 0, so the
    // bisection can only place it to about 1e-5.
    CHECK(diag::critical_point(Tanh{}).sigma_w2 == Approx(1.0).margin(1e-5));
    double previous = 10.0;
    for (const double sigma_b2 : {0.2, 0.05, 1e-2, 1e-4, 1e-6}) {
        const auto point = diag::critical_point(Tanh{}, {.sigma_b2 = sigma_b2});
        INFO("sigma_b2 = " << sigma_b2 << ": sigma_w2 = " << point.sigma_w2);
        CHECK(point.sigma_w2 < previous);
        CHECK(point.sigma_w2 > 1.0);
        CHECK(point.at.chi1 == Approx(1.0).margin(1e-9));
        CHECK(std::isinf(point.at.xi_c));
        CHECK(point.below == diag::Phase::ordered);
        CHECK(point.above == diag::Phase::chaotic);
        previous = point.sigma_w2;
    }
    CHECK(previous < 1.02);
}

TEST_CASE("tanh's critical point agrees with an independent computation", "[theory][edge]") {
    for (const double sigma_b2 : {0.05, 0.5}) {
        INFO("sigma_b2 = " << sigma_b2);
        CHECK(diag::critical_point(Tanh{}, {.sigma_b2 = sigma_b2}).sigma_w2 ==
              Approx(independent_tanh_critical_sigma_w2(sigma_b2)).epsilon(1e-8));
    }
}

TEST_CASE("critical_point says why an activation has none", "[theory][edge][errors]") {
    REQUIRE_THROWS_MATCHES(diag::critical_point(ReLU{}, {.sigma_b2 = 0.05}), value_error,
                           MessageContains("q* grows without bound"));
    REQUIRE_THROWS_MATCHES(diag::critical_point(GELU{}), value_error,
                           MessageContains("while chi_1 is still"));
    REQUIRE_THROWS_MATCHES(diag::critical_point(Identity{}, {.sigma_b2 = 0.1}), value_error,
                           MessageContains("activation 'identity' has no critical point"));
    REQUIRE_THROWS_MATCHES(diag::fixed_point(Tanh{}, {.sigma_w2 = -1.0}), value_error,
                           MessageContains("sigma_w2"));
    REQUIRE_THROWS_MATCHES(diag::correlation_map(Tanh{}, 1.0, 1.5), value_error,
                           MessageContains("c must be a correlation in [-1, 1], got 1.5"));
}

TEST_CASE("a depth-100 network on the edge of chaos keeps its gradient: gain within 2% of 1",
          "[theory][edge][measured]") {
    // Width 256: the per-layer gain of one network fluctuates by about sqrt(1 / (width depth))
    // around the mean-field value (under 0.5% here), so 2% leaves room for finite-width bias.
    // The same networks 30% off the critical sigma_w2 leave the band on either side, so the test
    // tells the edge apart from its neighbours.
    auto check = [](const auto& act, double sigma_b2, bool orthogonal) {
        const auto edge = init::critical(act, {.sigma_b2 = sigma_b2, .orthogonal = orthogonal});
        const diag::DepthSetup setup{
            .depth = 100, .width = 256, .batch = 64, .seed = 3, .sigma_b2 = sigma_b2};
        const double gain = diag::measure_depth<double>(act, edge, setup).gain_per_layer();
        INFO(edge.describe() << ": measured gain " << gain);
        CHECK(gain == Approx(1.0).margin(0.02));
        if (!orthogonal) {
            auto off = edge;
            off.sigma_w2 = 0.7 * edge.sigma_w2;
            CHECK(diag::measure_depth<double>(act, off, setup).gain_per_layer() < 0.98);
            off.sigma_w2 = 1.3 * edge.sigma_w2;
            CHECK(diag::measure_depth<double>(act, off, setup).gain_per_layer() > 1.02);
        }
    };
    for (const double sigma_b2 : {0.01, 0.05, 0.2}) check(Tanh{}, sigma_b2, false);
    check(Softsign{}, 0.05, false);
    check(Tanh{}, 0.05, true);
}

TEST_CASE("init::critical draws N(0, sigma_w2 / fan_in) weights and N(0, sigma_b2) biases",
          "[init][edge]") {
    const auto edge = init::critical(Tanh{}, {.sigma_b2 = 0.05});
    CHECK(edge.sigma_w2 == Approx(diag::critical_point(Tanh{}, {.sigma_b2 = 0.05}).sigma_w2));
    Rng rng(7);
    Matrix<double> w(400, 500), b(1, 20000);
    edge(MatrixView<double>(w.data(), 400, 500), 500, 400, rng);
    edge.bias()(MatrixView<double>(b.data(), 1, 20000), 500, 20000, rng);
    // Sample variances of 2e5 and 2e4 normal draws: relative standard errors 0.3% and 1%.
    CHECK(w.squaredNorm() / static_cast<double>(w.size()) ==
          Approx(edge.sigma_w2 / 500.0).epsilon(0.015));
    CHECK(b.squaredNorm() / static_cast<double>(b.size()) == Approx(0.05).epsilon(0.05));
    CHECK(edge.describe().find("critical(tanh, sigma_w2 1.76") == 0);
    REQUIRE_THROWS_MATCHES(init::critical(ReLU{}, {.sigma_b2 = 0.1}), value_error,
                           MessageContains("activation 'relu' has no critical point"));
}

// Orthogonal weights hold the Gaussian's per-unit variance sigma_w2 / fan_in exactly, not on
// average: a wide W (out <= in) has orthonormal rows times g, a tall one orthonormal columns
// times g, so the sum of squares is g^2 * min(out, in) whatever the draw.
TEST_CASE("init::critical orthogonal keeps sigma_w2 / fan_in per entry for tall, square and wide "
          "layers",
          "[init][edge]") {
    const auto edge = init::critical(Tanh{}, {.sigma_b2 = 0.05, .orthogonal = true});
    for (const auto& [out, in] : {std::pair<Index, Index>{256, 64}, {128, 128}, {64, 256}}) {
        CAPTURE(out, in);
        Rng rng(11);
        Matrix<double> w(out, in);
        edge(MatrixView<double>(w.data(), out, in), in, out, rng);
        const double per_entry = w.squaredNorm() / static_cast<double>(w.size());
        CHECK(per_entry == Approx(edge.sigma_w2 / static_cast<double>(in)).epsilon(1e-12));
        // The orthogonality itself: the smaller Gram matrix is g^2 times the identity.
        const double g2 = edge.sigma_w2 * std::max(1.0, static_cast<double>(out) / in);
        const Matrix<double> gram = out <= in ? Matrix<double>(w * w.transpose())
                                              : Matrix<double>(w.transpose() * w);
        const Matrix<double> identity = Matrix<double>::Identity(gram.rows(), gram.cols());
        CHECK((gram / g2 - identity).cwiseAbs().maxCoeff() < 1e-12);
    }
}
