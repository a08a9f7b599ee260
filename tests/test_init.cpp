// Weight initialisers: each formula's variance and mean measured on a large draw, the bounds of
// the uniform ones, orthogonality, determinism under a seed, PyTorch's gains, and the errors.
#include "support/testing.hpp"

#include <gradscope/nn/init.hpp>

#include <cstdint>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// Fills a fresh [rows x cols] leaf the way a Linear layer will, and returns a copy of it.
template <class T = double, class Init>
Matrix<T> draw(const Init& initializer, Index rows, Index cols, std::uint64_t seed) {
    Tensor<T> weight = Tensor<T>::zeros(rows, cols);
    Rng rng(seed);
    init::fill_weight(weight.data(), initializer, rng);
    return Matrix<T>(weight.value());
}

struct Moments {
    double mean = 0.0;
    double variance = 0.0;
};

template <class M>
Moments moments(const M& w) {
    const double n = static_cast<double>(w.size());
    double sum = 0.0;
    for (Index i = 0; i < w.size(); ++i) sum += static_cast<double>(w.data()[i]);
    const double mean = sum / n;
    double squares = 0.0;
    for (Index i = 0; i < w.size(); ++i) {
        const double d = static_cast<double>(w.data()[i]) - mean;
        squares += d * d;
    }
    return {mean, squares / n};
}

// The sample variance of n = 262144 draws has a relative standard error of about 0.3% (normal)
// or 0.2% (uniform), so 3% is a ten-sigma margin; the mean's standard error is std / sqrt(n).
template <class M>
void check_moments(const M& w, double expected_variance, double expected_mean = 0.0) {
    const Moments m = moments(w);
    const double n = static_cast<double>(w.size());
    INFO("mean " << m.mean << " (expected " << expected_mean << "), variance " << m.variance
                 << " (expected " << expected_variance << ")");
    CHECK(std::abs(m.variance / expected_variance - 1.0) < 0.03);
    CHECK(std::abs(m.mean - expected_mean) < 4.0 * std::sqrt(expected_variance / n));
}

template <class M>
double max_abs(const M& w) {
    return static_cast<double>(w.cwiseAbs().maxCoeff());
}

struct Layout {
    Index rows;  // fan_out
    Index cols;  // fan_in
};
constexpr Layout square_weight{512, 512};
constexpr Layout wide_weight{256, 1024};  // fan_in 1024, fan_out 256: the modes differ 4x

}  // namespace

TEST_CASE("xavier_uniform and xavier_normal have variance gain^2 * 2 / (fan_in + fan_out)",
          "[init][xavier]") {
    std::uint64_t seed = 100;
    for (const double gain : {1.0, 5.0 / 3.0}) {
        for (const Layout shape : {square_weight, wide_weight}) {
            INFO("gain " << gain << ", weight [" << shape.rows << "x" << shape.cols << "]");
            const double variance =
                gain * gain * 2.0 / static_cast<double>(shape.cols + shape.rows);
            check_moments(draw(init::xavier_uniform(gain), shape.rows, shape.cols, ++seed),
                          variance);
            check_moments(draw(init::xavier_normal(gain), shape.rows, shape.cols, ++seed),
                          variance);
        }
    }
}

TEST_CASE("he_uniform and he_normal have variance gain^2 / fan for either fan mode", "[init][he]") {
    struct Case {
        init::Nonlinearity nl;
        double slope;
        double gain_squared;
    };
    const Case cases[] = {{init::Nonlinearity::relu, 0.0, 2.0},
                          {init::Nonlinearity::leaky_relu, 0.2, 2.0 / (1.0 + 0.2 * 0.2)}};
    std::uint64_t seed = 200;
    for (const Case& c : cases) {
        for (const init::FanMode mode : {init::FanMode::fan_in, init::FanMode::fan_out}) {
            for (const Layout shape : {square_weight, wide_weight}) {
                const double fan =
                    static_cast<double>(mode == init::FanMode::fan_in ? shape.cols : shape.rows);
                const auto uniform = init::he_uniform(mode, c.nl, c.slope);
                const auto normal = init::he_normal(mode, c.nl, c.slope);
                INFO(normal.describe() << ", weight [" << shape.rows << "x" << shape.cols << "]");
                check_moments(draw(uniform, shape.rows, shape.cols, ++seed), c.gain_squared / fan);
                check_moments(draw(normal, shape.rows, shape.cols, ++seed), c.gain_squared / fan);
            }
        }
    }
}

