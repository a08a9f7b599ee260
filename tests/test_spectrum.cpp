// The curvature algorithms of diag/spectrum.hpp (Lanczos, Hutchinson, stochastic Lanczos
// quadrature) on explicit matrices whose spectra are known, so every answer can be checked
// exactly or against its own sampling error. No network is involved.
#include <catch2/catch.hpp>
#include <gradscope/diag/spectrum.hpp>

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace gradscope;
using Catch::Matchers::Contains;

namespace {

using VectorD = Eigen::VectorXd;
using MatrixD = Eigen::MatrixXd;

// A Haar-ish random orthogonal matrix: the Q of a Householder QR of a normal matrix.
MatrixD random_orthogonal(Eigen::Index n, std::uint64_t seed) {
    Rng rng(seed);
    MatrixD g(n, n);
    for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = rng.normal();
    const Eigen::HouseholderQR<MatrixD> qr(g);
    return qr.householderQ() * MatrixD::Identity(n, n);
}

// Q diag(d) Q^T: a symmetric matrix with exactly the eigenvalues d (to rounding).
MatrixD with_spectrum(const VectorD& d, std::uint64_t seed) {
    const MatrixD q = random_orthogonal(d.size(), seed);
    const MatrixD a = q * d.asDiagonal() * q.transpose();
    return (a + a.transpose()) / 2.0;
}

MatrixD random_symmetric(Eigen::Index n, std::uint64_t seed) {
    Rng rng(seed);
    MatrixD g(n, n);
    for (Eigen::Index i = 0; i < g.size(); ++i) g.data()[i] = rng.normal();
    return (g + g.transpose()) / 2.0;
}

template <class T>
diag::SymmetricOperator<T> matrix_operator(const MatrixD& a) {
    const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic> m = a.cast<T>();
    return [m](const Eigen::Matrix<T, Eigen::Dynamic, 1>& v,
               Eigen::Matrix<T, Eigen::Dynamic, 1>& out) { out.noalias() = m * v; };
}

// A gap of 1 after the top three (10, 9, 8), the other 57 spread over [-1, 7].
VectorD gapped_spectrum() {
    VectorD d(60);
    d.head(3) << 10.0, 9.0, 8.0;
    for (Eigen::Index i = 3; i < d.size(); ++i) d[i] = -1.0 + 8.0 * double(i - 3) / 56.0;
    return d;
}

// Eigenvalues in descending order.
std::vector<double> descending(const VectorD& d) {
    std::vector<double> values(d.data(), d.data() + d.size());
    std::sort(values.begin(), values.end(), [](double x, double y) { return x > y; });
    return values;
}

// The estimate's residual is the Lanczos bound; the recomputed ||A y - theta y|| must agree
// with it up to rounding in the product (||A|| times a few hundred eps), and y must be a unit
// vector.
void check_ritz_pairs(const MatrixD& a, const diag::EigenEstimate& e) {
    const double rounding = 1e-12 * a.norm();
    for (std::size_t i = 0; i < e.values.size(); ++i) {
        const VectorD& y = e.vectors[i];
        const double recomputed = (a * y - e.values[i] * y).norm();
        INFO("pair " << i << ": bound " << e.residuals[i] << ", recomputed " << recomputed);
        CHECK(y.norm() == Approx(1.0).epsilon(1e-12));
        CHECK(std::abs(recomputed - e.residuals[i]) <= rounding);
    }
}

}  // namespace

TEST_CASE("top_eigenvalues finds the top 1 and top 3 of a known spectrum to 1e-8", "[spectrum]") {
    const VectorD d = gapped_spectrum();
    const MatrixD a = with_spectrum(d, 1);
    const auto op = matrix_operator<double>(a);
    // A Ritz value's error is at most residual^2 / gap (Kato-Temple): a relative residual of
    // 1e-6 with a gap of 1 leaves ~1e-10, well inside 1e-8.
    const double tolerance = 1e-6;
    for (int k : {1, 3}) {
        const auto e = diag::top_eigenvalues<double>(op, 60, {.k = k, .tolerance = tolerance});
        REQUIRE(e.values.size() == std::size_t(k));
        CHECK(e.converged);
        CHECK(e.iterations < 60);
        CHECK(e.operator_applications == e.iterations);
        for (int i = 0; i < k; ++i) {
            CHECK(e.values[i] == Approx(d[i]).epsilon(1e-8));
            CHECK(e.residuals[i] <= tolerance * std::abs(e.values[i]));
        }
        check_ritz_pairs(a, e);
    }
}

