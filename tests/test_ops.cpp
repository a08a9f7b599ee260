// Every differentiable op of the core: its forward value against a direct Eigen computation,
// its gradient against central finite differences (double precision), and its shape errors.
#include "support/testing.hpp"

using namespace gradscope;
using namespace gradscope::testing;

TEST_CASE("matmul multiplies and its gradient matches finite differences", "[ops][linalg]") {
    const auto a = param(3, 4, 1), b = param(4, 2, 2);
    CHECK(all_close(matmul(a, b).value(), a.value() * b.value()));
    require_gradcheck([](const Inputs& in) { return matmul(in[0], in[1]); }, {a, b});
    CHECK_THROWS_AS(matmul(a, a), shape_error);
    CHECK_THROWS_WITH(matmul(a, a), Catch::Contains("[3x4]") && Catch::Contains("matmul"));
}

TEST_CASE("transpose swaps rows and columns and its gradient matches", "[ops][linalg]") {
    const auto a = param(3, 5, 3);
    CHECK(all_close(transpose(a).value(), a.value().transpose()));
    require_gradcheck([](const Inputs& in) { return transpose(in[0]); }, {a});
}

TEST_CASE("linear computes x W^T + b with W stored out x in", "[ops][linalg]") {
    const auto x = param(4, 3, 4), w = param(5, 3, 5), b = param(1, 5, 6);
    const Matrix<double> expected =
        (x.value() * w.value().transpose()).rowwise() + b.value().row(0);
    CHECK(all_close(linear(x, w, b).value(), expected));
    CHECK(all_close(linear(x, w).value(), x.value() * w.value().transpose()));
    require_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
    require_gradcheck([](const Inputs& in) { return linear(in[0], in[1]); }, {x, w});
}

TEST_CASE("linear's gradient for a batch of one (an outer product) matches", "[ops][linalg]") {
    const auto x = param(1, 3, 7), w = param(5, 3, 8), b = param(1, 5, 9);
    require_gradcheck([](const Inputs& in) { return linear(in[0], in[1], in[2]); }, {x, w, b});
    require_gradcheck([](const Inputs& in) { return linear(in[0], in[1]); }, {x, w});
}

TEST_CASE("the serial-product threshold can be moved, not made negative",
          "[ops][linalg][threads]") {
    CHECK(parallel_product_min_work() == detail::default_parallel_product_min_work);
    set_parallel_product_min_work(0.0);
    CHECK(parallel_product_min_work() == 0.0);
    CHECK_THROWS_AS(set_parallel_product_min_work(-1.0), value_error);
    CHECK_THROWS_AS(set_parallel_product_min_work(std::nan("")), value_error);
    CHECK(parallel_product_min_work() == 0.0);  // a refused value changes nothing
    // Where the products run changes nothing in what they compute. The test build has no
    // OpenMP, so here both run on one thread; the check has teeth in an OpenMP build.
    const auto x = param(6, 5, 10), w = param(4, 5, 11), b = param(1, 4, 12);
    const Matrix<double> everywhere = linear(x, w, b).value();
    set_parallel_product_min_work(detail::default_parallel_product_min_work);
    CHECK(linear(x, w, b).value() == everywhere);
}

TEST_CASE("linear names the shapes when input width or bias do not fit", "[ops][linalg][errors]") {
    const auto x = param(4, 3, 4), w = param(5, 2, 5), b = param(1, 5, 6), bad_b = param(1, 4, 7);
    CHECK_THROWS_WITH(linear(x, w, b), Catch::Contains("[4x3]") && Catch::Contains("[5x2]"));
    const auto w_ok = param(5, 3, 8);
    CHECK_THROWS_WITH(linear(x, w_ok, bad_b), Catch::Contains("bias") && Catch::Contains("[1x4]"));
}