TEST_CASE("he_normal's defaults are PyTorch's kaiming_normal_: fan_in, relu", "[init][he]") {
    const Layout shape = wide_weight;
    const Matrix<double> by_default = draw(init::he_normal(), shape.rows, shape.cols, 7);
    check_moments(by_default, 2.0 / static_cast<double>(shape.cols));
    // Like kaiming's a = 0, the default slope makes leaky_relu's gain relu's.
    const auto leaky = init::he_normal(init::FanMode::fan_in, init::Nonlinearity::leaky_relu);
    CHECK(by_default == draw(leaky, shape.rows, shape.cols, 7));
}

TEST_CASE("lecun_uniform and lecun_normal have variance 1 / fan_in", "[init][lecun]") {
    for (const Layout shape : {square_weight, wide_weight}) {
        const double variance = 1.0 / static_cast<double>(shape.cols);
        check_moments(draw(init::lecun_uniform(), shape.rows, shape.cols, 300), variance);
        check_moments(draw(init::lecun_normal(), shape.rows, shape.cols, 301), variance);
    }
}

TEST_CASE("normal(0.5, 2) draws mean 0.5 and variance 4", "[init][plain]") {
    check_moments(draw(init::normal(0.5, 2.0), 512, 512, 400), 4.0, 0.5);
    check_moments(draw(init::normal(), 512, 512, 401), 1.0, 0.0);
}

TEST_CASE("uniform(-2, 3) draws mean 0.5 and variance 25/12 between -2 and 3", "[init][plain]") {
    const Matrix<double> w = draw(init::uniform(-2.0, 3.0), 512, 512, 500);
    check_moments(w, 25.0 / 12.0, 0.5);
    CHECK(w.minCoeff() >= -2.0);
    CHECK(w.maxCoeff() < 3.0);
    CHECK(w.minCoeff() < -2.0 + 0.05);
    CHECK(w.maxCoeff() > 3.0 - 0.05);
}

TEST_CASE("uniform initialisers stay within their bound and come within 1% of it",
          "[init][bounds]") {
    const double fan_in = 1024.0, fan_out = 256.0;
    struct Case {
        init::Initializer<double> initializer;
        double bound;
        const char* what;
    };
    const std::vector<Case> cases = {
        {init::xavier_uniform(), std::sqrt(6.0 / (fan_in + fan_out)), "xavier_uniform"},
        {init::xavier_uniform(2.0), 2.0 * std::sqrt(6.0 / (fan_in + fan_out)), "xavier(2)"},
        {init::he_uniform(), std::sqrt(6.0 / fan_in), "he_uniform"},
        {init::he_uniform(init::FanMode::fan_out), std::sqrt(6.0 / fan_out), "he fan_out"},
        {init::lecun_uniform(), std::sqrt(3.0 / fan_in), "lecun_uniform"},
        {init::uniform(-0.3, 0.3), 0.3, "uniform"},
    };
    std::uint64_t seed = 600;
    for (const Case& c : cases) {
        INFO(c.what << ": bound " << c.bound);
        const Matrix<double> w = draw(c.initializer, wide_weight.rows, wide_weight.cols, ++seed);
        CHECK(max_abs(w) <= c.bound);
        CHECK(max_abs(w) >= 0.99 * c.bound);
    }
}

