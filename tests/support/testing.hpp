// Helpers shared by the tests: seeded random leaves and a gradcheck assertion that prints the
// report when it fails.
#pragma once

#include <catch2/catch.hpp>
#include <gradscope/gradscope.hpp>

#include <cmath>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <string>
#include <vector>

namespace gradscope::testing {

using Inputs = std::vector<TensorD>;

inline Matrix<double> normal(Index rows, Index cols, std::uint64_t seed, double stddev = 1.0) {
    Rng rng(seed);
    return rng.normal_matrix<double>(rows, cols, 0.0, stddev);
}

inline Matrix<double> uniform(Index rows, Index cols, std::uint64_t seed, double low, double high) {
    Rng rng(seed);
    return rng.uniform_matrix<double>(rows, cols, low, high);
}

// Moves every entry at least `margin` away from `point`, so a kink (relu at 0, clamp at its
// bounds) never falls inside a finite-difference step.
inline Matrix<double> away_from(Matrix<double> m, double point, double margin) {
    for (Index i = 0; i < m.size(); ++i) {
        double& v = m.data()[i];
        if (std::abs(v - point) < margin) v = point + (v >= point ? margin : -margin);
    }
    return m;
}

inline TensorD param(const Matrix<double>& value) { return TensorD::parameter(value); }
inline TensorD param(Index rows, Index cols, std::uint64_t seed) {
    return TensorD::parameter(normal(rows, cols, seed));
}

// Checks f three ways: on the inputs as leaves, as interior values, and as interior values
// read by two consumers (see GradcheckInputs), so that an op whose BackwardReads leaves out a
// value its backward reads fails here.
template <class F>
void require_gradcheck(F&& f, const Inputs& inputs, GradcheckOptions options = {}) {
    for (GradcheckInputs how :
         {GradcheckInputs::leaves, GradcheckInputs::interior, GradcheckInputs::shared_interior}) {
        options.inputs_as = how;
        const GradcheckReport report = gradcheck(f, inputs, options);
        INFO("inputs as " << (how == GradcheckInputs::leaves     ? "leaves"
                              : how == GradcheckInputs::interior ? "interior values"
                                                                 : "interior values read twice"));
        INFO(report.message);
        REQUIRE(report.passed);
    }
}

// An exception matcher for REQUIRE_THROWS_MATCHES: the message contains every one of the
// given parts (Catch2 v2 only has an exact-message matcher for exceptions).
class MessageContains : public Catch::MatcherBase<std::exception> {
public:
    MessageContains(std::initializer_list<std::string> parts) : parts_(parts) {}
    explicit MessageContains(std::string part) : parts_{std::move(part)} {}
    bool match(const std::exception& e) const override {
        const std::string message = e.what();
        for (const std::string& part : parts_) {
            if (message.find(part) == std::string::npos) return false;
        }
        return true;
    }
    std::string describe() const override {
        std::string text = "has a message containing";
        for (const std::string& part : parts_) text += " \"" + part + "\"";
        return text;
    }

private:
    std::vector<std::string> parts_;
};

// Entrywise closeness in the sense of numpy.allclose.
template <class A, class B>
bool all_close(const A& actual, const B& expected, double rtol = 1e-12, double atol = 1e-12) {
    if (actual.rows() != expected.rows() || actual.cols() != expected.cols()) return false;
    for (Index r = 0; r < actual.rows(); ++r) {
        for (Index c = 0; c < actual.cols(); ++c) {
            const double a = static_cast<double>(actual(r, c));
            const double e = static_cast<double>(expected(r, c));
            if (!(std::abs(a - e) <= atol + rtol * std::abs(e))) return false;
        }
    }
    return true;
}

}  // namespace gradscope::testing
