// Losses: values and gradients against PyTorch, finite differences, numerical stability and
// the errors a user meets.
#include "support/reference.hpp"

#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

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

TEST_CASE("cross_entropy takes int64 labels as PyTorch gives them, with the same loss and gradient",
          "[losses][labels]") {
    const std::vector<int> labels = {3, -100, 0};
    const std::vector<std::int64_t> wide = {3, -100, 0};
    const CrossEntropyOptions options{.ignore_index = -100, .label_smoothing = 0.1};
    auto narrow_logits = param(3, 4, 4);
    auto wide_logits = param(3, 4, 4);
    auto narrow_loss = cross_entropy(narrow_logits, labels, options);
    auto wide_loss = cross_entropy(wide_logits, wide, options);
    CHECK(wide_loss.item() == narrow_loss.item());
    narrow_loss.backward();
    wide_loss.backward();
    CHECK(wide_logits.grad() == narrow_logits.grad());
    CHECK(cross_entropy(wide_logits, std::vector<std::int64_t>{3, 1, 0}, Reduction::sum).item() ==
          cross_entropy(narrow_logits, std::vector<int>{3, 1, 0}, Reduction::sum).item());

    // 2^32 + 1 would wrap to class 1 as an int.
    const std::vector<std::int64_t> too_large = {0, 1, (std::int64_t{1} << 32) + 1};
    CHECK_THROWS_MATCHES(cross_entropy(wide_logits, too_large), value_error,
                         MessageContains("cross_entropy: label 4294967297 at row 2 does not fit "
                                         "in an int"));
    CHECK_THROWS_MATCHES(cross_entropy(wide_logits, too_large, Reduction::sum), value_error,
                         MessageContains("label 4294967297 at row 2"));
    CHECK_THROWS_MATCHES(cross_entropy(wide_logits, std::vector<std::int64_t>{0, 4, 1}),
                         value_error, MessageContains({"label 4", "row 1", "4 classes"}));
}

TEST_CASE("losses reject prediction and target shapes that differ", "[losses][errors]") {
    CHECK_THROWS_AS(mse_loss(param(3, 4, 5), param(4, 3, 6)), shape_error);
    CHECK_THROWS_AS(binary_cross_entropy_with_logits(param(3, 4, 5), param(3, 3, 6)), shape_error);
}

// ---- Options with PyTorch's semantics: every case of tools/make_loss_reference.py ----

namespace {

Reduction reduction_named(const std::string& name) {
    if (name == "none") return Reduction::none;
    if (name == "sum") return Reduction::sum;
    REQUIRE(name == "mean");
    return Reduction::mean;
}

// The loss a reference case names, with its options, on the case's inputs.
TensorD loss_of_case(ReferenceCase& c) {
    const nlohmann::json& o = c.json.at("options");
    const std::string kind = c.json.at("loss").get<std::string>();
    const Reduction reduction = reduction_named(o.at("reduction").get<std::string>());
    if (kind == "cross_entropy") {
        CrossEntropyOptions options{.reduction = reduction,
                                    .label_smoothing = o.at("label_smoothing").get<double>()};
        if (o.contains("weight")) options.weight = o.at("weight").get<std::vector<double>>();
        if (o.contains("ignore_index")) options.ignore_index = o.at("ignore_index").get<int>();
        return cross_entropy(c.in("logits"), labels_of(c.input("labels")), options);
    }
    if (kind == "binary_cross_entropy_with_logits") {
        BCEWithLogitsOptions options{.reduction = reduction};
        if (o.contains("pos_weight")) {
            options.pos_weight = o.at("pos_weight").get<std::vector<double>>();
        }
        // a matrix, so it is stored among the inputs (without a gradient)
        if (c.json.at("inputs").contains("weight")) options.weight = c.input("weight");
        return binary_cross_entropy_with_logits(c.in("x"), c.in("t"), options);
    }
    if (kind == "mse_loss") return mse_loss(c.in("p"), c.in("t"), reduction);
    if (kind == "l1_loss") return l1_loss(c.in("p"), c.in("t"), reduction);
    if (kind == "huber_loss") {
        return huber_loss(c.in("p"), c.in("t"),
                          {.reduction = reduction, .delta = o.at("delta").get<double>()});
    }
    REQUIRE(kind == "smooth_l1_loss");
    return smooth_l1_loss(c.in("p"), c.in("t"),
                          {.reduction = reduction, .beta = o.at("beta").get<double>()});
}

}  // namespace

