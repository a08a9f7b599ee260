// Curvature of a symmetric linear operator known only through its products A v: the top
// eigenvalues (Lanczos), the trace (Hutchinson) and the spectral density (stochastic Lanczos
// quadrature). Nothing here knows about networks: a Hessian enters as a Hessian-vector product,
// and any other symmetric operator (a matrix, a Gauss-Newton product) works the same way.
//
// Every algorithm works in double internally, whatever the operator's scalar type: the Krylov
// basis, the tridiagonal matrix and all sums. Only the operator's own arithmetic is in T.
#pragma once

#include "../core/errors.hpp"
#include "../core/random.hpp"

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <string>
#include <vector>

namespace gradscope::diag {

// out = A v for a symmetric A of order n. The caller (the algorithms below) pre-sizes `out` to
// n before each call; the operator writes all n entries and must not resize it (a result of
// another size is a shape_error, a NaN or infinity a numeric_error).
// A lambda does not deduce T: name it, as in top_eigenvalues<float>(lambda, n).
template <class T>
using SymmetricOperator = std::function<void(const Eigen::Matrix<T, Eigen::Dynamic, 1>& v,
                                             Eigen::Matrix<T, Eigen::Dynamic, 1>& out)>;

struct LanczosOptions {
    int k = 1;                 // how many eigenvalues, largest algebraic first
    int max_iterations = 100;  // Lanczos steps (= operator applications); capped at n
    double tolerance = 1e-4;   // on |A y - theta y| / max(|theta|, tiny) for each of the k pairs
                               // (tiny: a residual at rounding level, 100 eps_T ||A||, passes)
    std::uint64_t seed = 0;    // of the random start vector
};

struct EigenEstimate {
    std::vector<double> values;  // k of them, largest algebraic first (a Hessian may have
                                 // negative eigenvalues: they come last)
    // The Lanczos bound |beta_m s_m,i| on ||A y_i - theta_i y_i|| (no extra operator
    // applications; with full reorthogonalisation it matches the recomputed residual to
    // rounding in the operator).
    std::vector<double> residuals;
    std::vector<Eigen::VectorXd> vectors;  // unit Ritz vectors y_i, in the order of values
    int iterations = 0;                    // Lanczos steps taken
    int operator_applications = 0;         // products A v, one per step
    bool converged = false;                // every one of the k pairs met the tolerance
};

struct TraceOptions {
    int samples = 32;  // Rademacher probes, at least 2 (a standard error needs two)
    std::uint64_t seed = 0;
};

struct TraceEstimate {
    double value = 0.0;           // mean of z^T A z over the probes
    double standard_error = 0.0;  // sample standard deviation / sqrt(samples)
    int samples = 0;
};

struct DensityOptions {
    int probes = 8;  // random start vectors; the quadratures are averaged
    int steps = 40;  // Lanczos steps per probe (capped at n): 2 steps - 1 moments are exact
    std::uint64_t seed = 0;
};

struct SpectralDensity {
    // Gauss quadrature nodes (Ritz values) and weights of all probes; the weights sum to 1, so
    // sum(w f(node)) estimates (1/n) sum_i f(lambda_i) = (1/n) tr f(A).
    std::vector<double> nodes;
    std::vector<double> weights;

    // The spectral density broadened by a Gaussian of standard deviation sigma, at lambda
    // (Ghorbani, Krishnan & Xiao 2019, eq. 3). Integrates to 1 over lambda.
    [[nodiscard]] double density(double lambda, double sigma) const {
        gradscope::detail::check_positive("SpectralDensity::density", "sigma", sigma);
        const double norm = 1.0 / (sigma * std::sqrt(2.0 * std::numbers::pi));
        double sum = 0.0;
        for (std::size_t i = 0; i < nodes.size(); ++i) {
            const double z = (lambda - nodes[i]) / sigma;
            sum += weights[i] * std::exp(-0.5 * z * z);
        }
        return norm * sum;
    }
};

namespace spectrum_detail {

using VectorD = Eigen::VectorXd;

// The operator applied in its own precision, its result in double, checked once per call.
template <class T>
class DoubleOperator {
public:
    DoubleOperator(const SymmetricOperator<T>& op, Eigen::Index n, const char* who)
        : op_(op), in_(n), out_(n), who_(who) {}

