// Exact Hessian-vector products (nn/hessian.hpp): every op's second-order rule against central
// differences of gradients, symmetry, and the pass's contract (no side effects, clear errors).
#include "support/testing.hpp"

#include <functional>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

using LossOf = std::function<TensorD(const Inputs&)>;

// The gradient of loss(inputs) with respect to every input, by an ordinary backward.
std::vector<Matrix<double>> gradients_at(const LossOf& loss, const Inputs& inputs) {
    for (const TensorD& x : inputs) const_cast<TensorD&>(x).zero_grad();
    loss(inputs).backward();
    std::vector<Matrix<double>> out;
    for (const TensorD& x : inputs) out.emplace_back(x.grad());
    return out;
}

// H v by central differences of gradients: (g(x + h v) - g(x - h v)) / 2h. With h = 1e-5 in
// double the truncation error is O(h^2 |third derivative|) ~ 1e-10 and the rounding error
// ~ 1e-16 |g| / h ~ 1e-11 |g|, so agreement to 1e-6 (relative to the product's largest entry,
// or 1) is a failure only for a wrong rule.
std::vector<Matrix<double>> hvp_by_differences(const LossOf& loss, const Inputs& inputs,
                                               const std::vector<Matrix<double>>& v) {
    const double h = 1e-5;
    Inputs plus, minus;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        plus.push_back(param(inputs[i].value() + h * v[i]));
        minus.push_back(param(inputs[i].value() - h * v[i]));
    }
    const auto gp = gradients_at(loss, plus);
    const auto gm = gradients_at(loss, minus);
    std::vector<Matrix<double>> out;
    for (std::size_t i = 0; i < inputs.size(); ++i) out.push_back((gp[i] - gm[i]) / (2 * h));
    return out;
}

std::vector<Matrix<double>> random_direction(const Inputs& inputs, std::uint64_t seed) {
    std::vector<Matrix<double>> v;
    for (const TensorD& x : inputs) v.push_back(normal(x.rows(), x.cols(), seed++));
    return v;
}

double max_abs(const std::vector<Matrix<double>>& parts) {
    double m = 0.0;
    for (const auto& p : parts) m = std::max(m, p.cwiseAbs().maxCoeff());
    return m;
}

void require_exact_hvp(const LossOf& loss, const Inputs& inputs, std::uint64_t seed = 100) {
    const auto v = random_direction(inputs, seed);
    const auto exact = hvp([&] { return loss(inputs); }, inputs, v);
    const auto differences = hvp_by_differences(loss, inputs, v);
    const auto gradient = gradients_at(loss, inputs);
    const double scale = std::max(1.0, max_abs(differences));
    REQUIRE(max_abs(differences) > 1e-3);  // a product of zeros would prove nothing
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        INFO("input " << i);
        CHECK((exact.product[i] - differences[i]).cwiseAbs().maxCoeff() < 1e-6 * scale);
        CHECK((exact.gradient[i] - gradient[i]).cwiseAbs().maxCoeff() <
              1e-12 * (1 + gradient[i].cwiseAbs().maxCoeff()));
    }
}

}  // namespace

TEST_CASE("hvp of a linear layer with tanh and MSE matches differences of gradients", "[hessian]") {
    const auto x = TensorD::constant(normal(5, 4, 1));
    const auto target = TensorD::constant(normal(5, 3, 2));
    require_exact_hvp(
        [&](const Inputs& p) { return mse_loss(tanh(linear(x, p[0], p[1])), target); },
        {param(3, 4, 3), param(1, 3, 4)});
}

TEST_CASE("hvp through the arithmetic ops with broadcasting", "[hessian]") {
    const auto x = TensorD::constant(normal(4, 3, 5));
    require_exact_hvp(
        [&](const Inputs& p) {
            const auto a = x * p[0] + p[1];          // row broadcast, then column broadcast
            const auto b = a / (p[2] * p[2] + 1.0);  // scalar broadcast
            const auto c = (b - p[0]) * b + 2.0 / (b * b + 3.0);
            return sum(c * c) + mean(col_sum(c * p[0])) + sum(row_mean(c));
        },
        {param(1, 3, 6), param(4, 1, 7), param(1, 1, 8)});
}