TEST_CASE("top_eigenvalues agrees with a dense eigensolver on a random symmetric matrix",
          "[spectrum]") {
    const MatrixD a = random_symmetric(40, 2);
    const Eigen::SelfAdjointEigenSolver<MatrixD> dense(a);
    const std::vector<double> expected = descending(dense.eigenvalues());
    const auto e =
        diag::top_eigenvalues<double>(matrix_operator<double>(a), 40, {.k = 4, .tolerance = 1e-8});
    CHECK(e.converged);
    for (int i = 0; i < 4; ++i) CHECK(e.values[i] == Approx(expected[i]).epsilon(1e-8));
    check_ritz_pairs(a, e);
}

TEST_CASE("top_eigenvalues returns the largest algebraic eigenvalues, not the largest in size",
          "[spectrum]") {
    // -10 dominates in magnitude: power iteration would find it, Lanczos-top must not.
    const VectorD three = (VectorD(3) << -10.0, 1.0, 2.0).finished();
    const auto all = diag::top_eigenvalues<double>(matrix_operator<double>(with_spectrum(three, 3)),
                                                   3, {.k = 3, .tolerance = 1e-10});
    REQUIRE(all.values.size() == 3);
    CHECK(all.values[0] == Approx(2.0).epsilon(1e-10));
    CHECK(all.values[1] == Approx(1.0).epsilon(1e-10));
    CHECK(all.values[2] == Approx(-10.0).epsilon(1e-10));

    VectorD d(20);
    d[0] = -10.0;
    d[1] = 2.0;
    d[2] = 1.0;
    for (Eigen::Index i = 3; i < 20; ++i) d[i] = -5.0 + 5.0 * double(i - 3) / 17.0;  // to 0
    const auto top = diag::top_eigenvalues<double>(matrix_operator<double>(with_spectrum(d, 4)), 20,
                                                   {.k = 2, .tolerance = 1e-8});
    CHECK(top.converged);
    CHECK(top.values[0] == Approx(2.0).epsilon(1e-8));
    CHECK(top.values[1] == Approx(1.0).epsilon(1e-8));
}

TEST_CASE("top_eigenvalues is exact when the Krylov space is exhausted by a rank-2 matrix",
          "[spectrum]") {
    const MatrixD q = random_orthogonal(50, 5);
    const MatrixD a = 5.0 * q.col(0) * q.col(0).transpose() + 3.0 * q.col(1) * q.col(1).transpose();
    const auto op = matrix_operator<double>(a);
    // A has three distinct eigenvalues (5, 3, 0), so the Krylov space of any start vector has
    // dimension 3: the third step finds beta = 0 to rounding and the Ritz values are exact.
    const auto two = diag::top_eigenvalues<double>(op, 50, {.k = 2, .tolerance = 1e-10});
    CHECK(two.converged);
    CHECK(two.iterations <= 3);
    CHECK(two.values[0] == Approx(5.0).epsilon(1e-12));
    CHECK(two.values[1] == Approx(3.0).epsilon(1e-12));
    check_ritz_pairs(a, two);

    // The third eigenvalue is 0: it has no relative accuracy, and its residual (rounding, ~1e-16)
    // counts as converged because no further step can lower it.
    const auto three = diag::top_eigenvalues<double>(op, 50, {.k = 3, .tolerance = 1e-10});
    CHECK(three.converged);
    CHECK(three.iterations <= 3);
    CHECK(std::abs(three.values[2]) < 1e-12);

    // Four values need a second block: the invariant 3-dimensional space is exhausted, a fresh
    // vector orthogonal to it lies in the null space and finds the second 0 in one step.
    const auto four = diag::top_eigenvalues<double>(op, 50, {.k = 4});
    CHECK(four.converged);
    CHECK(four.iterations <= 4);
    REQUIRE(four.values.size() == 4);
    CHECK(four.values[0] == Approx(5.0).epsilon(1e-12));
    CHECK(four.values[1] == Approx(3.0).epsilon(1e-12));
    CHECK(std::abs(four.values[2]) < 1e-12);
    CHECK(std::abs(four.values[3]) < 1e-12);
    check_ritz_pairs(a, four);
}