// Same formulas in the same precision, summed in another order: the values agree to ~1e-15
// relative, and 1e-10 leaves room for that while any wrong term (a missing weight, the wrong
// denominator, a smoothing share of e instead of e/C) moves an O(1) loss by far more.
TEST_CASE("every loss option matches PyTorch in value and gradient, for each reduction",
          "[losses][reference]") {
    const auto& cases = reference_file("loss_reference.json").at("cases");
    std::set<std::string> kinds;
    for (const auto& [name, json] : cases.items()) {
        INFO("case " << name);
        ReferenceCase c("loss_reference.json", name);
        TensorD loss = loss_of_case(c);
        c.check_output("loss", loss);
        loss.backward(c.input("seed"));
        c.check_grads();
        kinds.insert(json.at("loss").get<std::string>() + " " +
                     json.at("options").at("reduction").get<std::string>());
    }
    CHECK(kinds.size() == 6 * 3);  // every loss with every reduction
}

// The same cases as above for bce's element weight, to 1e-12: weighting is one more product
// per element, which leaves the ~1e-15 agreement as it was.
TEST_CASE("binary cross-entropy's weight matches PyTorch for every broadcast shape and reduction",
          "[losses][reference]") {
    const auto& cases = reference_file("loss_reference.json").at("cases");
    std::set<std::string> shapes;
    for (const auto& item : cases.items()) {
        const std::string& name = item.key();
        if (name.rfind("bce_weight_", 0) != 0) continue;
        INFO("case " << name);
        ReferenceCase c("loss_reference.json", name);
        TensorD loss = loss_of_case(c);
        c.check_output("loss", loss, 1e-12);
        loss.backward(c.input("seed"));
        c.check_grads(1e-12);
        const Matrix<double> w = c.input("weight");
        shapes.insert(std::to_string(w.rows()) + "x" + std::to_string(w.cols()));
    }
    CHECK(shapes == std::set<std::string>{"1x1", "1x4", "7x1", "7x4"});
}

TEST_CASE("binary cross-entropy's mean divides by the element count, not the weights' sum",
          "[losses]") {
    const auto x = param(3, 2, 18), t = param(uniform(3, 2, 19, 0.0, 1.0));
    const double plain = binary_cross_entropy_with_logits(x, t).item();
    CHECK(binary_cross_entropy_with_logits(x, t, {.weight = Matrix<double>::Ones(3, 2)}).item() ==
          plain);
    const Matrix<double> two = Matrix<double>::Constant(1, 1, 2.0);
    CHECK(binary_cross_entropy_with_logits(x, t, {.weight = two}).item() ==
          Approx(2.0 * plain).epsilon(1e-15));
}