TEST_CASE("hvp through matmul, transpose, concat, slice and max", "[hessian]") {
    require_exact_hvp(
        [](const Inputs& p) {
            const auto m = matmul(p[0], transpose(p[1]));
            const auto joined = concat_cols(m, p[0]);
            const auto part = slice_cols(joined, 1, 4);
            return sum(part * part) + sum(row_max(part * part)) + max(joined * joined);
        },
        {param(3, 4, 9), param(2, 4, 10)});
}

TEST_CASE("hvp through softmax and log-softmax", "[hessian]") {
    const auto w = TensorD::constant(normal(3, 5, 11));
    require_exact_hvp(
        [&](const Inputs& p) {
            return sum(softmax(p[0]) * w) + sum(log_softmax(p[0]) * softmax(p[0] * 0.5) * w);
        },
        {param(3, 5, 12)});
}

TEST_CASE("hvp through every built-in activation", "[hessian]") {
    const auto run = [](auto f, double margin) {
        INFO(decltype(f)::name);
        const auto w = TensorD::constant(normal(3, 4, 13));
        const auto x = param(away_from(normal(3, 4, 14, 1.5), 0.0, margin));
        require_exact_hvp(
            [&](const Inputs& p) { return sum(elementwise(p[0], f) * elementwise(p[0], f) * w); },
            {x});
    };
    run(Sigmoid{}, 0.0);
    run(Tanh{}, 0.0);
    run(ReLU{}, 0.05);
    run(LeakyReLU{}, 0.05);
    run(ELU{}, 0.05);
    run(SELU{}, 0.05);
    run(GELU{}, 0.0);
    run(GELUTanh{}, 0.0);
    run(SiLU{}, 0.0);
    run(Softplus{}, 0.0);
    run(Identity{}, 0.0);
}

TEST_CASE("hvp through the core's elementwise functions", "[hessian]") {
    const auto w = TensorD::constant(normal(2, 3, 15));
    const auto positive = param(uniform(2, 3, 16, 0.5, 2.0));
    require_exact_hvp(
        [&](const Inputs& p) {
            return sum((exp(p[0] * 0.3) + log(p[0]) + sqrt(p[0]) + square(p[0]) + pow(p[0], 2.5)) *
                       w);
        },
        {positive});
}

TEST_CASE("hvp through batch norm in training and evaluation mode", "[hessian]") {
    const auto target = TensorD::constant(normal(6, 4, 17));
    for (const bool training : {true, false}) {
        INFO("training " << training);
        const Matrix<double> mean = normal(1, 4, 18);
        const Matrix<double> variance = uniform(1, 4, 19, 0.5, 2.0);
        require_exact_hvp(
            [&](const Inputs& p) {
                BatchStatistics<double> stats;
                const auto h = matmul(p[0], p[3]);
                const auto y = training ? batch_norm_train(h, p[1], p[2], 1e-5, stats)
                                        : batch_norm_eval(h, p[1], p[2], mean, variance, 1e-5);
                return mse_loss(tanh(y), target);
            },
            {param(6, 3, 20), param(uniform(1, 4, 21, 0.5, 1.5)), param(1, 4, 22),
             param(3, 4, 23)});
    }
}

TEST_CASE("hvp through layer norm", "[hessian]") {
    const auto target = TensorD::constant(normal(5, 4, 24));
    require_exact_hvp(
        [&](const Inputs& p) {
            return mse_loss(tanh(layer_norm(matmul(p[0], p[3]), p[1], p[2], 1e-5)), target);
        },
        {param(5, 3, 25), param(uniform(1, 4, 26, 0.5, 1.5)), param(1, 4, 27), param(3, 4, 28)});
}