TEST_CASE("top_eigenvalues keeps its basis orthogonal: no ghost copies of a converged value",
          "[spectrum]") {
    // 100 converges within a few steps; the rest, evenly spread over [0, 1], needs the full
    // space at this tolerance. Without reorthogonalisation the basis loses orthogonality once
    // 100 has converged (Paige 1971) and a second copy of 100 appears among the Ritz values.
    VectorD d(60);
    d[0] = 100.0;
    for (Eigen::Index i = 1; i < 60; ++i) d[i] = double(i - 1) / 58.0;
    const MatrixD a = with_spectrum(d, 13);
    const auto e =
        diag::top_eigenvalues<double>(matrix_operator<double>(a), 60, {.k = 2, .tolerance = 1e-13});
    REQUIRE(e.values.size() == 2);
    CHECK(e.values[0] == Approx(100.0).epsilon(1e-10));
    CHECK(e.values[1] == Approx(1.0).epsilon(1e-8));
    CHECK(std::abs(e.vectors[0].dot(e.vectors[1])) < 1e-8);
    check_ritz_pairs(a, e);
}

TEST_CASE("top_eigenvalues caps max_iterations at n and reports when it did not converge",
          "[spectrum]") {
    const VectorD d = gapped_spectrum();
    const auto op = matrix_operator<double>(with_spectrum(d, 6));
    // Two steps cannot resolve 10 from 9 to 1e-12: converged is false, the estimate is still
    // returned (and a Ritz value never exceeds the largest eigenvalue).
    const auto short_run =
        diag::top_eigenvalues<double>(op, 60, {.max_iterations = 2, .tolerance = 1e-12});
    CHECK_FALSE(short_run.converged);
    CHECK(short_run.iterations == 2);
    REQUIRE(short_run.values.size() == 1);
    CHECK(short_run.values[0] <= 10.0 + 1e-12);

    // max_iterations beyond n: at most n steps, after which the answer is exact.
    const auto capped =
        diag::top_eigenvalues<double>(op, 60, {.max_iterations = 1000, .tolerance = 1e-14});
    CHECK(capped.iterations <= 60);
    CHECK(capped.values[0] == Approx(10.0).epsilon(1e-10));
}

TEST_CASE("top_eigenvalues works with a float operator to float accuracy", "[spectrum]") {
    const VectorD d = gapped_spectrum();
    const MatrixD a = with_spectrum(d, 7);
    // The operator rounds to float (relative 6e-8 per entry, ~1e-6 for the product); the
    // basis is still double. 1e-4 leaves a factor of ~100 for that rounding.
    const auto e = diag::top_eigenvalues<float>(matrix_operator<float>(a), 60, {.k = 3});
    CHECK(e.converged);
    for (int i = 0; i < 3; ++i) CHECK(e.values[i] == Approx(d[i]).epsilon(1e-4));
}

TEST_CASE("top_eigenvalues is reproducible for a seed and correct for any seed", "[spectrum]") {
    const VectorD d = gapped_spectrum();
    const auto op = matrix_operator<double>(with_spectrum(d, 8));
    const diag::LanczosOptions options{.k = 2, .tolerance = 1e-8, .seed = 42};
    const auto first = diag::top_eigenvalues<double>(op, 60, options);
    const auto second = diag::top_eigenvalues<double>(op, 60, options);
    CHECK(first.values == second.values);
    CHECK(first.residuals == second.residuals);
    CHECK(first.iterations == second.iterations);
    for (std::size_t i = 0; i < first.vectors.size(); ++i) {
        CHECK(first.vectors[i] == second.vectors[i]);
    }
    for (std::uint64_t seed : {1U, 7U, 1234567U}) {
        const auto other =
            diag::top_eigenvalues<double>(op, 60, {.k = 2, .tolerance = 1e-8, .seed = seed});
        CHECK(other.converged);
        CHECK(other.values[0] == Approx(10.0).epsilon(1e-8));
        CHECK(other.values[1] == Approx(9.0).epsilon(1e-8));
    }
}

