// Curvature of a loss (diag/curvature.hpp): sharpness, trace and per-layer blocks from exact
// Hessian-vector products, against answers known exactly: a quadratic whose Hessian is a given
// matrix, and small networks whose dense Hessian is built from n products and diagonalised.
#include "support/testing.hpp"

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// The dense Hessian, one column per basis vector.
Matrix<double> dense_hessian(Hessian<double>& hessian) {
    const Index n = hessian.size();
    Matrix<double> dense(n, n);
    for (Index j = 0; j < n; ++j) {
        Eigen::VectorXd e = Eigen::VectorXd::Zero(n);
        e(j) = 1.0;
        dense.col(j) = hessian.product(e);
    }
    return dense;
}

Eigen::VectorXd eigenvalues_descending(const Matrix<double>& m) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> solver(m);
    return solver.eigenvalues().reverse();
}

}  // namespace

TEST_CASE("the sharpness of a quadratic is its matrix's top eigenvalue", "[curvature]") {
    // L(theta) = theta^T A theta / 2 has Hessian A everywhere; A has eigenvalues 12, 7, 3 and
    // the rest in [-2, 1].
    const Index n = 30;
    Eigen::VectorXd d = Eigen::VectorXd::LinSpaced(n, -2.0, 1.0);
    d(0) = 12.0;
    d(1) = 7.0;
    d(2) = 3.0;
    Eigen::HouseholderQR<Eigen::MatrixXd> qr(normal(n, n, 1));
    const Eigen::MatrixXd q = qr.householderQ();
    const Matrix<double> a = q * d.asDiagonal() * q.transpose();
    const auto theta = param(n, 1, 2);
    const auto at = TensorD::constant(a);
    Hessian<double> hessian(sum(theta * matmul(at, theta)) * 0.5, {theta});
    const auto top = diag::hessian_top_eigenvalues(hessian, {.k = 3, .tolerance = 1e-8});
    REQUIRE(top.converged);
    CHECK(top.values[0] == Approx(12.0).epsilon(1e-8));
    CHECK(top.values[1] == Approx(7.0).epsilon(1e-8));
    CHECK(top.values[2] == Approx(3.0).epsilon(1e-8));
    const auto trace = diag::hessian_trace(hessian, {.samples = 400});
    CHECK(std::abs(trace.value - d.sum()) < 5 * trace.standard_error);
}