TEST_CASE("hvp through dropout with its mask fixed", "[hessian]") {
    const auto target = TensorD::constant(normal(4, 5, 29));
    // A freshly seeded generator in every forward pass: the same mask for the product and for
    // both gradients of the differences.
    require_exact_hvp(
        [&](const Inputs& p) {
            Rng same(30);
            return mse_loss(tanh(dropout(p[0] * p[0], 0.3, same)), target);
        },
        {param(4, 5, 31)});
}

TEST_CASE("hvp through the regression losses", "[hessian]") {
    const auto target = TensorD::constant(normal(4, 3, 35));
    const auto x = param(away_from(normal(4, 3, 36) - target.value(), 0.0, 0.05) + target.value());
    require_exact_hvp(
        [&](const Inputs& p) { return mse_loss(p[0] * p[0], target, Reduction::sum); }, {x});
    require_exact_hvp(
        [&](const Inputs& p) { return huber_loss(p[0] * p[0], target, {.delta = 0.7}); }, {x});
    require_exact_hvp(
        [&](const Inputs& p) { return smooth_l1_loss(p[0] * p[0], target, {.beta = 0.6}); }, {x});
    // L1, and smooth L1 with beta = 0 (which is L1): the loss's own curvature is 0 away from the
    // kink, and the square's remains.
    require_exact_hvp([&](const Inputs& p) { return l1_loss(p[0] * p[0], target); }, {x});
    require_exact_hvp(
        [&](const Inputs& p) { return smooth_l1_loss(p[0] * p[0], target, {.beta = 0.0}); }, {x});
    require_exact_hvp(
        [&](const Inputs& p) { return sum(mse_loss(p[0] * p[0], target, Reduction::none) * p[0]); },
        {x});
}

TEST_CASE("hvp through cross-entropy with weights, smoothing and ignored rows", "[hessian]") {
    const std::vector<int> labels{0, 2, 1, 2, 0};
    const CrossEntropyOptions options{
        .weight = {0.5, 1.0, 2.0}, .ignore_index = 1, .label_smoothing = 0.2};
    require_exact_hvp(
        [&](const Inputs& p) { return cross_entropy(tanh(p[0]) * 2.0, labels, options); },
        {param(5, 3, 37)});
    require_exact_hvp([&](const Inputs& p) { return cross_entropy(p[0] * p[0], labels); },
                      {param(5, 3, 38)});
    const auto row_weight = TensorD::constant(normal(5, 1, 39));
    require_exact_hvp(
        [&](const Inputs& p) {
            return sum(cross_entropy(p[0] * p[0], labels, Reduction::none) * row_weight);
        },
        {param(5, 3, 40)});
}

TEST_CASE("hvp through binary cross-entropy with logits, weights and targets that move",
          "[hessian]") {
    const auto targets = uniform(4, 3, 40, 0.0, 1.0);
    BCEWithLogitsOptions options;
    options.weight = uniform(4, 1, 41, 0.5, 2.0);
    options.pos_weight = {0.5, 2.0, 1.5};
    require_exact_hvp(
        [&](const Inputs& p) {
            return binary_cross_entropy_with_logits(p[0] * p[0], sigmoid(p[1]), options);
        },
        {param(4, 3, 42), param(4, 3, 43)});
}

TEST_CASE("Hessian products are symmetric: v.Hw = w.Hv", "[hessian]") {
    const auto x = TensorD::constant(normal(8, 4, 44));
    const std::vector<int> labels{0, 1, 2, 0, 1, 2, 0, 1};
    const Inputs p{param(5, 4, 45), param(1, 5, 46), param(uniform(1, 5, 47, 0.5, 1.5)),
                   param(1, 5, 48), param(3, 5, 49)};
    BatchStatistics<double> stats;
    const auto h = layer_norm(elementwise(linear(x, p[0], p[1]), GELU{}), p[2], p[3], 1e-5);
    (void)stats;
    Hessian<double> hessian(cross_entropy(linear(h, p[4]), labels), p);
    const auto v = random_direction(p, 50);
    const auto w = random_direction(p, 60);
    const auto hv = hessian.product(v);
    const auto hw = hessian.product(w);
    double vhw = 0, whv = 0;
    for (std::size_t i = 0; i < p.size(); ++i) {
        vhw += v[i].cwiseProduct(hw[i]).sum();
        whv += w[i].cwiseProduct(hv[i]).sum();
    }
    CHECK(std::abs(vhw) > 1e-3);
    CHECK(vhw == Approx(whv).epsilon(1e-12));
}