TEST_CASE("binary cross-entropy's weight passes a finite-difference check for every shape",
          "[losses]") {
    const auto x = param(uniform(5, 3, 20, -4.0, 4.0));
    const auto t = param(uniform(5, 3, 21, 0.0, 1.0));
    // row 1 of the full weight is 0: those elements must send no gradient at all
    Matrix<double> full = uniform(5, 3, 22, 0.0, 3.0);
    full.row(1).setZero();
    const std::vector<Matrix<double>> weights{Matrix<double>::Constant(1, 1, 2.5),
                                              uniform(1, 3, 23, 0.0, 3.0),
                                              uniform(5, 1, 24, 0.0, 3.0), full};
    for (Reduction reduction : {Reduction::none, Reduction::mean, Reduction::sum}) {
        for (const Matrix<double>& w : weights) {
            INFO("reduction " << to_string(reduction) << ", weight " << w.rows() << "x"
                              << w.cols());
            const BCEWithLogitsOptions bce{
                .weight = w, .reduction = reduction, .pos_weight = {0.5, 1.0, 4.0}};
            require_gradcheck(
                [&](const Inputs& in) {
                    return binary_cross_entropy_with_logits(in[0], in[1], bce);
                },
                {x, t});
        }
    }
    auto x2 = param(x.value()), t2 = param(t.value());
    auto loss = binary_cross_entropy_with_logits(x2, t2, {.weight = full});
    loss.backward();
    CHECK(x2.grad().row(1).isZero(0.0));
    CHECK(t2.grad().row(1).isZero(0.0));
    CHECK_FALSE(x2.grad().isZero(0.0));
}

TEST_CASE("loss options pass a finite-difference check for each reduction", "[losses]") {
    const auto logits = param(6, 4, 7);
    const std::vector<int> labels{2, 0, 3, 1, 3, 0};
    const auto x = param(uniform(5, 3, 8, -4.0, 4.0));
    const auto t = param(uniform(5, 3, 9, 0.0, 1.0));
    // differences kept 0.05 from the kinks at 0 (l1) and at +-0.7 (huber, smooth_l1), so no
    // central-difference step (~1e-6) straddles one
    const auto p = param(normal(5, 3, 10));
    const Matrix<double> d =
        away_from(away_from(away_from(normal(5, 3, 11), 0.0, 0.05), 0.7, 0.05), -0.7, 0.05);
    const auto q = param(p.value() - d);
    for (Reduction reduction : {Reduction::none, Reduction::mean, Reduction::sum}) {
        INFO("reduction " << to_string(reduction));
        const CrossEntropyOptions ce{.weight = {0.5, 2.0, 0.0, 1.5},
                                     .ignore_index = 3,
                                     .reduction = reduction,
                                     .label_smoothing = 0.3};
        require_gradcheck([&](const Inputs& in) { return cross_entropy(in[0], labels, ce); },
                          {logits});
        const BCEWithLogitsOptions bce{.reduction = reduction, .pos_weight = {0.5, 1.0, 4.0}};
        require_gradcheck(
            [&](const Inputs& in) { return binary_cross_entropy_with_logits(in[0], in[1], bce); },
            {x, t});
        require_gradcheck([&](const Inputs& in) { return l1_loss(in[0], in[1], reduction); },
                          {p, q});
        require_gradcheck([&](const Inputs& in) { return mse_loss(in[0], in[1], reduction); },
                          {p, q});
        require_gradcheck(
            [&](const Inputs& in) {
                return huber_loss(in[0], in[1], {.reduction = reduction, .delta = 0.7});
            },
            {p, q});
        for (double beta : {0.0, 0.7}) {
            require_gradcheck(
                [&](const Inputs& in) {
                    return smooth_l1_loss(in[0], in[1], {.reduction = reduction, .beta = beta});
                },
                {p, q});
        }
    }
}

TEST_CASE("cross_entropy with every label ignored refuses the mean, and sums to 0",
          "[losses][errors]") {
    const auto logits = param(3, 4, 12);
    const std::vector<int> padding{-100, -100, -100};
    // PyTorch returns NaN here (0/0); gradscope says why instead
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, padding, {.ignore_index = -100}), value_error,
                           MessageContains({"cross_entropy", "total weight", "0", "NaN"}));
    // rows left whose classes all weigh 0 are the same 0/0
    REQUIRE_THROWS_AS(cross_entropy(logits, std::vector<int>{1, 1, -100},
                                    {.weight = {1.0, 0.0, 1.0, 1.0}, .ignore_index = -100}),
                      value_error);
    auto sum = cross_entropy(logits, padding, {.ignore_index = -100, .reduction = Reduction::sum});
    CHECK(sum.item() == 0.0);
    sum.backward();
    CHECK(logits.grad().isZero(0.0));
    auto none = cross_entropy(logits, std::vector<int>{0, -100, 2},
                              {.ignore_index = -100, .reduction = Reduction::none});
    REQUIRE(none.value().rows() == 3);
    CHECK(none.value()(1, 0) == 0.0);
    CHECK(none.value()(0, 0) > 0.0);
}

