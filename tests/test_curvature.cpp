// Curvature of a loss (diag/curvature.hpp): sharpness, trace and per-layer blocks from exact
// Hessian-vector products, against answers known exactly: a quadratic whose Hessian is a given
// matrix, and small networks whose dense Hessian is built from n products and diagonalised.
#include "support/testing.hpp"

#include <map>
#include <memory>

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
                                            "layers.1.ln", "layers.2.linear"});
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

namespace {

// The top eigenvalue of each named block of the dense Hessian, by module path.
std::map<std::string, double> dense_block_tops(const Matrix<double>& dense,
                                               const Module<double>& net) {
    std::map<std::string, double> out;
    const auto parameters = net.parameters();
    Index offset = 0;
    for (const auto& block : diag::layer_blocks(net)) {
        Index n = 0;
        for (const std::size_t i : block.tensors) n += parameters[i].shape().size();
        out[block.name] = eigenvalues_descending(dense.block(offset, offset, n, n))(0);
        offset += n;
    }
    return out;
}

}  // namespace

TEST_CASE(
    "the monitor records the sharpness and each layer's on steps 0, N, 2N, equal to the "
    "dense Hessian's",
    "[curvature][monitor]") {
    // Layer norm between the Linears: blocks the monitor does not watch, so that its layers and
    // the Hessian's blocks do not line up one to one.
    auto net = mlp<double>(
        {.widths = {3, 5, 4, 3}, .activation = Tanh{}, .norm = Normalization::layer, .seed = 3});
    const auto x = TensorD::constant(normal(10, 3, 4));
    const std::vector<int> labels{0, 1, 2, 0, 1, 2, 0, 1, 2, 0};
    const diag::SharpnessOptions options{
        .every = 2,
        .lanczos = {.k = 1, .max_iterations = 200, .tolerance = 1e-10, .seed = 1},
        .per_layer = true};
    diag::GradientMonitor<double> monitor(*net, {.sharpness = options});
    diag::SharpnessTracker<double> tracker(*net, options);
    SGD<double> sgd(net->parameters(), {.lr = 0.2});
    std::vector<double> whole;
    std::vector<std::map<std::string, double>> blocks;
    for (int step = 0; step < 5; ++step) {
        sgd.zero_grad();
        auto loss = cross_entropy((*net)(x), labels);
        if (step % 2 == 0) {
            Hessian<double> hessian(loss, *net);
            const Matrix<double> dense = dense_hessian(hessian);
            whole.push_back(eigenvalues_descending(dense)(0));
            blocks.push_back(dense_block_tops(dense, *net));
        }
        CHECK(monitor.observe_loss(loss) == (step % 2 == 0));
        CHECK_FALSE(monitor.observe_loss(loss));  // once a step
        CHECK(tracker.observe(loss) == (step % 2 == 0));
        loss.backward();
        sgd.step();
    }
    REQUIRE(monitor.history().size() == 5);
    REQUIRE(tracker.history().size() == 3);
    for (std::size_t k = 0; k < 5; ++k) {
        INFO("step " << k);
        const diag::GradientProfile& p = monitor.history()[k];
        CHECK(p.step() == k);
        if (k % 2 != 0) {
            // Not measured: as every other statistic says it.
            CHECK_FALSE(p.sharpness().measured());
            CHECK(std::isnan(p.sharpness().sharpness));
            for (const auto& l : p.layers()) CHECK(std::isnan(l.sharpness));
            continue;
        }
        const diag::SharpnessRecord& tracked = tracker.history()[k / 2];
        REQUIRE(p.sharpness().measured());
        CHECK(p.sharpness().converged);
        CHECK(p.sharpness().products > 0);
        CHECK(p.sharpness().residual < 1e-6 * std::abs(whole[k / 2]));
        CHECK(p.sharpness().sharpness == Approx(whole[k / 2]).epsilon(1e-7));
        CHECK(p.sharpness().sharpness == Approx(tracked.sharpness).epsilon(1e-7));
        REQUIRE(p.size() == 3);
        for (const auto& l : p.layers()) {
            INFO(l.name);
            CHECK(l.sharpness == Approx(blocks[k / 2].at(l.name)).epsilon(1e-7).margin(1e-10));
            CHECK(l.sharpness <= p.sharpness().sharpness + 1e-9);
        }
        // The tracker measured every block, the layer norms' too.
        REQUIRE(tracked.layers.size() == 5);
        for (const auto& b : tracked.layers) {
            INFO(b.name);
            CHECK(b.converged);
            CHECK(b.sharpness == Approx(blocks[k / 2].at(b.name)).epsilon(1e-7).margin(1e-10));
        }
    }
    CHECK(monitor.history()[0].sharpness().sharpness > 0.0);
}