namespace {

// A user's activation with a first derivative only.
struct FirstOrderOnly {
    static constexpr const char* name = "first_order_only";
    template <class T>
    T value(T x) const {
        return x * x * x;
    }
    template <class T>
    T derivative(T x, T) const {
        return T(3) * x * x;
    }
};

// The same with its second derivative: it then works in a Hessian-vector product.
struct Cube : FirstOrderOnly {
    template <class T>
    T second_derivative(T x, T) const {
        return T(6) * x;
    }
};

}  // namespace

TEST_CASE("a user-defined activation with second_derivative works in hvp", "[hessian]") {
    const auto w = TensorD::constant(normal(3, 2, 70));
    require_exact_hvp([&](const Inputs& p) { return sum(elementwise(p[0], Cube{}) * w); },
                      {param(3, 2, 71)});
}

TEST_CASE("an activation without second_derivative is refused by name", "[hessian]") {
    const auto x = param(3, 2, 72);
    const auto loss = [&] { return sum(elementwise(x, FirstOrderOnly{})); };
    REQUIRE_THROWS_MATCHES(hvp<double>(loss, {x}, {normal(3, 2, 73)}), graph_error,
                           MessageContains({"first_order_only", "second_derivative"}));
    // Nothing was left half done: the ordinary backward still works and x has no gradient yet.
    CHECK_FALSE(x.has_grad());
    auto l = loss();
    l.backward();
    CHECK(x.has_grad());
}

TEST_CASE("hvp leaves parameter gradients, hooks and the monitor's view alone", "[hessian]") {
    auto net = mlp<double>({.widths = {4, 5, 3}, .activation = Tanh{}, .seed = 74});
    const auto x = TensorD::constant(normal(6, 4, 75));
    const auto y = TensorD::constant(normal(6, 3, 76));
    const auto loss_of = [&] { return mse_loss((*net)(x), y); };
    auto loss = loss_of();
    loss.backward();
    const auto params = net->parameters();
    std::vector<Matrix<double>> before;
    for (const auto& p : params) before.emplace_back(p.grad());
    int hook_calls = 0;
    const auto param_hook = net->register_param_grad_hook([&](Module<double>&) { ++hook_calls; });
    const auto output_hook =
        net->register_output_grad_hook([&](Module<double>&, MatrixView<double>) { ++hook_calls; });
    diag::GradientMonitor<double> monitor(*net);
    const auto out = hvp(loss_of, *net, random_direction(params, 77));
    CHECK(hook_calls == 0);
    CHECK(monitor.steps_seen() == 0);
    for (std::size_t i = 0; i < params.size(); ++i) {
        CHECK(params[i].grad() == before[i]);  // not doubled, not replaced
        CHECK((out.gradient[i] - before[i]).cwiseAbs().maxCoeff() < 1e-14);
    }
}

TEST_CASE("one Hessian serves many directions and matches the one-shot hvp", "[hessian]") {
    auto net = mlp<double>({.widths = {3, 4, 4, 2},
                            .activation = SiLU{},
                            .norm = Normalization::batch,
                            .residual = true,
                            .seed = 78});
    const auto x = TensorD::constant(normal(5, 3, 79));
    const std::vector<int> labels{0, 1, 1, 0, 1};
    const auto loss_of = [&] { return cross_entropy((*net)(x), labels); };
    // Batch norm's running statistics move on every training forward; products at one
    // recorded graph do not run the forward again.
    Hessian<double> hessian(loss_of(), *net);
    const auto params = net->parameters();
    for (std::uint64_t seed : {80, 90}) {
        const auto v = random_direction(params, seed);
        const auto many = hessian.product(v);
        const auto once = hvp(loss_of, params, v);
        for (std::size_t i = 0; i < params.size(); ++i) {
            CHECK((many[i] - once.product[i]).cwiseAbs().maxCoeff() <=
                  1e-12 * (1 + once.product[i].cwiseAbs().maxCoeff()));
        }
    }
    CHECK(hessian.gradient().size() == params.size());
}