TEST_CASE("orthogonal weights have orthonormal columns (tall) or rows (wide), times gain",
          "[init][orthogonal]") {
    const Layout shapes[] = {{64, 64}, {128, 32}, {32, 128}};
    for (const Layout shape : shapes) {
        for (const double gain : {1.0, 2.5}) {
            INFO("weight [" << shape.rows << "x" << shape.cols << "], gain " << gain);
            const Matrix<double> w = draw(init::orthogonal(gain), shape.rows, shape.cols, 700);
            const bool tall = shape.rows >= shape.cols;
            const Matrix<double> gram =
                tall ? Matrix<double>(w.transpose() * w) : Matrix<double>(w * w.transpose());
            const Index k = std::min(shape.rows, shape.cols);
            const Matrix<double> expected = gain * gain * Matrix<double>::Identity(k, k);
            CHECK(all_close(gram, expected, 0.0, 1e-10 * gain * gain));
            // The gain only scales: the same seed with gain 1 gives w / gain.
            const Matrix<double> unit = draw(init::orthogonal(), shape.rows, shape.cols, 700);
            CHECK(all_close(w, gain * unit, 1e-15, 1e-15));
        }
    }
}

TEST_CASE("orthogonal is the Q of the drawn normal matrix with R's diagonal made positive",
          "[init][orthogonal]") {
    // Rebuild the draw (row-major, one standard normal per entry): Q^T A must then be R with a
    // positive diagonal, which pins Q down uniquely, as PyTorch's sign correction does.
    const Layout shapes[] = {{64, 64}, {128, 32}, {32, 128}};
    for (const Layout shape : shapes) {
        INFO("weight [" << shape.rows << "x" << shape.cols << "]");
        const Matrix<double> w = draw(init::orthogonal(), shape.rows, shape.cols, 710);
        Rng rng(710);
        const Matrix<double> a = rng.normal_matrix<double>(shape.rows, shape.cols);
        const bool tall = shape.rows >= shape.cols;
        const Matrix<double> r =
            tall ? Matrix<double>(w.transpose() * a) : Matrix<double>(w * a.transpose());
        const Matrix<double> below = r.triangularView<Eigen::StrictlyLower>();
        CHECK(r.diagonal().minCoeff() > 0.0);
        CHECK(max_abs(below) < 1e-10);
    }
}

TEST_CASE("the same seed gives the same weights and a different seed different ones",
          "[init][seed]") {
    const std::vector<init::Initializer<double>> random = {
        init::xavier_uniform(), init::xavier_normal(), init::he_uniform(),
        init::he_normal(),      init::lecun_uniform(), init::lecun_normal(),
        init::orthogonal(),     init::normal(),        init::uniform(-1.0, 1.0)};
    for (std::size_t i = 0; i < random.size(); ++i) {
        INFO("initialiser #" << i);
        const Matrix<double> first = draw(random[i], 16, 24, 42);
        CHECK(first == draw(random[i], 16, 24, 42));
        CHECK((first.array() != draw(random[i], 16, 24, 43).array()).all());
    }
}

TEST_CASE("calculate_gain equals PyTorch's values", "[init][gain]") {
    using init::Nonlinearity;
    CHECK(init::calculate_gain(Nonlinearity::linear) == 1.0);
    CHECK(init::calculate_gain(Nonlinearity::identity) == 1.0);
    CHECK(init::calculate_gain(Nonlinearity::sigmoid) == 1.0);
    CHECK(init::calculate_gain(Nonlinearity::tanh) == Approx(5.0 / 3.0).epsilon(1e-15));
    CHECK(init::calculate_gain(Nonlinearity::relu) == Approx(std::sqrt(2.0)).epsilon(1e-15));
    CHECK(init::calculate_gain(Nonlinearity::leaky_relu, 0.2) ==
          Approx(std::sqrt(2.0 / 1.04)).epsilon(1e-15));
    CHECK(init::calculate_gain(Nonlinearity::leaky_relu) ==  // PyTorch's default slope 0.01
          Approx(std::sqrt(2.0 / (1.0 + 0.01 * 0.01))).epsilon(1e-15));
    CHECK(init::calculate_gain(Nonlinearity::selu) == 0.75);

    CHECK(init::calculate_gain("tanh") == init::calculate_gain(Nonlinearity::tanh));
    CHECK(init::calculate_gain("relu") == init::calculate_gain(Nonlinearity::relu));
    CHECK(init::calculate_gain("leaky_relu", 0.2) ==
          init::calculate_gain(Nonlinearity::leaky_relu, 0.2));
    CHECK(init::calculate_gain("selu") == 0.75);
    for (const char* one : {"linear", "identity", "sigmoid"}) {
        CHECK(init::calculate_gain(one) == 1.0);
    }
}