TEST_CASE("top_eigenvalues refuses bad options and bad operators, naming the field",
          "[spectrum][errors]") {
    const auto op = matrix_operator<double>(MatrixD::Identity(5, 5));
    using diag::top_eigenvalues;
    CHECK_THROWS_WITH(top_eigenvalues<double>(op, 0), Contains("n must be positive, got 0"));
    CHECK_THROWS_WITH(top_eigenvalues<double>(op, 5, {.k = 0}),
                      Contains("k must be at least 1, got 0"));
    CHECK_THROWS_WITH(top_eigenvalues<double>(op, 5, {.k = 6}), Contains("k = 6 exceeds"));
    CHECK_THROWS_WITH(top_eigenvalues<double>(op, 5, {.k = 3, .max_iterations = 2}),
                      Contains("max_iterations must be at least 3, got 2"));
    CHECK_THROWS_WITH(top_eigenvalues<double>(op, 5, {.tolerance = 0.0}), Contains("tolerance"));
    CHECK_THROWS_AS(top_eigenvalues<double>(op, 5, {.tolerance = std::nan("")}), value_error);
    CHECK_THROWS_AS(top_eigenvalues<double>(op, 5, {.k = -1}), value_error);

    const diag::SymmetricOperator<double> shrinks = [](const VectorD& v, VectorD& out) {
        out = v.head(v.size() - 1);
    };
    CHECK_THROWS_AS(top_eigenvalues<double>(shrinks, 5), shape_error);
    const diag::SymmetricOperator<double> poisons = [](const VectorD& v, VectorD& out) {
        out = v;
        out[0] = std::numeric_limits<double>::quiet_NaN();
    };
    CHECK_THROWS_AS(top_eigenvalues<double>(poisons, 5), numeric_error);
}

TEST_CASE("hutchinson_trace is exact for a diagonal matrix", "[spectrum]") {
    // z_i^2 = 1 for Rademacher z, so z^T D z = tr D for every probe: no variance at all.
    Rng rng(9);
    VectorD d(50);
    for (Eigen::Index i = 0; i < d.size(); ++i) d[i] = rng.normal();
    const diag::SymmetricOperator<double> diagonal = [d](const VectorD& v, VectorD& out) {
        out = d.cwiseProduct(v);
    };
    const auto t = diag::hutchinson_trace<double>(diagonal, 50, {.samples = 16});
    CHECK(t.value == Approx(d.sum()).epsilon(1e-12));
    CHECK(t.standard_error == 0.0);
    CHECK(t.samples == 16);
}

TEST_CASE("hutchinson_trace is within its standard error, which shrinks as 1 over sqrt m",
          "[spectrum]") {
    const MatrixD a = random_symmetric(50, 10);
    const auto op = matrix_operator<double>(a);
    const double trace = a.trace();
    const auto small = diag::hutchinson_trace<double>(op, 50, {.samples = 64, .seed = 1});
    const auto large = diag::hutchinson_trace<double>(op, 50, {.samples = 1024, .seed = 2});
    INFO("trace " << trace << "; m = 64: " << small.value << " +- " << small.standard_error
                  << "; m = 1024: " << large.value << " +- " << large.standard_error);
    // The mean of m independent samples: 5 standard errors is a 1-in-10^6 event.
    CHECK(std::abs(small.value - trace) < 5.0 * small.standard_error);
    CHECK(std::abs(large.value - trace) < 5.0 * large.standard_error);
    // sqrt(1024 / 64) = 4; each sample standard deviation is itself uncertain by ~1/sqrt(2m)
    // (9% at m = 64), so [2.5, 6] is a wide margin.
    const double ratio = small.standard_error / large.standard_error;
    CHECK(ratio >= 2.5);
    CHECK(ratio <= 6.0);
}

TEST_CASE("hutchinson_trace needs at least two samples and a positive n", "[spectrum][errors]") {
    const auto op = matrix_operator<double>(MatrixD::Identity(4, 4));
    CHECK_THROWS_WITH(diag::hutchinson_trace<double>(op, 4, {.samples = 1}),
                      Contains("samples must be at least 2, got 1"));
    CHECK_THROWS_AS(diag::hutchinson_trace<double>(op, -1), value_error);
}

TEST_CASE("spectral_density weights sum to 1 and their mean is tr A over n", "[spectrum]") {
    const MatrixD a = random_symmetric(60, 11);
    const auto op = matrix_operator<double>(a);
    const int probes = 8;
    const auto density = diag::spectral_density<double>(op, 60, {.probes = probes, .steps = 20});
    REQUIRE(density.nodes.size() == density.weights.size());
    double total = 0.0;
    double mean = 0.0;
    for (std::size_t i = 0; i < density.nodes.size(); ++i) {
        CHECK(density.weights[i] >= 0.0);
        total += density.weights[i];
        mean += density.weights[i] * density.nodes[i];
    }
    CHECK(total == Approx(1.0).epsilon(1e-12));
    // The Gauss rule is exact for f(x) = x, so the mean is (1/probes) sum z^T A z / n:
    // Hutchinson's estimate over n, whose variance per probe is 2 sum_{i != j} A_ij^2.
    const double off_diagonal = a.squaredNorm() - a.diagonal().squaredNorm();
    const double standard_error = std::sqrt(2.0 * off_diagonal / probes) / 60.0;
    INFO("mean " << mean << ", tr/n " << a.trace() / 60.0 << ", standard error " << standard_error);
    CHECK(std::abs(mean - a.trace() / 60.0) < 5.0 * standard_error);
    // Ritz values lie inside the spectrum's range.
    const Eigen::SelfAdjointEigenSolver<MatrixD> dense(a);
    const double low = dense.eigenvalues().minCoeff();
    const double high = dense.eigenvalues().maxCoeff();
    for (double node : density.nodes) {
        CHECK(node >= low - 1e-9);
        CHECK(node <= high + 1e-9);
    }
}

