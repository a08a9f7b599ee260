// Hostile inputs to the public API: each class of bad argument is a typed gradscope exception
// whose message names the function and the argument, never an Eigen assert, a crash or a silent
// NaN. docs/VALIDATION.md lists what is checked and what is deliberately accepted; the tests
// at the end pin the accepted cases, so that a change to either is a change to both.
//
// Hostile inputs to the graph itself (tensor factories, data(), module registration, hooks,
// threads, stale values) are tested in test_lifetimes.cpp and test_threads.cpp, gradcheck's
// options in test_gradcheck.cpp.
#include "support/temp_dir.hpp"
#include "support/testing.hpp"

#ifdef GRADSCOPE_TEST_HAVE_ZLIB
#include <gradscope/io/idx.hpp>
#endif

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double infinity = std::numeric_limits<double>::infinity();
constexpr Index huge = std::numeric_limits<Index>::max();

// A user-written activation that is NaN for negative inputs: the theory must not average it.
struct NanBelowZero {
    static constexpr const char* name = "nan_below_zero";
    template <class T>
    T value(T x) const {
        return x < T(0) ? std::numeric_limits<T>::quiet_NaN() : x;
    }
    template <class T>
    T derivative(T x, T) const {
        return x < T(0) ? std::numeric_limits<T>::quiet_NaN() : T(1);
    }
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Random numbers

TEST_CASE("Rng refuses an empty, inverted, non-finite or too wide range", "[hostile][rng]") {
    Rng rng(1);
    REQUIRE_THROWS_MATCHES(rng.below(0), value_error,
                           Catch::Matchers::Message("below: the range [0, n) is empty for n = 0"));
    REQUIRE_THROWS_MATCHES(
        rng.uniform(1.0, 0.0), value_error,
        Catch::Matchers::Message("uniform: the range is inverted: low = 1 > high = 0"));
    REQUIRE_THROWS_MATCHES(rng.uniform(not_a_number, 1.0), value_error,
                           MessageContains("low must be finite, got nan"));
    REQUIRE_THROWS_MATCHES(rng.uniform(0.0, infinity), value_error,
                           MessageContains("high must be finite, got inf"));
    REQUIRE_THROWS_MATCHES(rng.uniform(-1e308, 1e308), value_error,
                           MessageContains("wider than a double holds"));
    REQUIRE_THROWS_MATCHES(
        rng.normal(0.0, -1.0), value_error,
        MessageContains("normal: stddev must be finite and non-negative, got -1"));
    REQUIRE_THROWS_MATCHES(rng.normal(not_a_number, 1.0), value_error,
                           MessageContains("normal: mean must be finite"));
    REQUIRE_THROWS_MATCHES(rng.uniform_matrix<double>(2, 2, 3.0, 2.0), value_error,
                           MessageContains("uniform_matrix: the range is inverted"));
    REQUIRE_THROWS_MATCHES(rng.normal_matrix<float>(2, 2, 0.0, not_a_number), value_error,
                           MessageContains("normal_matrix: stddev"));
    CHECK(rng.uniform(2.5, 2.5) == 2.5);  // a degenerate range is its one point, as in PyTorch
    CHECK(rng.below(1) == 0);
}

TEST_CASE("Rng matrices refuse negative and overflowing sizes", "[hostile][rng][sizes]") {
    Rng rng(1);
    REQUIRE_THROWS_MATCHES(
        rng.normal_matrix<double>(-1, 3), shape_error,
        MessageContains("normal_matrix: a matrix cannot have a negative dimension, got -1 x 3"));
    REQUIRE_THROWS_MATCHES(rng.uniform_matrix<float>(2, -5, 0.0, 1.0), shape_error,
                           MessageContains("uniform_matrix"));
    REQUIRE_THROWS_MATCHES(rng.normal_matrix<double>(huge / 2, 3), shape_error,
                           MessageContains("overflow the index type"));
    CHECK(rng.normal_matrix<double>(0, 3).size() == 0);
}

// ---------------------------------------------------------------------------------------------
// Index ranges and sizes in ops

TEST_CASE("slice_cols refuses huge, negative and out-of-range bounds without overflowing",
          "[hostile][ops][sizes]") {
    const auto x = TensorD::constant(normal(2, 5, 1));
    REQUIRE_THROWS_MATCHES(
        slice_cols(x, 1, huge), shape_error,
        MessageContains("slice_cols: begin = 1, count = " + std::to_string(huge)));
    REQUIRE_THROWS_MATCHES(slice_cols(x, huge, huge), shape_error, MessageContains("[2x5]"));
    REQUIRE_THROWS_MATCHES(slice_cols(x, -1, 2), shape_error, MessageContains("begin = -1"));
    REQUIRE_THROWS_MATCHES(slice_cols(x, 2, -1), shape_error, MessageContains("count = -1"));
    REQUIRE_THROWS_MATCHES(slice_cols(x, 6, 0), shape_error, MessageContains("begin = 6"));
    CHECK(slice_cols(x, 5, 0).shape() == Shape{2, 0});
    CHECK(slice_cols(x, 0, 5).shape() == Shape{2, 5});
}

TEST_CASE("products and concatenations whose result would overflow the index are shape errors",
          "[hostile][ops][sizes]") {
    // Tensors with no rows (or no columns) hold no memory, so their other extent can be anything.
    const Index big = Index{1} << 40;
    const auto tall = TensorD::zeros(big, 0);
    const auto wide = TensorD::zeros(0, big);
    REQUIRE_THROWS_MATCHES(matmul(tall, wide), shape_error, MessageContains("matmul"));
    const auto weight = TensorD::zeros(big, 0);
    REQUIRE_THROWS_MATCHES(linear(tall, weight), shape_error, MessageContains("linear"));
    const auto half = TensorD::zeros(0, huge / 2 + 1);
    REQUIRE_THROWS_MATCHES(
        concat_cols(half, half), shape_error,
        MessageContains("concat_cols: the parts' widths add up past the index type"));
}

TEST_CASE("layers refuse sizes whose weights would overflow the index",
          "[hostile][layers][sizes]") {
    Rng rng(1);
    const Index big = Index{1} << 40;
    REQUIRE_THROWS_MATCHES(
        Linear<float>(big, big, rng), shape_error,
        MessageContains("Linear: 1099511627776 x 1099511627776 elements overflow"));
    REQUIRE_THROWS_MATCHES((ElmanCell<float>(big, big, rng)), shape_error,
                           MessageContains("ElmanCell"));
    REQUIRE_THROWS_MATCHES(
        (Residual<double>(std::make_shared<Linear<double>>(2, 2, rng), -2, -2, rng)), value_error,
        MessageContains("Residual: features must be positive, got in=-2, out=-2"));
}

TEST_CASE("Sequential index out of range is a value_error naming the index and the size",
          "[hostile][layers]") {
    Rng rng(1);
    Sequential<double> seq;
    seq.add(std::make_shared<Linear<double>>(2, 3, rng));
    seq.add(std::make_shared<Activation<double, Tanh>>());
    CHECK(seq[1].type_name() == "Activation(tanh)");
    REQUIRE_THROWS_MATCHES(
        (void)seq[2], value_error,
        Catch::Matchers::Message("Sequential: index 2 is out of range for 2 modules"));
    REQUIRE_THROWS_MATCHES((void)seq[static_cast<std::size_t>(-1)], value_error,
                           MessageContains("is out of range"));
}

// ---------------------------------------------------------------------------------------------
// Options: NaN, infinite, negative

TEST_CASE("a NaN or infinite residual scale is refused where it is given", "[hostile][options]") {
    Rng rng(1);
    auto branch = [&] { return std::make_shared<Linear<double>>(3, 3, rng); };
    REQUIRE_THROWS_MATCHES(
        (Residual<double>(branch(), {.branch_scale = not_a_number})), value_error,
        Catch::Matchers::Message("Residual: branch_scale must be finite, got nan"));
    REQUIRE_THROWS_MATCHES((Residual<double>(branch(), {.branch_scale = -infinity})), value_error,
                           MessageContains("branch_scale"));
    REQUIRE_THROWS_MATCHES(
        (mlp<double>({.widths = {3, 3, 3, 1}, .residual = true, .residual_scale = not_a_number})),
        value_error, MessageContains("mlp: residual_scale must be finite, got nan"));
    CHECK_NOTHROW((Residual<double>(branch(), {.branch_scale = 0.0})));  // switches the branch off
}

TEST_CASE("normalisation eps and momentum must be finite, eps positive, momentum in 0 to 1",
          "[hostile][options]") {
    REQUIRE_THROWS_MATCHES((LayerNorm<double>(4, {.eps = not_a_number})), value_error,
                           MessageContains("LayerNorm: eps must be finite and positive, got nan"));
    REQUIRE_THROWS_MATCHES((LayerNorm<double>(4, {.eps = -1e-5})), value_error,
                           MessageContains("got -1e-05"));
    REQUIRE_THROWS_MATCHES((LayerNorm<double>(4, {.eps = 0.0})), value_error,
                           MessageContains("eps"));
    REQUIRE_THROWS_MATCHES(
        (BatchNorm1d<double>(4, {.eps = infinity})), value_error,
        MessageContains("BatchNorm1d: eps must be finite and positive, got inf"));
    REQUIRE_THROWS_MATCHES((BatchNorm1d<double>(4, {.momentum = not_a_number})), value_error,
                           MessageContains("BatchNorm1d: momentum must be in [0, 1], got nan"));
    REQUIRE_THROWS_MATCHES((BatchNorm1d<double>(4, {.momentum = 1.5})), value_error,
                           MessageContains("momentum"));

    // The ops check eps too, once per call.
    const auto x = TensorD::constant(normal(3, 4, 1));
    const auto gamma = TensorD::constant(Matrix<double>::Ones(1, 4));
    const auto beta = TensorD::constant(Matrix<double>::Zero(1, 4));
    REQUIRE_THROWS_MATCHES(layer_norm(x, gamma, beta, -1.0), value_error,
                           MessageContains("layer_norm: eps"));
    BatchStatistics<double> stats;
    REQUIRE_THROWS_MATCHES(batch_norm_train(x, gamma, beta, not_a_number, stats), value_error,
                           MessageContains("batch_norm: eps"));
    REQUIRE_THROWS_MATCHES(batch_norm_eval(x, gamma, beta, Matrix<double>::Zero(1, 4),
                                           Matrix<double>::Ones(1, 4), 0.0),
                           value_error, MessageContains("batch_norm: eps"));
}

TEST_CASE("a dropout probability outside 0 to 1, or NaN, is refused by the layer, the op and mlp",
          "[hostile][options]") {
    Rng rng(1);
    REQUIRE_THROWS_MATCHES(Dropout<double>(not_a_number), value_error,
                           MessageContains("Dropout: the probability must be in [0, 1], got nan"));
    REQUIRE_THROWS_MATCHES(dropout(TensorD::constant(normal(2, 2, 1)), 1.5, rng), value_error,
                           MessageContains("dropout: the probability must be in [0, 1], got 1.5"));
    // The value as written, not std::to_string's six decimals.
    REQUIRE_THROWS_MATCHES((mlp<double>({.widths = {2, 2}, .dropout = -0.1})), value_error,
                           MessageContains("mlp: dropout must be in [0, 1), got -0.1"));
}

TEST_CASE("initialisers refuse NaN, infinite and negative gains, deviations and constants",
          "[hostile][options][init]") {
    REQUIRE_THROWS_MATCHES(
        init::xavier_uniform(not_a_number), value_error,
        MessageContains("xavier_uniform: gain must be finite and non-negative, got nan"));
    REQUIRE_THROWS_MATCHES(init::normal(0.0, -1.0), value_error,
                           MessageContains("normal: std must be finite and non-negative, got -1"));
    REQUIRE_THROWS_MATCHES(init::orthogonal(infinity), value_error,
                           MessageContains("orthogonal: gain"));
    REQUIRE_THROWS_MATCHES(init::uniform(2.0, 1.0), value_error,
                           MessageContains("uniform: needs a <= b"));
    REQUIRE_THROWS_MATCHES(init::constant(not_a_number), value_error,
                           MessageContains("constant: value must be finite, got nan"));
    REQUIRE_THROWS_MATCHES(
        init::he_normal(init::FanMode::fan_in, init::Nonlinearity::leaky_relu, infinity),
        value_error, MessageContains("he_normal: param must be finite"));
    REQUIRE_THROWS_MATCHES(
        diag::gaussian_init<double>(-2.0), value_error,
        MessageContains("gaussian_init: sigma_w2 must be finite and non-negative, got -2"));

    // Aggregates built without a factory are checked when they fill.
    Rng rng(1);
    Matrix<double> w(2, 2);
    const MatrixView<double> view(w.data(), 2, 2);
    REQUIRE_THROWS_MATCHES((init::Constant{.value = infinity}(view, 2, 2, rng)), value_error,
                           MessageContains("constant: value"));
    REQUIRE_THROWS_MATCHES((init::XavierNormal{.gain = -1.0}(view, 2, 2, rng)), value_error,
                           MessageContains("xavier_normal: gain"));
    REQUIRE_THROWS_MATCHES(init::xavier_uniform()(view, 0, 2, rng), value_error,
                           MessageContains("xavier_uniform: fan_in must be positive, got 0"));
}

TEST_CASE("activation parameters that make no function are refused by the op, the layer and mlp",
          "[hostile][options][activations]") {
    const auto x = TensorD::constant(normal(2, 3, 1));
    REQUIRE_THROWS_MATCHES((elementwise(x, LeakyReLU{.slope = not_a_number})), value_error,
                           MessageContains("leaky_relu: slope must be finite, got nan"));
    REQUIRE_THROWS_MATCHES((elementwise(x, ELU{.alpha = infinity})), value_error,
                           MessageContains("elu: alpha"));
    REQUIRE_THROWS_MATCHES((elementwise(x, Softplus{.beta = 0.0})), value_error,
                           MessageContains("softplus: beta must not be zero"));
    REQUIRE_THROWS_MATCHES((elementwise(x, Softplus{.threshold = not_a_number})), value_error,
                           MessageContains("softplus: threshold"));
    REQUIRE_THROWS_MATCHES((elementwise(x, Hardtanh{.min = 1.0, .max = -1.0})), value_error,
                           MessageContains("hardtanh: min = 1 must not exceed max = -1"));
    REQUIRE_THROWS_MATCHES((elementwise(x, fn::Clamp{.low = 2.0, .high = 1.0})), value_error,
                           MessageContains("clamp: the lower bound 2"));
    REQUIRE_THROWS_MATCHES(clamp(x, not_a_number, 1.0), value_error, MessageContains("clamp"));
    REQUIRE_THROWS_MATCHES((Activation<double, LeakyReLU>(LeakyReLU{.slope = not_a_number})),
                           value_error, MessageContains("leaky_relu: slope"));
    REQUIRE_THROWS_MATCHES(
        (mlp<double>({.widths = {2, 3, 1}, .activation = ELU{.alpha = not_a_number}})), value_error,
        MessageContains("elu: alpha"));
    Rng rng(1);
    REQUIRE_THROWS_MATCHES((ElmanCell<double, LeakyReLU>(2, 3, rng, LeakyReLU{.slope = infinity})),
                           value_error, MessageContains("leaky_relu: slope"));
    CHECK_NOTHROW(
        (elementwise(x, Hardtanh{.min = -infinity, .max = 0.0})));  // an open end is a function
}

TEST_CASE("an activation layer's derivative refuses views of different shapes",
          "[hostile][activations][shapes]") {
    const Activation<double, Tanh> act;
    Matrix<double> x = normal(2, 3, 1), y = x.array().tanh().matrix(), out(3, 2);
    REQUIRE_THROWS_MATCHES(
        act.derivative(ConstMatrixView<double>(x.data(), 2, 3),
                       ConstMatrixView<double>(y.data(), 2, 3),
                       MatrixView<double>(out.data(), 3, 2)),
        shape_error,
        MessageContains(
            "Activation(tanh)::derivative: x [2x3], y [2x3] and out [3x2] must have one shape"));
}

// ---------------------------------------------------------------------------------------------
// The mean-field theory and the depth experiment

TEST_CASE("mean_field refuses a negative input moment, non-finite variances and bad node counts",
          "[hostile][theory]") {
    REQUIRE_THROWS_MATCHES(
        (diag::mean_field(Tanh{}, 5, {.input_second_moment = -1.0})), value_error,
        MessageContains("mean_field: input_second_moment must be finite and non-negative, got -1"));
    REQUIRE_THROWS_MATCHES((diag::mean_field(Tanh{}, 5, {.sigma_w2 = infinity})), value_error,
                           MessageContains("mean_field: sigma_w2"));
    REQUIRE_THROWS_MATCHES((diag::mean_field(Tanh{}, 5, {.sigma_b2 = not_a_number})), value_error,
                           MessageContains("mean_field: sigma_b2"));
    REQUIRE_THROWS_MATCHES((diag::mean_field(Tanh{}, 5, {.quadrature_nodes = 0})), value_error,
                           MessageContains("quadrature_nodes must be even"));
    REQUIRE_THROWS_MATCHES((diag::mean_field(Tanh{}, 5, {.quadrature_nodes = 1 << 30})),
                           value_error, MessageContains("quadrature_nodes"));
    REQUIRE_THROWS_MATCHES((diag::mean_field(LeakyReLU{.slope = not_a_number}, 5)), value_error,
                           MessageContains("leaky_relu: slope"));
    REQUIRE_THROWS_MATCHES(
        diag::GaussLegendre<double>(0), value_error,
        MessageContains("GaussLegendre: the node count must be in [1, 4096], got 0"));
    REQUIRE_THROWS_MATCHES(diag::GaussHermite<double>(1 << 20), value_error,
                           MessageContains("GaussHermite: the node count"));
    const diag::NormalExpectation<double> expect(8);
    REQUIRE_THROWS_MATCHES(expect(not_a_number, [](double x) { return x * x; }), value_error,
                           MessageContains("NormalExpectation: s must be finite, got nan"));
    REQUIRE_THROWS_MATCHES(diag::NormalExpectation<double>(1 << 30), value_error,
                           MessageContains("GaussHermite"));
}

TEST_CASE("mean_field reports an activation that returns NaN, and a variance map that overflows",
          "[hostile][theory]") {
    REQUIRE_THROWS_MATCHES((diag::mean_field(NanBelowZero{}, 4)), numeric_error,
                           MessageContains("for activation 'nan_below_zero'"));
    // The identity with sigma_w^2 = 1e200 squares past double's range in two layers.
    REQUIRE_THROWS_MATCHES((diag::mean_field(Identity{}, 4, {.sigma_w2 = 1e200})), numeric_error,
                           MessageContains("mean_field: q at layer"));
}

TEST_CASE(
    "measure_depth refuses an empty batch, zero width, too little depth and a NaN residual scale",
    "[hostile][theory]") {
    const ActivationChoice<double> act = Tanh{};
    const auto w = diag::gaussian_init<double>(1.0);
    REQUIRE_THROWS_MATCHES(
        (diag::measure_depth<double>(act, w, {.depth = 3, .width = 4, .batch = 0})), value_error,
        MessageContains("measure_depth: width and batch must be positive, got width 4, batch 0"));
    REQUIRE_THROWS_MATCHES(
        (diag::measure_depth<double>(act, w, {.depth = 3, .width = 0, .batch = 4})), value_error,
        MessageContains("width 0"));
    REQUIRE_THROWS_MATCHES(
        (diag::measure_depth<double>(act, w, {.depth = 0, .width = 4, .batch = 4})), value_error,
        MessageContains("measure_depth: depth must be at least 2, got 0"));
    REQUIRE_THROWS_MATCHES((diag::measure_depth<double>(act, w,
                                                        {.depth = 3,
                                                         .width = 4,
                                                         .batch = 4,
                                                         .residual = true,
                                                         .residual_scale = not_a_number})),
                           value_error,
                           MessageContains("measure_depth: residual_scale must be finite"));
}

// ---------------------------------------------------------------------------------------------
// Labels and loss targets

TEST_CASE("class labels must be in range for the logits and exact in their precision",
          "[hostile][losses]") {
    const auto logits = TensorD::parameter(normal(3, 4, 1));
    REQUIRE_THROWS_MATCHES(
        (cross_entropy(logits, std::vector<int>{0, -1, 2})), value_error,
        MessageContains("cross_entropy: label -1 at row 1 is outside the 4 classes [0, 4)"));
    REQUIRE_THROWS_MATCHES((cross_entropy(logits, std::vector<int>{0, 1, 4})), value_error,
                           MessageContains("label 4 at row 2"));
    REQUIRE_THROWS_MATCHES((cross_entropy(logits, std::vector<int>{0, 1})), shape_error,
                           MessageContains("cross_entropy: 2 labels for 3 rows of logits [3x4]"));

    // float holds every integer only up to 2^24: label 2^24 + 1 would be kept as 2^24 and its
    // gradient would go to the neighbouring class.
    const Index classes = (Index{1} << 24) + 2;
    const auto wide = TensorF::zeros(1, classes);
    REQUIRE_THROWS_MATCHES((cross_entropy(wide, std::vector<int>{(1 << 24) + 1})), value_error,
                           MessageContains("cross_entropy: label 16777217 at row 0 is above 2^24"));
    CHECK_NOTHROW((cross_entropy(wide, std::vector<int>{1 << 24})));
}

TEST_CASE("loss targets of another shape than the prediction are shape errors naming both",
          "[hostile][losses][shapes]") {
    REQUIRE_THROWS_MATCHES(
        mse_loss(param(3, 2, 1), param(2, 3, 2)), shape_error,
        MessageContains("mse_loss: prediction and target differ in shape (got [3x2] and [2x3])"));
    REQUIRE_THROWS_MATCHES(
        binary_cross_entropy_with_logits(param(3, 1, 1), param(1, 3, 2)), shape_error,
        MessageContains("binary_cross_entropy_with_logits: logits and targets differ in shape"));
}

// ---------------------------------------------------------------------------------------------
// IDX files with hostile headers

#ifdef GRADSCOPE_TEST_HAVE_ZLIB
TEST_CASE("IDX headers that lie about rank or size are io_errors naming the file",
          "[hostile][idx]") {
    TempDir dir("gradscope_test_hostile_");
    using Bytes = std::vector<std::uint8_t>;
    // Magic 0x00 0x00 0x08 <rank>, then big-endian dimensions.
    const auto no_rank = write_file(dir.path / "rank0", Bytes{0, 0, 8, 0});
    REQUIRE_THROWS_MATCHES(read_idx(no_rank), io_error,
                           MessageContains("rank0: the magic number 0x00000800 says 0 dimensions"));
    const auto rank_255 = write_file(dir.path / "rank255", Bytes{0, 0, 8, 255, 0, 0, 0, 1});
    REQUIRE_THROWS_MATCHES(read_idx(rank_255), io_error, MessageContains("says 255 dimensions"));
    const auto enormous =
        write_file(dir.path / "enormous",
                   Bytes{0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255});
    REQUIRE_THROWS_MATCHES(
        read_idx(enormous), io_error,
        MessageContains(
            "enormous: the dimensions [4294967295 x 4294967295] describe more than 2^40 bytes"));
    const auto short_dims = write_file(dir.path / "short_dims", Bytes{0, 0, 8, 3, 0, 0, 0, 2});
    REQUIRE_THROWS_MATCHES(read_idx(short_dims), io_error,
                           MessageContains("short_dims: truncated: the header needs 16 bytes"));
    const auto lying =
        write_file(dir.path / "lying", Bytes{0, 0, 8, 1, 0x7F, 0xFF, 0xFF, 0xFF, 1, 2, 3});
    REQUIRE_THROWS_MATCHES(
        read_idx(lying), io_error,
        MessageContains(
            "lying: truncated: the dimensions [2147483647] need 2147483647 bytes of data but the file has 3"));
}

TEST_CASE("idx_images_as_rows refuses a NaN or infinite scale", "[hostile][idx]") {
    const IdxArray images{.path = "images", .dims = {1, 2, 2}, .data = {0, 64, 128, 255}};
    REQUIRE_THROWS_MATCHES(idx_images_as_rows(images, std::numeric_limits<float>::quiet_NaN()),
                           value_error,
                           MessageContains("idx_images_as_rows: scale must be finite, got nan"));
    CHECK(idx_images_as_rows(images, -1.0f)(0, 3) == -255.0f);  // a negative scale is arithmetic
}
#endif

// ---------------------------------------------------------------------------------------------
// Deliberately accepted, as PyTorch accepts them (docs/VALIDATION.md, "Not checked")

TEST_CASE("a NaN input flows through to a NaN loss unless anomaly mode is on",
          "[hostile][accepted]") {
    auto net = mlp<double>({.widths = {2, 3, 1}, .seed = 1});
    Matrix<double> x = normal(2, 2, 1);
    x(0, 0) = not_a_number;
    const auto loss = mean((*net)(TensorD::constant(x)));
    CHECK(std::isnan(loss.item()));
}

TEST_CASE("binary cross-entropy accepts targets outside 0 to 1, as PyTorch does",
          "[hostile][accepted]") {
    Matrix<double> t(1, 2);
    t << -0.5, 2.0;
    const auto loss = binary_cross_entropy_with_logits(param(1, 2, 1), TensorD::constant(t));
    CHECK(std::isfinite(loss.item()));
}

// ---------------------------------------------------------------------------------------------
