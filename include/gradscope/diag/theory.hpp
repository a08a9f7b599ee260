// Mean-field theory of gradient flow at initialisation (Poole et al. 2016, "Exponential
// expressivity in deep neural networks through transient chaos"; Schoenholz et al. 2017,
// "Deep Information Propagation").
//
// For a plain MLP of width n with weights N(0, sigma_w^2 / n) and biases N(0, sigma_b^2), the
// variance q_l of a pre-activation z_l obeys
//     q_1     = sigma_w^2 * E[x^2] + sigma_b^2           (inputs of mean square E[x^2])
//     q_{l+1} = sigma_w^2 * E[phi(sqrt(q_l) z)^2] + sigma_b^2,   z ~ N(0, 1)
// and backpropagating the error delta_l = dL/dz_l across layer l multiplies its squared norm
// by
//     chi_l   = sigma_w^2 * E[phi'(sqrt(q_l) z)^2].
// So |delta_1| / |delta_L| = prod_{l=1}^{L-1} sqrt(chi_l), and the predicted per-layer gain is
// exp(mean(ln chi_l) / 2). The expectations are Gauss-Hermite sums with an even number of
// nodes, so that no node sits on ReLU's kink at 0. When the weights are large (naive N(0, 1)
// init: sigma_w^2 = fan_in), phi'(sqrt(q) z)^2 is a spike of width ~1/sqrt(q) in z, narrower
// than the spacing of the Hermite nodes, and no affordable node count converges; the rule
// notices (a second sum with twice the nodes disagrees) and integrates instead with composite
// Gauss-Legendre panels fine enough for the spike, split at 0 for the same reason.
//
// Assumptions (where measurements may part from the prediction): weights Gaussian and i.i.d.
// (a uniform initialiser with the same variance agrees in the wide limit), layers wide, the
// gradient arriving at the top independent of the forward signal (a random linear readout),
// and no normalisation or skip connections — for batch norm or residual networks the theory
// here does not apply.
#pragma once

#include "../core/elementwise.hpp"
#include "../core/errors.hpp"

#include <Eigen/Eigenvalues>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <numbers>
#include <string>
#include <vector>

namespace gradscope::diag {

namespace detail {

// Golub-Welsch: a Gauss rule's nodes are the eigenvalues of its symmetric tridiagonal Jacobi
// matrix, and its weights are proportional to the squared first components of the
// eigenvectors. A template only so that Eigen's eigensolver is compiled into the programs that
// use a quadrature rule, not into every program that includes gradscope.hpp (it was most of
// the 6 s that including the diagnostics added to a compile; for the same reason the rules
// below are class templates, so that nothing here is compiled until a program uses it).
template <class Real>
void golub_welsch(const Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>& jacobi,
                  Real total_mass, std::vector<Real>& nodes, std::vector<Real>& weights) {
    const Eigen::SelfAdjointEigenSolver<Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>> solver(
        jacobi);
    const auto count = static_cast<std::size_t>(jacobi.rows());
    nodes.resize(count);
    weights.resize(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto k = static_cast<Eigen::Index>(i);
        nodes[i] = solver.eigenvalues()(k);
        const Real v = solver.eigenvectors()(0, k);
        weights[i] = total_mass * v * v;
    }
}

}  // namespace detail

// Nodes x_i and weights w_i with sum_i w_i f(x_i) ~ E[f(z)], z ~ N(0, 1): the probabilists'
// Gauss-Hermite rule, from the eigen-decomposition of its Jacobi matrix (Golub-Welsch).
// A rule's Jacobi matrix is count x count and its eigen-decomposition costs count^3: beyond a
// few thousand nodes a rule is neither affordable nor more accurate.
inline constexpr int max_quadrature_nodes = 4096;

namespace detail {
inline void check_node_count(const char* who, int count, int least) {
    if (count < least || count > max_quadrature_nodes) {
        throw value_error(std::string(who) + ": the node count must be in [" +
                          std::to_string(least) + ", " + std::to_string(max_quadrature_nodes) +
                          "], got " + std::to_string(count));
    }
}
}  // namespace detail

template <std::floating_point Real = double>
struct GaussHermite {
    std::vector<Real> nodes;
    std::vector<Real> weights;

    explicit GaussHermite(int count = 96) {
        detail::check_node_count("GaussHermite", count, 2);
        if (count % 2 != 0) {
            throw value_error("GaussHermite: the node count must be even and at least 2, got " +
                              std::to_string(count));
        }
        // Probabilists' Hermite polynomials: recurrence coefficients sqrt(k).
        using Jacobi = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
        Jacobi jacobi = Jacobi::Zero(count, count);
        for (int k = 1; k < count; ++k) {
            jacobi(k, k - 1) = jacobi(k - 1, k) = std::sqrt(static_cast<Real>(k));
        }
        detail::golub_welsch(jacobi, Real(1), nodes, weights);  // N(0, 1) has total mass 1
    }

    template <class F>
    [[nodiscard]] Real expect(F&& f) const {
        Real total = 0;
        for (std::size_t i = 0; i < nodes.size(); ++i) total += weights[i] * f(nodes[i]);
        return total;
    }
};

// Gauss-Legendre nodes and weights on [-1, 1] (Golub-Welsch again).
template <std::floating_point Real = double>
struct GaussLegendre {
    std::vector<Real> nodes;
    std::vector<Real> weights;