TEST_CASE("the dense Hessian from n products is symmetric and matches differences", "[hessian]") {
    const auto x = TensorD::constant(normal(6, 3, 81));
    const std::vector<int> labels{0, 1, 2, 2, 1, 0};
    const Inputs p{param(4, 3, 82), param(1, 4, 83), param(3, 4, 84)};
    const LossOf loss = [&](const Inputs& q) {
        return cross_entropy(linear(tanh(linear(x, q[0], q[1])), q[2]), labels);
    };
    Hessian<double> hessian(loss(p), p);
    const Index n = hessian.size();
    REQUIRE(n == 12 + 4 + 12);
    Matrix<double> dense(n, n);
    for (Index j = 0; j < n; ++j) {
        Eigen::VectorXd e = Eigen::VectorXd::Zero(n);
        e(j) = 1.0;
        dense.col(j) = hessian.product(e);
    }
    CHECK((dense - dense.transpose()).cwiseAbs().maxCoeff() <
          1e-14 * dense.cwiseAbs().maxCoeff() * n);
    // Column j against differences of gradients along e_j, for a few j.
    for (const Index j : {Index{0}, Index{13}, Index{27}}) {
        std::vector<Matrix<double>> e{Matrix<double>::Zero(4, 3), Matrix<double>::Zero(1, 4),
                                      Matrix<double>::Zero(3, 4)};
        Index k = j;
        for (auto& part : e) {
            if (k < part.size()) {
                part.data()[k] = 1.0;
                break;
            }
            k -= part.size();
        }
        const auto diff = hvp_by_differences(loss, p, e);
        Eigen::VectorXd flat(n);
        Index offset = 0;
        for (const auto& part : diff) {
            flat.segment(offset, part.size()) =
                Eigen::Map<const Eigen::VectorXd>(part.data(), part.size());
            offset += part.size();
        }
        CHECK((dense.col(j) - flat).cwiseAbs().maxCoeff() < 1e-7);
    }
}

TEST_CASE("hvp in float agrees with double", "[hessian]") {
    const Matrix<double> x = normal(8, 5, 85);
    const Matrix<double> w = normal(4, 5, 86);
    const Matrix<double> v = normal(4, 5, 87);
    const auto product_in = [&](auto zero) {
        using T = decltype(zero);
        const auto xt = Tensor<T>::constant(x.cast<T>());
        const auto wt = Tensor<T>::parameter(w.cast<T>());
        const std::vector<Matrix<T>> dir{v.cast<T>()};
        const auto out = hvp([&] { return mean(square(tanh(linear(xt, wt)))); }, {wt}, dir);
        return Matrix<double>(out.product[0].template cast<double>());
    };
    const Matrix<double> in_double = product_in(0.0);
    const Matrix<double> in_float = product_in(0.0f);
    // float rounding (6e-8) through a few dozen operations per entry
    CHECK((in_float - in_double).cwiseAbs().maxCoeff() < 1e-5 * in_double.cwiseAbs().maxCoeff());
}