    void operator()(const VectorD& v, VectorD& result) {
        in_ = v.cast<T>();
        out_.resize(in_.size());
        op_(in_, out_);
        check_result();
        result = out_.template cast<double>();
        ++applications_;
    }

    [[nodiscard]] int applications() const { return applications_; }

private:
    void check_result() const {
        if (out_.size() != in_.size()) {
            throw shape_error(std::string(who_) + ": the operator returned a vector of size " +
                              std::to_string(out_.size()) +
                              " for n = " + std::to_string(in_.size()));
        }
        if (!out_.allFinite()) {
            throw numeric_error(std::string(who_) + ": the operator returned a NaN or infinity");
        }
    }

    const SymmetricOperator<T>& op_;
    Eigen::Matrix<T, Eigen::Dynamic, 1> in_;
    Eigen::Matrix<T, Eigen::Dynamic, 1> out_;
    const char* who_;
    int applications_ = 0;
};

inline void check_order(const char* who, Eigen::Index n) {
    if (n <= 0) {
        gradscope::detail::throw_value(who, "n must be positive, got " + std::to_string(n));
    }
}

inline void check_at_least(const char* who, const char* field, int value, int minimum) {
    if (value < minimum) {
        gradscope::detail::throw_value(who, std::string(field) + " must be at least " +
                                                std::to_string(minimum) + ", got " +
                                                std::to_string(value));
    }
}

// Rademacher entries (+1 or -1, each with probability 1/2), 64 signs per random word. They
// give Hutchinson's estimator the least variance of all i.i.d. probes (Hutchinson 1990).
inline VectorD rademacher(Rng& rng, Eigen::Index n) {
    VectorD z(n);
    std::uint64_t bits = 0;
    for (Eigen::Index i = 0; i < n; ++i) {
        if (i % 64 == 0) bits = rng.next_u64();
        z[i] = (bits & 1U) != 0 ? 1.0 : -1.0;
        bits >>= 1U;
    }
    return z;
}

inline VectorD normal_vector(Rng& rng, Eigen::Index n) {
    VectorD v(n);
    for (Eigen::Index i = 0; i < n; ++i) v[i] = rng.normal();
    return v;
}

struct RitzPairs {
    std::vector<double> values;
    std::vector<double> residuals;
    std::vector<Eigen::Index> columns;  // of the tridiagonal's eigenvectors
    bool converged = true;
};

// A Krylov basis built by Lanczos with full reorthogonalisation. Plain Lanczos loses
// orthogonality as soon as a Ritz value converges (Paige 1971) and then reports ghost copies
// of it; projecting every new vector against the whole basis, twice, keeps it orthogonal to
// working precision ("twice is enough": Giraud, Langou & Rozloznik 2005). Memory: n x capacity.
// Real is always double; it is a template parameter so that a program that runs no Lanczos
// (this header is part of gradscope.hpp) does not compile it (core/matrix.hpp, DependentDouble).
template <class Real>
class Lanczos {
public:
    using Vector = Eigen::Matrix<Real, Eigen::Dynamic, 1>;
    using Basis = Eigen::Matrix<Real, Eigen::Dynamic, Eigen::Dynamic>;
    using Solver = Eigen::SelfAdjointEigenSolver<Basis>;

    // noise_floor: a beta below this times the running estimate of ||A|| (the largest
    // Gershgorin bound |alpha_j| + beta_{j-1} + beta_j of T_m seen) is rounding noise of the
    // operator and the reorthogonalisation, not a new direction.
    Lanczos(Eigen::Index n, Eigen::Index capacity, double noise_floor)
        : basis_(n, capacity), noise_floor_(noise_floor) {}

    [[nodiscard]] Eigen::Index size() const { return size_; }
    [[nodiscard]] Eigen::Index capacity() const { return basis_.cols(); }
    [[nodiscard]] double last_beta() const { return beta_.empty() ? 0.0 : beta_.back(); }
    [[nodiscard]] const Basis& basis() const { return basis_; }
    // The rounding level of residuals: noise_floor times the estimate of ||A||.
    [[nodiscard]] double noise() const { return noise_floor_ * scale_; }

