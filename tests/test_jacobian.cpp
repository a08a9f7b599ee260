// The input-output Jacobian against central differences and against PyTorch, and its spectrum
// showing dynamical isometry (Pennington et al. 2017) where theory says it exists and not where
// it says it cannot.
#include "support/reference.hpp"
#include "support/testing.hpp"

#include <gradscope/diag.hpp>
#include <gradscope/diag/jacobian.hpp>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// Central differences of net(x) in each input coordinate (double; step 1e-6 leaves a truncation
// error of order 1e-12 and a rounding error of order 1e-10 relative to the outputs).
Eigen::MatrixXd numerical_jacobian(Module<double>& net, const Matrix<double>& x) {
    const NoGradGuard no_graph;
    auto f = [&](const Matrix<double>& at) {
        return Matrix<double>(net(TensorD::constant(at)).value());
    };
    const Index m = f(x).cols();
    Eigen::MatrixXd out(m, x.cols());
    const double h = 1e-6;
    for (Index j = 0; j < x.cols(); ++j) {
        Matrix<double> plus = x, minus = x;
        plus(0, j) += h;
        minus(0, j) -= h;
        out.col(j) = ((f(plus) - f(minus)) / (2.0 * h)).transpose();
    }
    return out;
}

Matrix<double> random_row(Index n, std::uint64_t seed, double scale = 1.0) {
    Rng rng(seed);
    return rng.normal_matrix<double>(1, n) * scale;
}

}  // namespace

TEST_CASE("the Jacobian equals central differences, in eval and in training mode",
          "[diag][jacobian]") {
    // Eval mode (one batched backward): batch norm with running statistics, residual blocks, GELU.
    auto net = mlp<double>({.widths = {6, 9, 9, 9, 4},
                            .activation = GELU{},
                            .norm = Normalization::batch,
                            .residual = true,
                            .seed = 4});
    net->eval();
    const Matrix<double> x = random_row(6, 1);
    const Eigen::MatrixXd exact = diag::input_output_jacobian(*net, x);
    REQUIRE(exact.rows() == 4);
    REQUIRE(exact.cols() == 6);
    CHECK(all_close(exact, numerical_jacobian(*net, x), 1e-7, 1e-9));

    // Training mode (one backward per output row): layer norm and SiLU, no batch coupling.
    auto trained = mlp<double>(
        {.widths = {5, 8, 8, 3}, .activation = SiLU{}, .norm = Normalization::layer, .seed = 5});
    trained->train();
    const Matrix<double> y = random_row(5, 2);
    CHECK(all_close(diag::input_output_jacobian(*trained, y), numerical_jacobian(*trained, y), 1e-7,
                    1e-9));
}

TEST_CASE("the Jacobian equals PyTorch's for layer norm, GELU, batch norm and tanh",
          "[diag][jacobian][reference]") {
    const ReferenceCase c("jacobian_reference.json", "sequential_eval");
    auto net = std::make_shared<Sequential<double>>();
    Rng rng(0);
    net->add(std::make_shared<Linear<double>>(5, 7, rng));
    net->add(std::make_shared<LayerNorm<double>>(7));
    net->add(std::make_shared<Activation<double, GELU>>());
    net->add(std::make_shared<Linear<double>>(7, 7, rng));
    net->add(std::make_shared<BatchNorm1d<double>>(7));
    net->add(std::make_shared<Activation<double, Tanh>>());
    net->add(std::make_shared<Linear<double>>(7, 4, rng));
    for (auto& [name, p] : net->named_parameters()) p.assign(c.input(name));
    for (auto& [name, b] : net->named_buffers()) {
        if (name != "4.num_batches_tracked") b.assign(c.input(name));
    }
    net->eval();
    const Matrix<double> x = c.input("x");
    {
        const NoGradGuard no_graph;
        c.check_output("output", (*net)(TensorD::constant(x)));
    }
    c.check_output("jacobian", diag::input_output_jacobian(*net, x));
}

TEST_CASE("computing the Jacobian leaves parameter gradients and flags as they were",
          "[diag][jacobian]") {
    auto net = mlp<double>({.widths = {4, 6, 3}, .activation = Tanh{}, .seed = 6});
    const auto x = TensorD::constant(random_row(4, 3).replicate(2, 1).eval());
    sum((*net)(x)).backward();
    std::vector<Matrix<double>> grads;
    for (const auto& p : net->parameters()) grads.emplace_back(p.grad());
    diag::jacobian_spectrum(*net, random_row(4, 4));
    const auto params = net->parameters();
    for (std::size_t i = 0; i < params.size(); ++i) {
        CHECK(params[i].requires_grad());
        CHECK(params[i].grad() == grads[i]);
    }
    REQUIRE_THROWS_MATCHES(diag::jacobian_spectrum(*net, Matrix<double>::Ones(2, 4)), shape_error,
                           MessageContains("x must be one input row (1 x n), got [2x4]"));
}