TEST_CASE("add, sub, mul and div agree with Eigen and with finite differences", "[ops][arith]") {
    const auto a = param(3, 4, 10);
    const auto b = param(uniform(3, 4, 11, 0.5, 2.0));
    CHECK(all_close((a + b).value(), a.value() + b.value()));
    CHECK(all_close((a - b).value(), a.value() - b.value()));
    CHECK(all_close((a * b).value(), a.value().cwiseProduct(b.value())));
    CHECK(all_close((a / b).value(), a.value().cwiseQuotient(b.value())));
    require_gradcheck([](const Inputs& in) { return in[0] + in[1]; }, {a, b});
    require_gradcheck([](const Inputs& in) { return in[0] - in[1]; }, {a, b});
    require_gradcheck([](const Inputs& in) { return in[0] * in[1]; }, {a, b});
    require_gradcheck([](const Inputs& in) { return in[0] / in[1]; }, {a, b});
}

TEST_CASE("binary ops broadcast a 1xn row, an rx1 column and a 1x1 scalar", "[ops][arith]") {
    const auto a = param(3, 4, 12);
    const auto row = param(uniform(1, 4, 13, 0.5, 2.0));
    const auto col = param(uniform(3, 1, 14, 0.5, 2.0));
    const auto one = param(uniform(1, 1, 15, 0.5, 2.0));
    CHECK(all_close((a + row).value(), a.value().rowwise() + row.value().row(0)));
    CHECK(all_close((a * col).value(), a.value().array().colwise() * col.value().col(0).array()));
    CHECK(all_close((a - one).value(), a.value().array() - one.value()(0, 0)));
    CHECK(all_close((row / a).value(),
                    (1.0 / a.value().array()).rowwise() * row.value().row(0).array()));
    for (const auto& other : {row, col, one}) {
        require_gradcheck([](const Inputs& in) { return in[0] + in[1]; }, {a, other});
        require_gradcheck([](const Inputs& in) { return in[0] - in[1]; }, {a, other});
        require_gradcheck([](const Inputs& in) { return in[0] * in[1]; }, {a, other});
        require_gradcheck([](const Inputs& in) { return in[0] / in[1]; }, {a, other});
        // The broadcast operand on the left.
        require_gradcheck([](const Inputs& in) { return in[1] - in[0]; }, {a, other});
        require_gradcheck([](const Inputs& in) { return in[1] / (in[0] * in[0] + 1.0); },
                          {a, other});
    }
}

TEST_CASE("binary ops reject shapes that do not broadcast, naming both", "[ops][arith][errors]") {
    const auto a = param(3, 4, 16), b = param(3, 5, 17), row = param(1, 3, 18),
               col = param(4, 1, 19);
    CHECK_THROWS_WITH(
        a + b, Catch::Contains("add") && Catch::Contains("[3x4]") && Catch::Contains("[3x5]"));
    CHECK_THROWS_AS(a * row, shape_error);
    CHECK_THROWS_AS(a - col, shape_error);
    // A row and a column would make an outer product, which a batch never means.
    CHECK_THROWS_AS(param(1, 4, 20) + param(3, 1, 21), shape_error);
}

TEST_CASE("neg and tensor-with-number arithmetic", "[ops][arith]") {
    const auto a = param(uniform(2, 3, 22, 0.5, 2.0));
    const Matrix<double> v = a.value();
    CHECK(all_close((-a).value(), -v));
    CHECK(all_close((a + 2.0).value(), v.array() + 2.0));
    CHECK(all_close((2.0 + a).value(), v.array() + 2.0));
    CHECK(all_close((a - 2.0).value(), v.array() - 2.0));
    CHECK(all_close((2.0 - a).value(), 2.0 - v.array()));
    CHECK(all_close((a * 3.0).value(), 3.0 * v));
    CHECK(all_close((3.0 * a).value(), 3.0 * v));
    CHECK(all_close((a / 4.0).value(), v / 4.0));
    CHECK(all_close((4.0 / a).value(), 4.0 / v.array()));
    CHECK(all_close(affine(a, 2.0, -1.0).value(), 2.0 * v.array() - 1.0));
    require_gradcheck([](const Inputs& in) { return -in[0]; }, {a});
    require_gradcheck([](const Inputs& in) { return 2.0 - in[0] * 3.0 + 1.0; }, {a});
    require_gradcheck([](const Inputs& in) { return in[0] / 4.0; }, {a});
    require_gradcheck([](const Inputs& in) { return 4.0 / in[0]; }, {a});
    CHECK_THROWS_AS(a / 0.0, value_error);
}