TEST_CASE("cross_entropy names a bad weight, smoothing or unignored label", "[losses][errors]") {
    const auto logits = param(3, 4, 13);
    const std::vector<int> labels{0, 1, 2};
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, labels, {.weight = {1.0, 1.0, 1.0}}), shape_error,
                           MessageContains({"weight has 3 entries", "4 classes", "[3x4]"}));
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, labels, {.weight = {1.0, -0.5, 1.0, 1.0}}),
                           value_error, MessageContains({"weight[1]", "non-negative", "-0.5"}));
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, labels, {.weight = {1.0, 1.0, NAN, 1.0}}),
                           value_error, MessageContains({"weight[2]", "nan"}));
    for (double smoothing : {-0.1, 1.5, static_cast<double>(NAN)}) {
        REQUIRE_THROWS_MATCHES(cross_entropy(logits, labels, {.label_smoothing = smoothing}),
                               value_error, MessageContains("label_smoothing must be in [0, 1]"));
    }
    // PyTorch's default ignore_index is -100; here nothing is ignored unless asked
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, std::vector<int>{0, -100, 2}), value_error,
                           MessageContains({"label -100", "row 1"}));
    REQUIRE_THROWS_MATCHES(cross_entropy(logits, std::vector<int>{0, -100, 2}, {.ignore_index = 7}),
                           value_error, MessageContains({"label -100", "not ignore_index 7"}));
}

TEST_CASE("an ignored class inside the range drops its rows only", "[losses]") {
    // ignoring class 1 must equal the mean over the rows whose label is not 1
    const auto logits = param(4, 3, 14);
    const double with_ignore =
        cross_entropy(logits, std::vector<int>{1, 0, 1, 2}, {.ignore_index = 1}).item();
    const double by_hand =
        cross_entropy(param(logits.value()({1, 3}, Eigen::all)), std::vector<int>{0, 2}).item();
    CHECK(with_ignore == Approx(by_hand).epsilon(1e-14));
}

TEST_CASE("losses name a bad pos_weight, delta or beta", "[losses][errors]") {
    const auto x = param(2, 3, 15), t = param(uniform(2, 3, 16, 0.0, 1.0));
    REQUIRE_THROWS_MATCHES(binary_cross_entropy_with_logits(x, t, {.pos_weight = {1.0, 2.0}}),
                           shape_error,
                           MessageContains({"pos_weight has 2 entries", "3 columns", "[2x3]"}));
    REQUIRE_THROWS_MATCHES(binary_cross_entropy_with_logits(x, t, {.pos_weight = {1.0, -2.0, 1.0}}),
                           value_error, MessageContains({"pos_weight[1]", "-2"}));
    REQUIRE_THROWS_MATCHES(huber_loss(x, t, {.delta = 0.0}), value_error,
                           MessageContains({"huber_loss", "delta", "positive", "got 0"}));
    REQUIRE_THROWS_MATCHES(smooth_l1_loss(x, t, {.beta = -1.0}), value_error,
                           MessageContains({"smooth_l1_loss", "beta", "non-negative", "-1"}));
    REQUIRE_THROWS_AS(l1_loss(x, param(3, 2, 17)), shape_error);
    REQUIRE_THROWS_AS(huber_loss(x, param(3, 2, 17)), shape_error);
}