TEST_CASE("the spectrum's statistics describe its singular values", "[diag][jacobian]") {
    // A single Linear layer: the Jacobian is W itself.
    Rng rng(1);
    auto net = std::make_shared<Sequential<double>>();
    auto layer = net->add(std::make_shared<Linear<double>>(3, 3, rng));
    Matrix<double> w = Matrix<double>::Zero(3, 3);
    w.diagonal() << 4.0, 2.0, 0.5;
    layer->weight().assign(w);
    const auto s = diag::jacobian_spectrum(*net, random_row(3, 5));
    CHECK(s.singular_values(0) == Approx(4.0));
    CHECK(s.max == Approx(4.0));
    CHECK(s.min == Approx(0.5));
    CHECK(s.condition_number == Approx(8.0));
    CHECK(s.mean_squared == Approx((16.0 + 4.0 + 0.25) / 3.0));
    // log10 of 4, 2 and 0.5 is 2a, a and -a (a = log10 2): mean 2a/3, deviations 4a/3, a/3
    // and -5a/3, so the standard deviation is a sqrt(14) / 3.
    CHECK(s.log10_spread == Approx(std::log10(2.0) * std::sqrt(14.0) / 3.0));
    // The input row may be a tensor.
    const auto from_tensor = diag::jacobian_spectrum(*net, TensorD::constant(random_row(3, 5)));
    CHECK(from_tensor.singular_values == s.singular_values);
}

TEST_CASE(
    "dynamical isometry at depth 64: orthogonal tanh on the edge of chaos, not Gaussian, not ReLU",
    "[diag][jacobian][measured]") {
    // tanh on the edge of chaos with a tiny bias variance (q* ~ 0.009, where tanh is nearly
    // linear), inputs at q*. Orthogonal weights keep every singular value within a factor of
    // about 4 of the others (measured: condition number 3.5, spread 0.06 decades, seeds 1 and 2,
    // widths 128 and 256); Gaussian weights with the same variance spread them over 4 decades
    // (the smallest fall below double's resolution); ReLU with orthogonal He weights also spreads
    // them over 4 decades, since half its units pass nothing. The bounds leave 2 decades between
    // the isometric case and the others.
    const int depth = 64;
    const Index width = 128;
    const double sigma_b2 = 1e-6;
    auto spectrum = [&](const ActivationChoice<double>& act, const init::Initializer<double>& w,
                        const init::Initializer<double>& b, double input_scale) {
        auto net = mlp<double>({.widths = std::vector<Index>(depth + 1, width),
                                .activation = act,
                                .init = w,
                                .bias_init = b,
                                .seed = 1});
        net->eval();
        return diag::jacobian_spectrum(*net, random_row(width, 10, input_scale));
    };
    const auto gaussian = init::critical(Tanh{}, {.sigma_b2 = sigma_b2});
    const auto orthogonal = init::critical(Tanh{}, {.sigma_b2 = sigma_b2, .orthogonal = true});
    const double input_scale =
        std::sqrt((gaussian.point.at.q_star - sigma_b2) / gaussian.sigma_w2);  // q_1 = q*

    const auto isometric = spectrum(Tanh{}, orthogonal, orthogonal.bias(), input_scale);
    INFO("orthogonal tanh: condition " << isometric.condition_number << ", spread "
                                       << isometric.log10_spread << " decades");
    CHECK(isometric.condition_number < 10.0);
    CHECK(isometric.log10_spread < 0.2);
    CHECK(isometric.mean_squared == Approx(1.0).margin(0.25));  // chi_1 = 1 on the edge

    const auto spread = spectrum(Tanh{}, gaussian, gaussian.bias(), input_scale);
    INFO("Gaussian tanh: spread " << spread.log10_spread << " decades");
    CHECK(spread.log10_spread > 2.0);
    CHECK(spread.condition_number > 1e6);

    const auto relu = spectrum(ReLU{}, init::orthogonal(std::sqrt(2.0)), init::zeros(), 1.0);
    INFO("orthogonal ReLU: spread " << relu.log10_spread << " decades");
    CHECK(relu.log10_spread > 2.0);
    CHECK(relu.condition_number > 1e6);
}