    // Starts a new block with v (any nonzero length), orthogonal to the basis so far. The
    // coupling to the previous block is zero: v is not A times the last vector. Returns false
    // when v lies (numerically) in the span of the basis.
    bool start(Vector v) {
        if (size_ == capacity()) return false;
        const double before = v.norm();
        orthogonalise(v);
        const double after = v.norm();
        if (!(after > 1e-8 * before)) return false;
        if (!beta_.empty()) beta_.back() = 0.0;
        basis_.col(size_++) = v / after;
        return true;
    }

    // One step of the three-term recurrence A q_j = beta_{j-1} q_{j-1} + alpha_j q_j +
    // beta_j q_{j+1}; appends q_{j+1} unless the basis is full or beta_j is zero to rounding
    // (the Krylov space is invariant: the Ritz values so far are exact). Returns beta_j.
    template <class Apply>
    double step(Apply& apply) {
        const Eigen::Index j = size_ - 1;
        const double previous = last_beta();  // 0 at the start of a block
        apply(Vector(basis_.col(j)), w_);
        const double alpha = basis_.col(j).dot(w_);
        w_ -= alpha * basis_.col(j);
        if (j > 0) w_ -= previous * basis_.col(j - 1);
        orthogonalise(w_);
        const double beta = w_.norm();
        alpha_.push_back(alpha);
        beta_.push_back(beta);
        scale_ = std::max(scale_, std::abs(alpha) + previous + beta);
        if (size_ < capacity() && beta > noise()) {
            basis_.col(size_++) = w_ / beta;
        }
        return beta;
    }

    // True when the last step appended no next vector (the basis is full, or the Krylov space
    // is invariant): start() a new block to go on.
    [[nodiscard]] bool needs_start() const {
        return static_cast<Eigen::Index>(alpha_.size()) == size_;
    }

    // Eigen-decomposition of the tridiagonal T_m = Q^T A Q: its eigenvalues are the Ritz
    // values (ascending), its eigenvectors s_i give the Ritz vectors Q s_i.
    [[nodiscard]] Solver ritz() const {
        const auto m = static_cast<Eigen::Index>(alpha_.size());
        Vector diagonal = Eigen::Map<const Vector>(alpha_.data(), m);
        Vector sub = Eigen::Map<const Vector>(beta_.data(), std::max<Eigen::Index>(m - 1, 0));
        Solver solver;
        solver.computeFromTridiagonal(diagonal, sub, Eigen::ComputeEigenvectors);
        return solver;
    }

    // The estimate from the last Ritz decomposition: the Ritz vectors are Q s_i.
    [[nodiscard]] EigenEstimate estimate(const RitzPairs& pairs, const Solver& solver,
                                         int applications) const {
        EigenEstimate estimate;
        estimate.values = pairs.values;
        estimate.residuals = pairs.residuals;
        const Eigen::Index m = solver.eigenvalues().size();
        for (Eigen::Index column : pairs.columns) {
            Vector ritz_vector = basis_.leftCols(m) * solver.eigenvectors().col(column);
            estimate.vectors.push_back(std::move(ritz_vector));
        }
        estimate.iterations = applications;
        estimate.operator_applications = applications;
        estimate.converged = pairs.converged;
        return estimate;
    }

    // This probe's Gauss rule, appended to the density: the Ritz values as nodes, the squared
    // first components of T_m's eigenvectors (which sum to 1) divided by the number of probes as
    // weights.
    void append_gauss_rule(int probes, SpectralDensity& density) const {
        const auto solver = ritz();
        for (Eigen::Index j = 0; j < solver.eigenvalues().size(); ++j) {
            const double first = solver.eigenvectors()(0, j);
            density.nodes.push_back(solver.eigenvalues()[j]);
            density.weights.push_back(first * first / probes);
        }
    }

private:
    void orthogonalise(Vector& v) const {
        const auto q = basis_.leftCols(size_);
        for (int pass = 0; pass < 2; ++pass) v -= q * (q.transpose() * v);
    }