TEST_CASE("spectral_density is a Gauss rule: exact moments up to degree 2 steps - 1",
          "[spectrum]") {
    // For a diagonal D and a normalised Rademacher v, v^T D^p v = tr(D^p) / n whatever the
    // signs, so the m-node Gauss rule of every probe must give the moments p <= 2m - 1 exactly
    // (Golub & Meurant 1994); the weights must be the squared first components to do so.
    VectorD d(40);
    for (Eigen::Index i = 0; i < 40; ++i) d[i] = -1.0 + 3.0 * double(i) / 39.0;
    const diag::SymmetricOperator<double> diagonal = [d](const VectorD& v, VectorD& out) {
        out = d.cwiseProduct(v);
    };
    const int steps = 4;
    const auto density =
        diag::spectral_density<double>(diagonal, 40, {.probes = 3, .steps = steps});
    CHECK(density.nodes.size() == std::size_t(3 * steps));
    for (int p = 0; p <= 2 * steps - 1; ++p) {
        double moment = 0.0;
        for (std::size_t i = 0; i < density.nodes.size(); ++i) {
            moment += density.weights[i] * std::pow(density.nodes[i], p);
        }
        const double exact = d.array().pow(p).mean();
        INFO("moment " << p);
        CHECK(moment == Approx(exact).epsilon(1e-10).margin(1e-12));
    }
}

TEST_CASE("spectral_density has its modes where the eigenvalues cluster", "[spectrum]") {
    // Half the eigenvalues near -1, half near 4, each cluster 0.02 wide.
    VectorD d(60);
    for (Eigen::Index i = 0; i < 60; ++i) {
        d[i] = (i < 30 ? -1.0 : 4.0) + 0.02 * (double(i % 30) / 29.0 - 0.5);
    }
    const auto density = diag::spectral_density<double>(
        matrix_operator<double>(with_spectrum(d, 12)), 60, {.probes = 8, .steps = 30});
    const double sigma = 0.1;
    // The largest density on a grid left and right of the midpoint 1.5.
    const auto argmax = [&density, sigma](double from, double to) {
        double best = from;
        for (double x = from; x <= to; x += 0.01) {
            if (density.density(x, sigma) > density.density(best, sigma)) best = x;
        }
        return best;
    };
    CHECK(argmax(-3.0, 1.5) == Approx(-1.0).margin(0.05));
    CHECK(argmax(1.5, 6.0) == Approx(4.0).margin(0.05));
    // Both modes carry about half of the mass, so each peak is ~ 0.5 / (sigma sqrt(2 pi)) = 2;
    // between them the density is negligible.
    CHECK(density.density(-1.0, sigma) > 1.0);
    CHECK(density.density(4.0, sigma) > 1.0);
    CHECK(density.density(1.5, sigma) < 1e-3);
}

TEST_CASE("spectral_density and density refuse bad arguments", "[spectrum][errors]") {
    const auto op = matrix_operator<double>(MatrixD::Identity(4, 4));
    CHECK_THROWS_WITH(diag::spectral_density<double>(op, 4, {.probes = 0}),
                      Contains("probes must be at least 1, got 0"));
    CHECK_THROWS_WITH(diag::spectral_density<double>(op, 4, {.steps = 0}),
                      Contains("steps must be at least 1, got 0"));
    CHECK_THROWS_AS(diag::spectral_density<double>(op, 0), value_error);
    const auto density = diag::spectral_density<double>(op, 4);
    CHECK_THROWS_WITH(density.density(1.0, 0.0), Contains("sigma"));
    // The identity has one eigenvalue: every probe's Krylov space is one-dimensional.
    for (double node : density.nodes) CHECK(node == Approx(1.0).epsilon(1e-12));
    CHECK(density.nodes.size() == 8);
}