    explicit GaussLegendre(int count) {
        detail::check_node_count("GaussLegendre", count, 1);
        using Jacobi = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
        Jacobi jacobi = Jacobi::Zero(count, count);
        for (int k = 1; k < count; ++k) {
            const Real kd = static_cast<Real>(k);
            jacobi(k, k - 1) = jacobi(k - 1, k) = kd / std::sqrt(4 * kd * kd - 1);
        }
        detail::golub_welsch(jacobi, Real(2), nodes, weights);  // the length of [-1, 1]
    }
};

namespace detail {
// NormalExpectation's node count: even, and its fallback rule uses twice the nodes.
inline void check_expectation_nodes(const char* who, int count) {
    if (count < 2 || count % 2 != 0 || count > max_quadrature_nodes / 2) {
        throw value_error(std::string(who) + ": quadrature_nodes must be even and in [2, " +
                          std::to_string(max_quadrature_nodes / 2) + "], got " +
                          std::to_string(count));
    }
}
}  // namespace detail

// E[f(s z)], z ~ N(0, 1): Gauss-Hermite when it has converged, otherwise composite
// Gauss-Legendre panels on z in [-12, 12] (the tails beyond carry < 1e-32 of the mass), split at
// 0 and fine enough that every spike of width 1/s spans several nodes.
// Real is the precision of the rules' nodes and weights; the sums are taken in double.
template <std::floating_point Real = double>
class NormalExpectation {
public:
    explicit NormalExpectation(int hermite_nodes)
        : coarse_(hermite_nodes), fine_(2 * hermite_nodes), panel_(8) {}

    template <class F>
    [[nodiscard]] double operator()(double s, F&& f) const {
        // A NaN scale would reach the panel count's conversion to int, which is undefined.
        gradscope::detail::check_finite("NormalExpectation", "s", s);
        auto at = [&](double z) { return f(s * z); };
        const double a = coarse_.expect(at);
        const double b = fine_.expect(at);
        if (std::abs(a - b) <= 1e-9 * std::max(std::abs(b), 1e-300)) return b;
        const int panels =
            static_cast<int>(std::clamp(std::ceil(16.0 * std::max(s, 1.0)), 64.0, 65536.0));
        const double width = 12.0 / panels;
        double total = 0.0;
        for (int side = -1; side <= 1; side += 2) {
            for (int p = 0; p < panels; ++p) {
                const double left = p * width, mid = left + 0.5 * width;
                for (std::size_t i = 0; i < panel_.nodes.size(); ++i) {
                    const double z = side * (mid + 0.5 * width * panel_.nodes[i]);
                    total += 0.5 * width * panel_.weights[i] * at(z) * std::exp(-0.5 * z * z);
                }
            }
        }
        return total / std::sqrt(2.0 * std::numbers::pi);
    }

private:
    GaussHermite<Real> coarse_, fine_;
    GaussLegendre<Real> panel_;
};

struct MeanFieldOptions {
    double sigma_w2 = 1.0;             // weight variance times fan-in
    double sigma_b2 = 0.0;             // bias variance
    double input_second_moment = 1.0;  // E[x^2] of the network's inputs (1 for N(0, 1))
    int quadrature_nodes = 96;
};

struct MeanFieldPrediction {
    std::vector<double> q;  // q_l, l = 1..L: pre-activation variance of each layer
    std::vector<double>
        chi;  // chi_l, l = 1..L-1: squared-norm gain of the backward step across layer l
    double gain_per_layer = 1.0;    // exp(mean(ln chi) / 2): > 1 grows, < 1 shrinks going back
    double ratio_first_last = 1.0;  // prod sqrt(chi): predicted |delta_1| / |delta_L|
};

// The prediction for a plain MLP of `depth` Linear layers (depth >= 2) with activation `act`
// between them.
template <ElementwiseFunction<double> Act>
MeanFieldPrediction mean_field(const Act& act, int depth, const MeanFieldOptions& options = {}) {
    if (depth < 2)
        throw value_error("mean_field: depth must be at least 2, got " + std::to_string(depth));
    gradscope::detail::check_positive("mean_field", "sigma_w2", options.sigma_w2);
    gradscope::detail::check_non_negative("mean_field", "sigma_b2", options.sigma_b2);
    gradscope::detail::check_non_negative("mean_field", "input_second_moment",
                                          options.input_second_moment);
    detail::check_expectation_nodes("mean_field", options.quadrature_nodes);
    gradscope::detail::validate_function(act);
    // An activation (a user's, or a built-in with hostile parameters) that returns NaN or
    // infinity somewhere, or a variance map that overflows, would otherwise give a NaN prediction.
    auto require_finite = [&](const char* what, double value, int layer) {
        if (!std::isfinite(value)) {
            throw numeric_error(
                "mean_field: " + std::string(what) + " at layer " + std::to_string(layer) + " is " +
                gradscope::detail::number_text(value) + " for activation '" + Act::name +
                "' (an activation value or derivative that is not finite, "
                "or a variance that overflows)");
        }
    };
    const NormalExpectation<double> expect(options.quadrature_nodes);
    MeanFieldPrediction out;
    double q = options.sigma_w2 * options.input_second_moment + options.sigma_b2;
    double log_chi_sum = 0.0;
    for (int l = 1; l <= depth; ++l) {
        require_finite("q", q, l);
        out.q.push_back(q);
        const double s = std::sqrt(q);
        if (l < depth) {
            const double chi = options.sigma_w2 * expect(s, [&](double x) {
                                   const double d = act.derivative(x, act.value(x));
                                   return d * d;
                               });
            require_finite("chi", chi, l);
            out.chi.push_back(chi);
            log_chi_sum += std::log(chi);
        }
        q = options.sigma_w2 * expect(s,
                                      [&](double x) {
                                          const double y = act.value(x);
                                          return y * y;
                                      }) +
            options.sigma_b2;
    }
    out.gain_per_layer = std::exp(0.5 * log_chi_sum / static_cast<double>(depth - 1));
    out.ratio_first_last = std::exp(0.5 * log_chi_sum);
    return out;
}

}  // namespace gradscope::diag