    Basis basis_;
    double noise_floor_;
    double scale_ = 0.0;
    Eigen::Index size_ = 0;
    std::vector<double> alpha_;
    std::vector<double> beta_;  // beta_[j] couples q_j and q_{j+1}; the last is the residual
    Vector w_;
};

// The noise floor of beta: rounding leaves a few eps_T ||A|| of A q outside the basis. Too low
// a floor only costs a step on a noise direction (still orthogonal, so the Ritz values stay
// valid); too high a floor would stop early and call inexact values exact, so it is not scaled
// up with n (the worst-case sqrt(n) eps would be 1e-2 for a million float parameters).
template <class T>
constexpr double noise_floor() {
    return 100.0 * std::numeric_limits<T>::epsilon();
}

// A pair has converged when |A y - theta y| / max(|theta|, tiny) <= tolerance, with tiny the
// rounding level `noise` / tolerance: a residual that rounding alone explains cannot be lowered
// by more steps. Without it an eigenvalue that is 0 (a Hessian has many) could never converge,
// having no relative accuracy at all. Its error is then at most the residual (Weyl).
inline bool pair_converged(double residual, double theta, double tolerance, double noise) {
    return residual <= std::max(tolerance * std::abs(theta), noise);
}

// The top k Ritz pairs and their residual bounds. For T_m s = theta s, the Ritz vector
// y = Q s has A y - theta y = beta_m s_m q_{m+1} (Golub & Van Loan, Matrix Computations,
// sec. 10.1.4), so ||A y - theta y|| = |beta_m s_m| without another product.
template <class Solver>
RitzPairs top_ritz_pairs(const Solver& solver, double beta, int k, double tolerance, double noise) {
    const auto& theta = solver.eigenvalues();
    const Eigen::Index m = theta.size();
    RitzPairs pairs;
    for (Eigen::Index i = m - 1; i >= std::max<Eigen::Index>(m - k, 0); --i) {
        const double residual = std::abs(beta * solver.eigenvectors()(m - 1, i));
        pairs.values.push_back(theta[i]);
        pairs.residuals.push_back(residual);
        pairs.columns.push_back(i);
        if (!pair_converged(residual, theta[i], tolerance, noise)) pairs.converged = false;
    }
    if (static_cast<int>(pairs.values.size()) < k) pairs.converged = false;
    return pairs;
}

inline void check_lanczos_options(const char* who, Eigen::Index n, const LanczosOptions& o) {
    check_order(who, n);
    check_at_least(who, "k", o.k, 1);
    if (o.k > n) {
        gradscope::detail::throw_value(
            who, "k = " + std::to_string(o.k) +
                     " exceeds the operator's order n = " + std::to_string(n));
    }
    check_at_least(who, "max_iterations", o.max_iterations, o.k);
    gradscope::detail::check_positive(who, "tolerance", o.tolerance);
}

inline void check_trace_options(const char* who, Eigen::Index n, const TraceOptions& o) {
    check_order(who, n);
    check_at_least(who, "samples", o.samples, 2);
}

inline void check_density_options(const char* who, Eigen::Index n, const DensityOptions& o) {
    check_order(who, n);
    check_at_least(who, "probes", o.probes, 1);
    check_at_least(who, "steps", o.steps, 1);
}

// Welford's running mean and variance: no cancellation between large sums, and identical
// samples keep the mean exact and the variance exactly 0 (x - mean is then 0 every time).
class RunningMean {
public:
    void add(double x) {
        ++count_;
        const double delta = x - mean_;
        mean_ += delta / count_;
        sum_squares_ += delta * (x - mean_);
    }

    [[nodiscard]] double mean() const { return mean_; }