TEST_CASE("exp, log, sqrt and square match std and their derivatives", "[ops][elementwise]") {
    const auto a = param(3, 3, 23);
    const auto p = param(uniform(3, 3, 24, 0.3, 3.0));
    CHECK(all_close(exp(a).value(), a.value().array().exp()));
    CHECK(all_close(log(p).value(), p.value().array().log()));
    CHECK(all_close(sqrt(p).value(), p.value().array().sqrt()));
    CHECK(all_close(square(a).value(), a.value().array().square()));
    require_gradcheck([](const Inputs& in) { return exp(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return log(in[0]); }, {p});
    require_gradcheck([](const Inputs& in) { return sqrt(in[0]); }, {p});
    require_gradcheck([](const Inputs& in) { return square(in[0]); }, {a});
}

TEST_CASE("pow with fractional, negative and integer exponents", "[ops][elementwise]") {
    const auto p = param(uniform(3, 3, 25, 0.3, 3.0));
    const auto a = param(3, 3, 26);
    CHECK(all_close(pow(p, 1.5).value(), p.value().array().pow(1.5)));
    CHECK(all_close(pow(a, 3.0).value(), a.value().array().cube(), 1e-12, 1e-12));
    require_gradcheck([](const Inputs& in) { return pow(in[0], 1.5); }, {p});
    require_gradcheck([](const Inputs& in) { return pow(in[0], -2.0); }, {p});
    require_gradcheck([](const Inputs& in) { return pow(in[0], 3.0); }, {a});  // negative bases
}

TEST_CASE("abs and clamp follow PyTorch's gradients away from their kinks", "[ops][elementwise]") {
    const auto a = param(away_from(normal(4, 4, 27), 0.0, 0.05));
    const auto c = param(away_from(away_from(normal(4, 4, 28), -0.5, 0.05), 0.5, 0.05));
    CHECK(all_close(abs(a).value(), a.value().cwiseAbs()));
    CHECK(all_close(clamp(c, -0.5, 0.5).value(), c.value().cwiseMax(-0.5).cwiseMin(0.5)));
    require_gradcheck([](const Inputs& in) { return abs(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return clamp(in[0], -0.5, 0.5); }, {c});
    CHECK_THROWS_AS(clamp(c, 1.0, -1.0), value_error);
}

TEST_CASE("sum and mean over everything, each row and each column", "[ops][reduction]") {
    const auto a = param(3, 5, 29);
    const Matrix<double> v = a.value();
    CHECK(sum(a).item() == Approx(v.sum()));
    CHECK(mean(a).item() == Approx(v.mean()));
    CHECK(all_close(row_sum(a).value(), v.rowwise().sum()));
    CHECK(all_close(col_sum(a).value(), v.colwise().sum()));
    CHECK(all_close(row_mean(a).value(), v.rowwise().mean()));
    CHECK(all_close(col_mean(a).value(), v.colwise().mean()));
    CHECK(row_sum(a).shape() == Shape{3, 1});
    CHECK(col_sum(a).shape() == Shape{1, 5});
    require_gradcheck([](const Inputs& in) { return sum(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return mean(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return row_sum(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return col_sum(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return row_mean(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return col_mean(in[0]); }, {a});
    CHECK_THROWS_AS(mean(TensorD::zeros(0, 3)), shape_error);
}

TEST_CASE("max sends its gradient to the winning element", "[ops][reduction]") {
    // Distinct entries, so every maximum is unique and the derivative is defined.
    Matrix<double> v(3, 4);
    v << 0.1, 2.0, -1.0, 0.7,  //
        3.1, -0.4, 0.9, 1.3,   //
        -2.2, 0.5, 2.6, -0.1;
    const auto a = param(v);
    CHECK(max(a).item() == 3.1);
    CHECK(all_close(row_max(a).value(), v.rowwise().maxCoeff()));
    CHECK(all_close(col_max(a).value(), v.colwise().maxCoeff()));
    auto m = max(a);
    m.backward();
    Matrix<double> expected = Matrix<double>::Zero(3, 4);
    expected(1, 0) = 1.0;
    CHECK(all_close(a.grad(), expected));
    require_gradcheck([](const Inputs& in) { return max(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return row_max(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return col_max(in[0]); }, {a});
    CHECK_THROWS_AS(max(TensorD::zeros(0, 0)), shape_error);
}

TEST_CASE("softmax rows sum to one and its gradient matches", "[ops][softmax]") {
    const auto a = param(4, 5, 30);
    const Matrix<double> s = softmax(a).value();
    CHECK(all_close(s.rowwise().sum(), Matrix<double>::Ones(4, 1)));
    const Matrix<double> e = a.value().array().exp();
    CHECK(all_close(s, (e.array().colwise() / e.rowwise().sum().array().col(0)).matrix()));
    require_gradcheck([](const Inputs& in) { return softmax(in[0]); }, {a});
}

TEST_CASE("log_softmax is stable for logits of 1000 and matches its gradient", "[ops][softmax]") {
    const auto a = param(4, 5, 31);
    const Matrix<double> ls = log_softmax(a).value();
    const Matrix<double> s = softmax(a).value();
    CHECK(all_close(ls, s.array().log().matrix(), 1e-12, 1e-12));
    require_gradcheck([](const Inputs& in) { return log_softmax(in[0]); }, {a});

    Matrix<double> big(1, 3);
    big << 1000.0, 999.0, -1000.0;
    const auto huge = TensorD::constant(big);
    const Matrix<double> stable = log_softmax(huge).value();
    CHECK(stable.allFinite());
    CHECK(stable(0, 0) == Approx(-std::log1p(std::exp(-1.0))));
    CHECK(softmax(huge).value().allFinite());
    CHECK(log_softmax(TensorF::constant(big.cast<float>())).value().allFinite());
}

TEST_CASE("concat_cols and slice_cols move columns and their gradients", "[ops][columns]") {
    const auto a = param(3, 2, 32), b = param(3, 1, 33), c = param(3, 3, 34);
    const auto joined = concat_cols({a, b, c});
    REQUIRE(joined.shape() == Shape{3, 6});
    CHECK(all_close(joined.value().leftCols(2), a.value()));
    CHECK(all_close(joined.value().col(2), b.value()));
    CHECK(all_close(joined.value().rightCols(3), c.value()));
    CHECK(all_close(slice_cols(c, 1, 2).value(), c.value().middleCols(1, 2)));
    require_gradcheck(
        [](const Inputs& in) {
            return concat_cols({in[0], in[1], in[2]});
        },
        {a, b, c});
    require_gradcheck([](const Inputs& in) { return slice_cols(in[0], 1, 2); }, {c});
    CHECK_THROWS_AS(concat_cols(a, param(2, 2, 35)), shape_error);
    CHECK_THROWS_WITH(slice_cols(c, 2, 2), Catch::Contains("[3x3]"));
    CHECK_THROWS_AS(slice_cols(c, -1, 1), shape_error);
}

TEST_CASE("the activation op applies sigmoid, tanh and relu with fused derivatives",
          "[ops][activation]") {
    const auto a = param(away_from(normal(4, 3, 36, 2.0), 0.0, 0.05));
    const Matrix<double> v = a.value();
    CHECK(all_close(sigmoid(a).value(), (1.0 / (1.0 + (-v.array()).exp())).matrix()));
    CHECK(all_close(tanh(a).value(), v.array().tanh().matrix()));
    CHECK(all_close(relu(a).value(), v.cwiseMax(0.0)));
    CHECK(all_close(elementwise(a, Identity{}).value(), v));
    require_gradcheck([](const Inputs& in) { return sigmoid(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return tanh(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return relu(in[0]); }, {a});
    require_gradcheck([](const Inputs& in) { return elementwise(in[0], Identity{}); }, {a});
}

TEST_CASE("sigmoid neither overflows nor loses its tails at large inputs", "[ops][activation]") {
    Matrix<float> v(1, 4);
    v << -200.0f, -30.0f, 30.0f, 200.0f;
    const Matrix<float> s = sigmoid(TensorF::constant(v)).value();
    CHECK(s.allFinite());
    CHECK(s(0, 0) >= 0.0f);
    CHECK(s(0, 0) < 1e-30f);
    CHECK(s(0, 1) == Approx(9.3576e-14f).epsilon(1e-3));  // exp(-30): representable, not flushed
    CHECK(s(0, 3) == 1.0f);
}

TEST_CASE("ops work in float as well as double", "[ops][float]") {
    const auto x = TensorF::constant(normal(8, 4, 37).cast<float>());
    const auto w = TensorF::parameter(normal(3, 4, 38).cast<float>());
    const auto b = TensorF::parameter(normal(1, 3, 39).cast<float>());
    auto loss = mean(square(tanh(linear(x, w, b))));
    loss.backward();
    // The same computation in double, by hand.
    const Matrix<double> xd = x.value().cast<double>(), wd = w.value().cast<double>();
    const Matrix<double> z = (xd * wd.transpose()).rowwise() + b.value().cast<double>().row(0);
    const Matrix<double> h = z.array().tanh();
    const Matrix<double> dz =
        (2.0 / static_cast<double>(h.size())) * h.array() * (1.0 - h.array().square());
    CHECK(loss.item() == Approx(h.array().square().mean()).epsilon(1e-5));
    CHECK(all_close(w.grad().cast<double>(), dz.transpose() * xd, 1e-4, 1e-6));
}

// add and sub hand their output's gradient buffer to an interior first operand instead of
// copying it (ops/support.hpp, hand_over_grad). These cases exercise that path: interior
// operands, the same node on both sides, an operand that is also used elsewhere, and gradients
// that the user asked to keep.
TEST_CASE("add and sub with interior operands: gradients through the handed-over buffer", "[ops]") {
    const TensorD x = param(3, 4, 41);
    const TensorD y = param(3, 4, 42);
    require_gradcheck([](const Inputs& in) { return (in[0] * in[1]) + exp(in[0]); }, {x, y});
    require_gradcheck([](const Inputs& in) { return (in[0] * in[1]) - in[1] * 3.0; }, {x, y});
    require_gradcheck(
        [](const Inputs& in) {
            const TensorD h = in[0] * in[1];
            return h + h;  // both operands are one node
        },
        {x, y});
    require_gradcheck(
        [](const Inputs& in) {
            const TensorD h = exp(in[0]);
            return (h + in[1]) * h;  // h also feeds the product after the add
        },
        {x, y});
}

TEST_CASE("a retained gradient survives the add's hand-over", "[ops]") {
    const TensorD x = param(2, 3, 43);
    TensorD h = x * 2.0;
    h.retain_grad();
    TensorD out = h + x;
    out.retain_grad();
    sum(out * out).backward();
    const Matrix<double> expected_out_grad = 2.0 * (3.0 * x.value()).eval();
    CHECK(all_close(out.grad(), expected_out_grad));
    CHECK(all_close(h.grad(), expected_out_grad));
    CHECK(all_close(x.grad(), 3.0 * expected_out_grad));
}
