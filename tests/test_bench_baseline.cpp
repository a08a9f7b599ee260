// The benchmark's hand-written baseline must do the work gradscope does, or the ratio in
// docs/PERFORMANCE.md means nothing: same loss, same gradients, same running statistics, same
// SGD update, for every workload variant (plain, batch norm, residual, both), in double.
#include "../bench/gradscope_workload.hpp"
#include "support/testing.hpp"

using namespace gradscope;
using namespace gradscope::testing;
using bench::BaselineMlp;
using bench::Workload;

namespace {

// Small enough to run in milliseconds, deep enough for every kind of layer to appear twice.
Workload small_variant(bool batch_norm, bool residual) {
    return {"test", 6, 5, 4, batch_norm, residual};
}

void require_same(const Matrix<double>& ours, const Matrix<double>& theirs, const char* what,
                  std::size_t layer) {
    INFO(what << " of layer " << layer);
    REQUIRE(ours.rows() == theirs.rows());
    REQUIRE(ours.cols() == theirs.cols());
    CHECK(all_close(ours, theirs, 1e-12, 1e-12));
}

void check_variant(bool batch_norm, bool residual) {
    const Workload w = small_variant(batch_norm, residual);
    auto net = bench::make_network<double>(w, 11);
    BaselineMlp<double> baseline(w);
    bench::copy_parameters(*net, baseline);

    const Matrix<double> x = normal(w.batch, w.width, 1);
    const Matrix<double> y = normal(w.batch, w.width, 2);
    const auto params = net->parameters();
    SGD<double> sgd(params, {.lr = 0.05});

    for (int step = 0; step < 2; ++step) {  // the second step starts from updated parameters
        INFO("step " << step);
        sgd.zero_grad();
        auto loss = mse_loss((*net)(TensorD::constant(x)), TensorD::constant(y));
        loss.backward();
        const double baseline_loss = baseline.forward_backward(x, y);
        CHECK(baseline_loss == Approx(loss.item()).epsilon(1e-13));

        const auto linears = net->linear_layers();
        REQUIRE(static_cast<Index>(linears.size()) == w.depth);
        for (std::size_t l = 0; l < linears.size(); ++l) {
            require_same(linears[l].second->weight().grad(), baseline.weight_grad(l), "weight grad",
                         l);
            require_same(linears[l].second->bias().grad(), baseline.bias_grad(l), "bias grad", l);
        }
        const auto norms = bench::batch_norms(*net);
        REQUIRE(norms.size() == (batch_norm ? static_cast<std::size_t>(w.depth - 1) : 0U));
        for (std::size_t l = 0; l < norms.size(); ++l) {
            require_same(norms[l]->weight().grad(), baseline.bn_weight_grad(l), "bn weight grad",
                         l);
            require_same(norms[l]->bias().grad(), baseline.bn_bias_grad(l), "bn bias grad", l);
            require_same(norms[l]->running_mean().value(), baseline.running_mean(l), "running mean",
                         l);
            require_same(norms[l]->running_var().value(), baseline.running_var(l), "running var",
                         l);
        }
        sgd.step();
        baseline.sgd_step(0.05);
    }
}

}  // namespace

TEST_CASE("the benchmark baseline matches gradscope on a plain ReLU stack", "[bench]") {
    check_variant(false, false);
}

TEST_CASE("the benchmark baseline matches gradscope with batch norm", "[bench]") {
    check_variant(true, false);
}

TEST_CASE("the benchmark baseline matches gradscope with residual blocks", "[bench]") {
    check_variant(false, true);
}

TEST_CASE("the benchmark baseline matches gradscope with batch norm in residual blocks",
          "[bench]") {
    check_variant(true, true);
}

TEST_CASE("the benchmark workloads are the shapes the issue names", "[bench]") {
    const auto find = [](std::string_view name) {
        for (const Workload& w : bench::workloads) {
            if (name == w.name) return w;
        }
        FAIL("no workload " << name);
        return Workload{};
    };
    CHECK(find("tiny").flops_per_step() == 6.0 * 1 * 32 * 32 * 4);
    CHECK(find("large").flops_per_step() == 6.0 * 256 * 1024 * 1024 * 8);
    CHECK(find("deep_bn_res").batch_norm);
    CHECK(find("deep_bn_res").residual);
    CHECK(find("deep").depth == 64);
}