TEST_CASE("network sharpness, trace and density agree with the dense Hessian", "[curvature]") {
    auto net = mlp<double>({.widths = {3, 5, 4, 3}, .activation = Tanh{}, .seed = 3});
    const auto x = TensorD::constant(normal(10, 3, 4));
    const std::vector<int> labels{0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    Hessian<double> hessian(cross_entropy((*net)(x), labels), *net);
    const Matrix<double> dense = dense_hessian(hessian);
    const Eigen::VectorXd exact = eigenvalues_descending(dense);
    const auto top =
        diag::hessian_top_eigenvalues(hessian, {.k = 2, .max_iterations = 80, .tolerance = 1e-8});
    REQUIRE(top.converged);
    CHECK(top.values[0] == Approx(exact(0)).epsilon(1e-7));
    CHECK(top.values[1] == Approx(exact(1)).epsilon(1e-7));
    const auto trace = diag::hessian_trace(hessian, {.samples = 200, .seed = 5});
    CHECK(std::abs(trace.value - dense.trace()) < 5 * trace.standard_error);
    CHECK(trace.standard_error > 0.0);
    // The density's mean, sum(w node), is (1/n) z^T H z averaged over its 64 unit Rademacher
    // probes: a Hutchinson estimate of tr H / n with 64 samples, whose standard error is the
    // 200-sample one above times sqrt(200/64).
    const auto density = diag::hessian_spectral_density(hessian, {.probes = 64, .steps = 10});
    double mean = 0.0;
    for (std::size_t i = 0; i < density.nodes.size(); ++i)
        mean += density.weights[i] * density.nodes[i];
    const double n = static_cast<double>(hessian.size());
    CHECK(std::abs(mean - dense.trace() / n) <
          5 * trace.standard_error * std::sqrt(200.0 / 64.0) / n);
}

TEST_CASE("per-layer blocks are the dense Hessian's diagonal blocks", "[curvature]") {
    auto net = mlp<double>(
        {.widths = {3, 4, 4, 2}, .activation = GELU{}, .norm = Normalization::layer, .seed = 6});
    const auto x = TensorD::constant(normal(8, 3, 7));
    const auto y = TensorD::constant(normal(8, 2, 8));
    Hessian<double> hessian(mse_loss((*net)(x), y), *net);
    const Matrix<double> dense = dense_hessian(hessian);
    const auto blocks = diag::layer_blocks(*net);
    std::vector<std::string> names;
    for (const auto& b : blocks) names.push_back(b.name);
    CHECK(names == std::vector<std::string>{"layers.0.linear", "layers.0.ln", "layers.1.linear",
                                            "layers.1.ln", "layers.2"});
    const auto curvature = diag::block_curvature(
        hessian, blocks,
        {.eigen = {.k = 1, .max_iterations = 40, .tolerance = 1e-9}, .trace = {.samples = 300}});
    REQUIRE(curvature.size() == blocks.size());
    Index offset = 0;
    double largest_block = -1e300;
    for (const auto& c : curvature) {
        INFO(c.name);
        const Matrix<double> block = dense.block(offset, offset, c.parameters, c.parameters);
        offset += c.parameters;
        const Eigen::VectorXd exact = eigenvalues_descending(block);
        CHECK(c.top.values[0] == Approx(exact(0)).epsilon(1e-7).margin(1e-10));
        CHECK(std::abs(c.trace.value - block.trace()) <= 5 * c.trace.standard_error + 1e-12);
        largest_block = std::max(largest_block, c.top.values[0]);
    }
    CHECK(offset == hessian.size());
    // A diagonal block's top eigenvalue never exceeds the whole Hessian's.
    CHECK(largest_block <= eigenvalues_descending(dense)(0) + 1e-9);
}

TEST_CASE("the sharpness tracker measures every N steps without changing training", "[curvature]") {
    const auto x = TensorD::constant(normal(12, 4, 9));
    const auto y = TensorD::constant(normal(12, 2, 10));
    // Two identical networks trained side by side, one observed: their parameters must stay
    // bit for bit equal, and each measurement must equal a separate Lanczos run at that step.
    auto watched = mlp<double>(
        {.widths = {4, 6, 2}, .activation = Tanh{}, .norm = Normalization::batch, .seed = 11});
    auto plain = mlp<double>(
        {.widths = {4, 6, 2}, .activation = Tanh{}, .norm = Normalization::batch, .seed = 11});
    SGD<double> sgd_watched(watched->parameters(), {.lr = 0.1});
    SGD<double> sgd_plain(plain->parameters(), {.lr = 0.1});
    const diag::SharpnessOptions options{
        .every = 3, .lanczos = {.k = 1, .max_iterations = 40, .tolerance = 1e-8, .seed = 5}};
    diag::SharpnessTracker<double> tracker(*watched, options);
    std::vector<double> expected;
    for (int step = 0; step < 7; ++step) {
        sgd_watched.zero_grad();
        sgd_plain.zero_grad();
        auto loss = mse_loss((*watched)(x), y);
        if (step % 3 == 0) {
            Hessian<double> hessian(loss, *watched);
            auto lanczos = options.lanczos;
            lanczos.seed += static_cast<std::uint64_t>(step);
            expected.push_back(diag::hessian_top_eigenvalues(hessian, lanczos).values[0]);
        }
        CHECK(tracker.observe(loss) == (step % 3 == 0));
        loss.backward();
        auto plain_loss = mse_loss((*plain)(x), y);
        plain_loss.backward();
        sgd_watched.step();
        sgd_plain.step();
    }
    const auto a = watched->parameters();
    const auto b = plain->parameters();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].value() == b[i].value());
    REQUIRE(tracker.history().size() == 3);
    for (std::size_t k = 0; k < 3; ++k) {
        CHECK(tracker.history()[k].step == 3 * k);
        CHECK(tracker.history()[k].converged);
        CHECK(tracker.history()[k].sharpness == Approx(expected[k]).epsilon(1e-7));
    }
    CHECK(tracker.history()[0].sharpness > 0.0);
    REQUIRE_THROWS_MATCHES(diag::SharpnessTracker<double>(*plain, {.every = 0}), value_error,
                           MessageContains("every"));
}