    // Sample standard deviation (n - 1 denominator) over sqrt(count); needs count >= 2.
    [[nodiscard]] double standard_error() const {
        const double m = count_;
        return std::sqrt(sum_squares_ / (m - 1.0) / m);
    }

private:
    int count_ = 0;
    double mean_ = 0.0;
    double sum_squares_ = 0.0;  // of deviations from the running mean
};

}  // namespace spectrum_detail

// The k largest algebraic eigenvalues of the symmetric operator (the most positive first, so
// for a Hessian with negative curvature the negative eigenvalues come last or not at all; for
// the most negative ones, pass -A). Lanczos from a seeded random start, with full
// reorthogonalisation; stops when all k Ritz pairs meet the tolerance, after max_iterations
// steps (capped at n), or when the Krylov space is invariant, where the values are exact.
// A single start vector sees each distinct eigenvalue once until its Krylov space is exhausted
// (then a fresh orthogonal vector is started if fewer than k values were found), so a repeated
// top eigenvalue may be reported once with the next one after it.
template <class T>
EigenEstimate top_eigenvalues(const SymmetricOperator<T>& op, Eigen::Index n,
                              const LanczosOptions& options = {}) {
    constexpr const char* who = "top_eigenvalues";
    spectrum_detail::check_lanczos_options(who, n, options);
    const Eigen::Index capacity = std::min<Eigen::Index>(options.max_iterations, n);
    spectrum_detail::DoubleOperator<T> apply(op, n, who);
    using Lanczos = spectrum_detail::Lanczos<DependentDouble<T>>;
    Lanczos lanczos(n, capacity, spectrum_detail::noise_floor<T>());
    Rng rng(options.seed);
    lanczos.start(spectrum_detail::normal_vector(rng, n));

    spectrum_detail::RitzPairs pairs;
    typename Lanczos::Solver solver;
    for (;;) {
        const double beta = lanczos.step(apply);
        solver = lanczos.ritz();
        pairs = spectrum_detail::top_ritz_pairs(solver, beta, options.k, options.tolerance,
                                                lanczos.noise());
        if (pairs.converged || apply.applications() >= capacity) break;
        if (lanczos.needs_start()) {  // an invariant Krylov space: its Ritz values are exact
            if (static_cast<int>(pairs.values.size()) >= options.k) break;
            if (!lanczos.start(spectrum_detail::normal_vector(rng, n))) break;
        }
    }

    return lanczos.estimate(pairs, solver, apply.applications());
}

// Hutchinson's estimator of tr(A): E[z^T A z] = tr(A) for any probe with E[z z^T] = I
// (Hutchinson 1990). Rademacher probes have the least variance, 2 sum_{i != j} A_ij^2, and are
// exact for a diagonal A (standard error 0, not rounding noise, thanks to Welford's update).
template <class T>
TraceEstimate hutchinson_trace(const SymmetricOperator<T>& op, Eigen::Index n,
                               const TraceOptions& options = {}) {
    constexpr const char* who = "hutchinson_trace";
    spectrum_detail::check_trace_options(who, n, options);
    spectrum_detail::DoubleOperator<T> apply(op, n, who);
    Rng rng(options.seed);
    Eigen::Matrix<DependentDouble<T>, Eigen::Dynamic, 1> az(n);
    spectrum_detail::RunningMean quadratic_forms;
    for (int s = 0; s < options.samples; ++s) {
        const Eigen::Matrix<DependentDouble<T>, Eigen::Dynamic, 1> z =
            spectrum_detail::rademacher(rng, n);
        apply(z, az);
        quadratic_forms.add(z.dot(az));
    }
    return {quadratic_forms.mean(), quadratic_forms.standard_error(), options.samples};
}

// Stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017; applied to network Hessians by
// Ghorbani, Krishnan & Xiao 2019). For a unit probe v, v^T f(A) v = sum_i f(lambda_i)
// (u_i^T v)^2 is a Stieltjes integral whose m-point Gauss rule is given by Lanczos started at
// v: nodes are the Ritz values theta_j, weights the squared first components of T_m's
// eigenvectors (Golub & Meurant 1994). A normalised Rademacher v has E[v v^T] = I/n, so
// averaging over probes estimates (1/n) sum_i f(lambda_i), the spectral density.
template <class T>
SpectralDensity spectral_density(const SymmetricOperator<T>& op, Eigen::Index n,
                                 const DensityOptions& options = {}) {
    constexpr const char* who = "spectral_density";
    spectrum_detail::check_density_options(who, n, options);
    const Eigen::Index steps = std::min<Eigen::Index>(options.steps, n);
    spectrum_detail::DoubleOperator<T> apply(op, n, who);
    Rng rng(options.seed);
    SpectralDensity density;
    for (int p = 0; p < options.probes; ++p) {
        spectrum_detail::Lanczos<DependentDouble<T>> lanczos(n, steps,
                                                             spectrum_detail::noise_floor<T>());
        lanczos.start(spectrum_detail::rademacher(rng, n));
        // An invariant Krylov space ends the probe early: its quadrature is already exact.
        do {
            lanczos.step(apply);
        } while (!lanczos.needs_start());
        lanczos.append_gauss_rule(options.probes, density);
    }
    return density;
}

}  // namespace gradscope::diag