TEST_CASE("calculate_gain names the known nonlinearities when given an unknown one",
          "[init][gain][errors]") {
    CHECK_THROWS_AS(init::calculate_gain("swish"), value_error);
    CHECK_THROWS_WITH(init::calculate_gain("swish"),
                      Catch::Contains("'swish'") && Catch::Contains("leaky_relu") &&
                          Catch::Contains("selu") && Catch::Contains("identity"));
    CHECK_THROWS_AS(init::calculate_gain("Tanh"), value_error);  // names are case-sensitive
}

TEST_CASE("constant, zeros and ones fill every entry exactly and draw nothing", "[init][plain]") {
    CHECK((draw(init::constant(0.125), 5, 7, 1).array() == 0.125).all());
    CHECK((draw(init::zeros(), 5, 7, 1).array() == 0.0).all());
    CHECK((draw(init::ones(), 5, 7, 1).array() == 1.0).all());
    CHECK((draw<float>(init::constant(-3.5), 5, 7, 1).array() == -3.5f).all());

    Rng used(9), fresh(9);
    Tensor<double> w = Tensor<double>::zeros(3, 3);
    init::fill_weight(w.data(), init::ones(), used);
    CHECK(used.next_u64() == fresh.next_u64());
}

TEST_CASE("bad arguments throw value_error naming the initialiser and the value",
          "[init][errors]") {
    CHECK_THROWS_WITH(init::uniform(3.0, -2.0), Catch::Contains("uniform") &&
                                                    Catch::Contains("a = 3") &&
                                                    Catch::Contains("b = -2"));
    CHECK_THROWS_AS(init::uniform(3.0, -2.0), value_error);
    CHECK_THROWS_WITH(init::normal(0.0, -1.0),
                      Catch::Contains("normal") && Catch::Contains("std") && Catch::Contains("-1"));
    CHECK_THROWS_AS(init::normal(0.0, std::nan("")), value_error);
    CHECK_THROWS_WITH(init::xavier_normal(-1.0), Catch::Contains("xavier_normal") &&
                                                     Catch::Contains("gain") &&
                                                     Catch::Contains("-1"));
    CHECK_THROWS_AS(init::orthogonal(-0.5), value_error);

    // A struct built directly is checked when it fills.
    Tensor<double> w = Tensor<double>::zeros(4, 3);
    Rng rng(1);
    CHECK_THROWS_AS(init::fill_weight(w.data(), init::Uniform{.a = 1.0, .b = 0.0}, rng),
                    value_error);

    // Fans that the formula divides by.
    const auto fill = [&](const auto& initializer, Index fan_in, Index fan_out) {
        initializer(w.data(), fan_in, fan_out, rng);
    };
    CHECK_THROWS_WITH(fill(init::xavier_uniform(), 0, 4), Catch::Contains("xavier_uniform") &&
                                                              Catch::Contains("fan_in") &&
                                                              Catch::Contains("got 0"));
    CHECK_THROWS_WITH(fill(init::xavier_normal(), 3, -2), Catch::Contains("xavier_normal") &&
                                                              Catch::Contains("fan_out") &&
                                                              Catch::Contains("got -2"));
    CHECK_THROWS_WITH(fill(init::he_normal(), 0, 4),
                      Catch::Contains("he_normal") && Catch::Contains("fan_in"));
    CHECK_THROWS_WITH(fill(init::he_uniform(init::FanMode::fan_out), 3, 0),
                      Catch::Contains("he_uniform") && Catch::Contains("fan_out"));
    CHECK_NOTHROW(fill(init::he_uniform(init::FanMode::fan_in), 3, 0));  // fan_out unused
    CHECK_THROWS_WITH(fill(init::lecun_normal(), -1, 4),
                      Catch::Contains("lecun_normal") && Catch::Contains("got -1"));
    CHECK_THROWS_AS(fill(init::lecun_uniform(), 0, 4), value_error);
    CHECK_NOTHROW(fill(init::normal(), 0, 0));  // plain distributions ignore the fans

    // A weight with no rows has fan_out 0 for fill_weight: Xavier refuses it.
    Tensor<double> empty = Tensor<double>::zeros(0, 3);
    CHECK_THROWS_AS(init::fill_weight(empty.data(), init::xavier_uniform(), rng), value_error);
}