TEST_CASE("hvp refuses a non-scalar loss, wrong directions and a moved parameter", "[hessian]") {
    auto x = param(3, 2, 88);
    REQUIRE_THROWS_MATCHES(hvp<double>([&] { return tanh(x); }, {x}, {normal(3, 2, 89)}),
                           shape_error, MessageContains({"[1x1]", "[3x2]"}));
    REQUIRE_THROWS_MATCHES(hvp<double>([&] { return sum(tanh(x)); }, {x}, {normal(2, 3, 90)}),
                           shape_error, MessageContains({"direction #0", "[2x3]", "[3x2]"}));
    const auto interior = tanh(x);
    REQUIRE_THROWS_MATCHES(
        hvp<double>([&] { return sum(tanh(interior)); }, {interior}, {normal(3, 2, 91)}),
        value_error, MessageContains("not a leaf"));
    Hessian<double> hessian(sum(tanh(x) * x), {x});  // mul reads x's value
    (void)hessian.product(std::vector<Matrix<double>>{normal(3, 2, 92)});
    {
        NoGradGuard no_grad;
        x.data()(0, 0) += 1.0;
    }
    REQUIRE_THROWS_MATCHES(hessian.product(std::vector<Matrix<double>>{normal(3, 2, 93)}),
                           graph_error, MessageContains("modified in place"));
    // An empty direction is a zero direction: the product is 0 and the gradient still comes.
    const auto out = hvp<double>([&] { return sum(tanh(x) * tanh(x)); }, {x}, {Matrix<double>()});
    CHECK(out.product[0].isZero(0.0));
    CHECK_FALSE(out.gradient[0].isZero(0.0));
}

TEST_CASE("the gradient-norm penalty's backward is the penalised loss's gradient", "[hessian]") {
    const auto x = TensorD::constant(normal(6, 3, 94));
    const auto y = TensorD::constant(normal(6, 2, 95));
    const Inputs p{param(4, 3, 96), param(1, 4, 97), param(2, 4, 98)};
    const double weight = 0.3;
    const LossOf loss = [&](const Inputs& q) {
        return mse_loss(linear(elementwise(linear(x, q[0], q[1]), SiLU{}), q[2]), y);
    };
    // f(theta) = L + (weight / 2) |dL/dtheta|^2, evaluated with ordinary backward passes.
    const auto penalised = [&](const Inputs& q) {
        double norm = 0.0;
        for (const auto& g : gradients_at(loss, q)) norm += g.squaredNorm();
        return loss(q).item() + 0.5 * weight * norm;
    };
    for (const TensorD& t : p) const_cast<TensorD&>(t).clear_grad();
    const double penalty = backward_with_gradient_penalty(loss(p), p, weight);
    double norm = 0.0;
    for (const auto& g : gradients_at(loss, p)) norm += g.squaredNorm();
    CHECK(penalty == Approx(0.5 * weight * norm).epsilon(1e-12));
    for (const TensorD& t : p) const_cast<TensorD&>(t).clear_grad();
    (void)backward_with_gradient_penalty(loss(p), p, weight);
    std::vector<Matrix<double>> grad;
    for (const TensorD& t : p) grad.emplace_back(t.grad());
    // The directional derivative of f along two random directions, by central differences
    // (h = 1e-5: truncation ~1e-10, rounding ~1e-11 relative).
    for (std::uint64_t seed : {99, 110}) {
        const auto v = random_direction(p, seed);
        const double h = 1e-5;
        Inputs plus, minus;
        double analytic = 0.0;
        for (std::size_t i = 0; i < p.size(); ++i) {
            plus.push_back(param(p[i].value() + h * v[i]));
            minus.push_back(param(p[i].value() - h * v[i]));
            analytic += grad[i].cwiseProduct(v[i]).sum();
        }
        const double numeric = (penalised(plus) - penalised(minus)) / (2 * h);
        CHECK(analytic == Approx(numeric).epsilon(1e-7));
    }
    // Without the penalty's term the directional derivative is measurably different.
    double plain = 0.0;
    const auto v = random_direction(p, 99);
    const auto g = gradients_at(loss, p);
    for (std::size_t i = 0; i < p.size(); ++i) plain += g[i].cwiseProduct(v[i]).sum();
    double with_penalty = 0.0;
    for (std::size_t i = 0; i < p.size(); ++i) with_penalty += grad[i].cwiseProduct(v[i]).sum();
    CHECK(std::abs(plain - with_penalty) > 1e-3 * std::abs(plain));
}
