// Losses: values and gradients against PyTorch, finite differences, numerical stability and
// the errors a user meets.
#include "support/reference.hpp"

using namespace gradscope;
using namespace gradscope::testing;

namespace {

std::vector<int> labels_of(const Matrix<double>& m) {
    std::vector<int> out;
    for (Index i = 0; i < m.size(); ++i) out.push_back(static_cast<int>(m.data()[i]));
    return out;
}

}  // namespace

TEST_CASE("cross_entropy matches PyTorch with mean and sum reduction", "[losses][reference]") {
    ReferenceCase c("nn_reference.json", "losses");
    const auto labels = labels_of(c.input("labels"));
    auto logits = TensorD::parameter(c.input("logits"));
    auto mean_loss = cross_entropy(logits, labels);
    c.check_output("ce_mean", mean_loss);
    mean_loss.backward();
    CHECK(all_close(logits.grad(), c.grad("ce_mean.logits"), 1e-10, 1e-14));
    logits.clear_grad();
    auto sum_loss = cross_entropy(logits, labels, Reduction::sum);
    c.check_output("ce_sum", sum_loss);
    sum_loss.backward();
    CHECK(all_close(logits.grad(), c.grad("ce_sum.logits"), 1e-10, 1e-14));
}

TEST_CASE("binary cross-entropy with logits of 30 matches PyTorch", "[losses][reference]") {
    ReferenceCase c("nn_reference.json", "losses");
    auto z = TensorD::parameter(c.input("z"));
    auto t = TensorD::parameter(c.input("t"));
    auto loss = binary_cross_entropy_with_logits(z, t);
    c.check_output("bce", loss);
    loss.backward();
    CHECK(all_close(z.grad(), c.grad("bce.z"), 1e-10, 1e-14));
    CHECK(all_close(t.grad(), c.grad("bce.t"), 1e-10, 1e-14));
}

TEST_CASE("mse with sum reduction matches PyTorch", "[losses][reference]") {
    ReferenceCase c("nn_reference.json", "losses");
    auto p = TensorD::parameter(c.input("p"));
    auto q = TensorD::parameter(c.input("q"));
    auto loss = mse_loss(p, q, Reduction::sum);
    c.check_output("mse_sum", loss);
    loss.backward();
    CHECK(all_close(p.grad(), c.grad("mse_sum.p"), 1e-10, 1e-14));
    CHECK(all_close(q.grad(), c.grad("mse_sum.q"), 1e-10, 1e-14));
}

TEST_CASE("every loss passes a finite-difference check", "[losses]") {
    const auto a = param(4, 3, 1), b = param(4, 3, 2);
    const auto targets = param(uniform(4, 3, 3, 0.0, 1.0));
    const std::vector<int> labels{2, 0, 1, 1};
    require_gradcheck([](const Inputs& in) { return mse_loss(in[0], in[1]); }, {a, b});
    require_gradcheck([&](const Inputs& in) { return cross_entropy(in[0], labels); }, {a});
    require_gradcheck(
        [&](const Inputs& in) { return cross_entropy(in[0], labels, Reduction::sum); }, {a});
    require_gradcheck(
        [](const Inputs& in) { return binary_cross_entropy_with_logits(in[0], in[1]); },
        {a, targets});
}

TEST_CASE("cross_entropy stays finite for logits of 1e4 in float", "[losses]") {
    Matrix<float> z(2, 3);
    z << 1e4f, -1e4f, 0.0f, -1e4f, 1e4f, 5e3f;
    auto logits = TensorF::parameter(z);
    auto loss = cross_entropy(logits, std::vector<int>{1, 1});
    CHECK(std::isfinite(loss.item()));
    CHECK(loss.item() == Approx(1e4f));  // first row: -log softmax = 2e4, second: ~0
    loss.backward();
    CHECK(logits.grad().allFinite());
}

TEST_CASE("cross_entropy names a label outside the classes, and a count mismatch",
          "[losses][errors]") {
    const auto logits = param(3, 4, 4);
    CHECK_THROWS_AS(cross_entropy(logits, std::vector<int>{0, 4, 1}), value_error);
    CHECK_THROWS_WITH(
        cross_entropy(logits, std::vector<int>{0, 4, 1}),
        Catch::Contains("label 4") && Catch::Contains("row 1") && Catch::Contains("4 classes"));
    CHECK_THROWS_WITH(cross_entropy(logits, std::vector<int>{0, -1, 1}),
                      Catch::Contains("label -1"));
    CHECK_THROWS_WITH(cross_entropy(logits, std::vector<int>{0, 1}),
                      Catch::Contains("2 labels") && Catch::Contains("[3x4]"));
}

TEST_CASE("losses reject prediction and target shapes that differ", "[losses][errors]") {
    CHECK_THROWS_AS(mse_loss(param(3, 4, 5), param(4, 3, 6)), shape_error);
    CHECK_THROWS_AS(binary_cross_entropy_with_logits(param(3, 4, 5), param(3, 3, 6)), shape_error);
}