TEST_CASE("name is the factory's name and describe() reads like the call", "[init][describe]") {
    using init::FanMode, init::Nonlinearity;
    CHECK(std::string(init::HeNormal::name) == "he_normal");
    CHECK(std::string(decltype(init::xavier_uniform())::name) == "xavier_uniform");
    CHECK(std::string(decltype(init::lecun_uniform())::name) == "lecun_uniform");
    CHECK(init::he_normal().describe() == "he_normal(fan_in, relu)");
    CHECK(init::he_uniform(FanMode::fan_out, Nonlinearity::leaky_relu, 0.2).describe() ==
          "he_uniform(fan_out, leaky_relu, 0.2)");
    CHECK(init::xavier_uniform().describe() == "xavier_uniform(1)");
    CHECK(init::xavier_normal(init::calculate_gain("selu")).describe() == "xavier_normal(0.75)");
    CHECK(init::lecun_normal().describe() == "lecun_normal()");
    CHECK(init::orthogonal(2.0).describe() == "orthogonal(2)");
    CHECK(init::normal(0.5, 2.0).describe() == "normal(0.5, 2)");
    CHECK(init::uniform(-2.0, 3.0).describe() == "uniform(-2, 3)");
    CHECK(init::zeros().describe() == "constant(0)");
}

TEST_CASE("fill_weight passes fan_in = cols and fan_out = rows, to a user's lambda too",
          "[init][plugin]") {
    Index seen_in = -1, seen_out = -1;
    const init::Initializer<double> spy = [&](MatrixView<double> w, Index fan_in, Index fan_out,
                                              Rng& rng) {
        seen_in = fan_in;
        seen_out = fan_out;
        for (Index i = 0; i < w.size(); ++i) w.data()[i] = rng.uniform();
    };
    const Matrix<double> w = draw(spy, 5, 3, 11);  // a Linear(3 -> 5) weight
    CHECK(seen_in == 3);
    CHECK(seen_out == 5);
    CHECK(w.minCoeff() >= 0.0);
    CHECK(w.maxCoeff() < 1.0);
}

TEST_CASE("float weights are the double ones rounded, with the same statistics", "[init][float]") {
    const auto xavier = init::xavier_normal(5.0 / 3.0);
    const Matrix<float> wf = draw<float>(xavier, 512, 512, 800);
    CHECK(wf == draw<double>(xavier, 512, 512, 800).cast<float>());
    check_moments(wf, 25.0 / 9.0 * 2.0 / 1024.0);
    check_moments(draw<float>(init::he_uniform(), 512, 512, 801), 2.0 / 512.0);
    check_moments(draw<float>(init::uniform(-2.0, 3.0), 512, 512, 802), 25.0 / 12.0, 0.5);

    const Matrix<float> q = draw<float>(init::orthogonal(), 128, 32, 803);
    CHECK(q == draw<double>(init::orthogonal(), 128, 32, 803).cast<float>());
    const Matrix<float> gram = q.transpose() * q;
    CHECK(all_close(gram, Matrix<float>::Identity(32, 32), 0.0, 1e-5));
}