TEST_CASE("sharpness off costs nothing, and on it does not change training",
          "[curvature][monitor]") {
    const auto x = TensorD::constant(normal(12, 4, 9));
    const std::vector<int> labels{0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 0};
    // Three identical networks: watched with sharpness every step, watched without, and not
    // watched. The parameters and the gradient statistics stay bit for bit equal.
    std::vector<std::shared_ptr<MLP<double>>> nets;
    for (int i = 0; i < 3; ++i) {
        nets.push_back(mlp<double>(
            {.widths = {4, 6, 2}, .activation = Tanh{}, .norm = Normalization::batch, .seed = 11}));
    }
    diag::GradientMonitor<double> on(
        *nets[0], {.sharpness = diag::SharpnessOptions{.every = 1, .per_layer = true}});
    diag::GradientMonitor<double> off(*nets[1]);
    std::vector<std::unique_ptr<SGD<double>>> sgd;
    for (auto& net : nets) {
        sgd.push_back(std::make_unique<SGD<double>>(net->parameters(), SGDOptions{.lr = 0.1}));
    }
    for (int step = 0; step < 4; ++step) {
        for (std::size_t i = 0; i < nets.size(); ++i) {
            sgd[i]->zero_grad();
            auto loss = cross_entropy((*nets[i])(x), labels);
            if (i == 0) CHECK(on.observe_loss(loss));
            if (i == 1) CHECK_FALSE(off.observe_loss(loss));  // off: nothing happens
            loss.backward();
            sgd[i]->step();
        }
    }
    for (std::size_t i = 1; i < nets.size(); ++i) {
        const auto a = nets[0]->parameters();
        const auto b = nets[i]->parameters();
        for (std::size_t k = 0; k < a.size(); ++k) CHECK(a[k].value() == b[k].value());
    }
    REQUIRE(on.history().size() == off.history().size());
    for (std::size_t s = 0; s < on.history().size(); ++s) {
        CHECK(on.history()[s].sharpness().measured());
        CHECK_FALSE(off.history()[s].sharpness().measured());
        for (std::size_t l = 0; l < on.history()[s].size(); ++l) {
            const auto& a = on.history()[s].layers()[l];
            const auto& b = off.history()[s].layers()[l];
            // Equal, or both not measured (the last step's update_ratio).
            const auto same = [](double u, double v) {
                return u == v || (std::isnan(u) && std::isnan(v));
            };
            CHECK(same(a.output_grad_norm, b.output_grad_norm));
            CHECK(same(a.weight_grad_norm, b.weight_grad_norm));
            CHECK(same(a.update_ratio, b.update_ratio));
            CHECK(std::isfinite(a.sharpness));
            CHECK(std::isnan(b.sharpness));
        }
    }
}

TEST_CASE("the monitor refuses sharpness options that cannot measure", "[curvature][monitor]") {
    auto net = mlp<double>({.widths = {4, 6, 2}, .seed = 1});
    using Monitor = diag::GradientMonitor<double>;
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, {.sharpness = diag::SharpnessOptions{.every = 0}}), value_error,
        MessageContains({"GradientMonitor", "sharpness every must be at least 1"}));
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, {.sharpness = diag::SharpnessOptions{.lanczos = {.k = 0}}}), value_error,
        MessageContains({"GradientMonitor", "k >= 1"}));
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, {.sharpness = diag::SharpnessOptions{.lanczos = {.tolerance = -1.0}}}),
        value_error, MessageContains("tolerance must be positive"));
    // A refused monitor leaves no hook behind.
    cross_entropy((*net)(TensorD::constant(normal(4, 4, 1))), std::vector<int>{0, 1, 0, 1})
        .backward();
}
