// gradcheck is only worth trusting if it fails when it should.
#include "support/misdeclared_op.hpp"
#include "support/testing.hpp"

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// A user-defined elementwise function whose derivative is deliberately wrong by 1%.
struct SlightlyWrongSquare {
    static constexpr const char* name = "slightly_wrong_square";
    template <class T>
    T value(T x) const {
        return x * x;
    }
    template <class T>
    T derivative(T x, T) const {
        return T(2.02) * x;
    }
};

}  // namespace

TEST_CASE("gradcheck passes a correct gradient and reports tiny errors", "[gradcheck]") {
    const auto x = param(3, 4, 1);
    const auto report = gradcheck([](const Inputs& in) { return tanh(in[0]) * in[0]; }, {x});
    INFO(report.message);
    CHECK(report.passed);
    CHECK(report.max_abs_error < 1e-8);
    CHECK(report.elements_checked == 2 * 12);
}

TEST_CASE("gradcheck catches a derivative that is off by 1% and says where", "[gradcheck]") {
    const auto x = param(Matrix<double>::Constant(2, 2, 1.0) + normal(2, 2, 2, 0.1));
    const auto report =
        gradcheck([](const Inputs& in) { return elementwise(in[0], SlightlyWrongSquare{}); }, {x});
    CHECK_FALSE(report.passed);
    CHECK(report.max_rel_error == Approx(0.02 / 2.02).epsilon(1e-3));
    CHECK_THAT(report.message, Catch::Contains("FAILED") && Catch::Contains("input 0"));
}

TEST_CASE("gradcheck refuses to pass when both sides are zero everywhere", "[gradcheck]") {
    const auto x = param(Matrix<double>::Constant(2, 3, -1.0));  // relu is flat here
    const auto report = gradcheck([](const Inputs& in) { return relu(in[0]); }, {x});
    CHECK_FALSE(report.passed);
    CHECK(report.all_zero);
    CHECK_THAT(report.message, Catch::Contains("proves nothing"));
}

TEST_CASE("gradcheck fails on a non-finite gradient instead of ignoring it", "[gradcheck]") {
    Matrix<double> v(1, 2);
    v << 0.0, 1.0;  // sqrt'(0) is infinite
    const auto report = gradcheck([](const Inputs& in) { return sqrt(in[0]); }, {param(v)});
    CHECK_FALSE(report.passed);
    CHECK(report.non_finite);
}

TEST_CASE("gradcheck with no input that requires grad checks nothing and fails", "[gradcheck]") {
    const auto c = TensorD::constant(normal(2, 2, 3));
    const auto report = gradcheck([](const Inputs& in) { return in[0] * 2.0; }, {c});
    CHECK_FALSE(report.passed);
    CHECK(report.elements_checked == 0);
}

TEST_CASE("gradcheck leaves the inputs' values as they were", "[gradcheck]") {
    const auto x = param(3, 3, 4);
    const Matrix<double> before = x.value();
    (void)gradcheck([](const Inputs& in) { return exp(in[0]); }, {x});
    CHECK(x.value() == before);
}

TEST_CASE("gradcheck wants leaves as the inputs it perturbs", "[gradcheck][errors]") {
    const auto y = param(2, 2, 5) * 2.0;
    CHECK_THROWS_AS(gradcheck([](const Inputs& in) { return in[0]; }, {y}), graph_error);
}

TEST_CASE(
    "gradcheck on interior inputs catches an op whose BackwardReads leaves out a value it reads",
    "[gradcheck]") {
    const auto x = param(3, 3, 6);
    const auto f = [](const Inputs& in) { return misdeclared_square(in[0]); };
    CHECK(gradcheck(f, {x}).passed);  // on a leaf, which is never released, the bug hides
    for (GradcheckInputs how : {GradcheckInputs::interior, GradcheckInputs::shared_interior}) {
        REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.inputs_as = how}), graph_error,
                               MessageContains("BackwardReads declaration is wrong"));
    }
}

TEST_CASE("gradcheck refuses options that make the check meaningless", "[gradcheck][errors]") {
    const auto x = param(2, 2, 9);
    const auto f = [](const Inputs& in) { return exp(in[0]); };
    REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.step = 0.0}), value_error, MessageContains("step"));
    REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.step = -1e-6}), value_error,
                           MessageContains("step"));
    REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.step = std::nan("")}), value_error,
                           MessageContains("step"));
    REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.atol = -1.0}), value_error, MessageContains("atol"));
    REQUIRE_THROWS_MATCHES(gradcheck(f, {x}, {.projections = 0}), value_error,
                           MessageContains("projections"));
}