TEST_CASE("binary cross-entropy with pos_weight stays finite for logits of 100 in float",
          "[losses]") {
    Matrix<float> z(2, 2), y(2, 2);
    z << 100.0f, -100.0f, -100.0f, 100.0f;
    y << 0.0f, 1.0f, 0.0f, 1.0f;
    auto logits = TensorF::parameter(z);
    auto loss = binary_cross_entropy_with_logits(
        logits, TensorF::constant(y), {.reduction = Reduction::sum, .pos_weight = {3.0, 3.0}});
    // the two confidently wrong elements cost 100 and 3 * 100, the right ones ~e^-100
    CHECK(loss.item() == Approx(400.0f).epsilon(1e-6));
    loss.backward();
    REQUIRE(logits.grad().allFinite());
    CHECK(logits.grad()(0, 0) == Approx(1.0f));   // (1 - t) sigmoid(100)
    CHECK(logits.grad()(0, 1) == Approx(-3.0f));  // -p t sigmoid(100)
}

TEST_CASE("binary cross-entropy names a weight of the wrong shape, or NaN or negative",
          "[losses][errors]") {
    const auto x = param(2, 3, 25), t = param(uniform(2, 3, 26, 0.0, 1.0));
    const auto bce = [&](const Matrix<double>& w) {
        return binary_cross_entropy_with_logits(x, t, {.weight = w});
    };
    const std::initializer_list<std::string> shape_parts{"weight [2x2]", "logits [2x3]",
                                                         "[1x1], [1x3], [2x1] or [2x3]"};
    REQUIRE_THROWS_MATCHES(bce(Matrix<double>::Ones(2, 2)), shape_error,
                           MessageContains(shape_parts));
    REQUIRE_THROWS_MATCHES(bce(Matrix<double>::Ones(1, 2)), shape_error,
                           MessageContains({"weight [1x2]", "logits [2x3]"}));
    // a [3x1] column on [1x3] logits would broadcast both ways (an outer product): refused
    REQUIRE_THROWS_MATCHES(
        binary_cross_entropy_with_logits(param(1, 3, 27), param(uniform(1, 3, 28, 0.0, 1.0)),
                                         {.weight = Matrix<double>::Ones(3, 1)}),
        shape_error, MessageContains({"weight [3x1]", "logits [1x3]"}));
    Matrix<double> w = Matrix<double>::Ones(2, 3);
    w(1, 2) = NAN;
    REQUIRE_THROWS_MATCHES(
        bce(w), value_error,
        MessageContains({"binary_cross_entropy_with_logits", "weight(1, 2)", "nan"}));
    w(1, 2) = 1.0;
    w(0, 1) = -0.5;
    REQUIRE_THROWS_MATCHES(bce(w), value_error,
                           MessageContains({"weight(0, 1)", "non-negative", "-0.5"}));
    REQUIRE_THROWS_MATCHES(bce(Matrix<double>::Constant(1, 1, INFINITY)), value_error,
                           MessageContains({"weight(0, 0)", "finite"}));
}

// Written in the order of PyTorch's keywords (CrossEntropyLoss: weight, ignore_index, reduction,
// label_smoothing; BCEWithLogitsLoss: weight, reduction, pos_weight; HuberLoss: reduction,
// delta; SmoothL1Loss: reduction, beta), every field: designated initialisers must follow the
// declaration order, so this compiles only while the structs keep PyTorch's order.
TEST_CASE("loss options take their fields in PyTorch's keyword order", "[losses][options]") {
    const CrossEntropyOptions ce{.weight = {1.0, 2.0},
                                 .ignore_index = -1,
                                 .reduction = Reduction::sum,
                                 .label_smoothing = 0.1};
    const BCEWithLogitsOptions bce{
        .weight = Matrix<double>::Ones(1, 2), .reduction = Reduction::sum, .pos_weight = {2.0, 1.0}};
    const HuberLossOptions huber{.reduction = Reduction::sum, .delta = 0.5};
    const SmoothL1LossOptions smooth{.reduction = Reduction::sum, .beta = 0.5};
    CHECK((ce.ignore_index == -1 && ce.label_smoothing == 0.1));
    CHECK((bce.weight.cols() == 2 && bce.pos_weight.front() == 2.0));
    CHECK((huber.delta == 0.5 && smooth.beta == 0.5));
}
