// Every built-in activation: its value and derivative against PyTorch, a finite-difference
// check of its derivative, and the bounds the vanishing-gradient story rests on.
#include "support/reference.hpp"

using namespace gradscope;
using namespace gradscope::testing;

namespace {

template <class Act>
void check_against_pytorch(const std::string& name, Act act) {
    ReferenceCase c("nn_reference.json", "activations");
    auto x = TensorD::parameter(c.input("x"));
    auto y = elementwise(x, act);
    c.check_output(name, y, 1e-12);
    sum(y).backward();
    INFO("derivative of " << name);
    CHECK(all_close(x.grad(), c.grad(name), 1e-12, 1e-14));
    // The grid avoids every kink, so central differences are exact up to O(h^2).
    require_gradcheck([act](const Inputs& in) { return elementwise(in[0], act); },
                      {TensorD::parameter(c.input("x"))});
}

// A user's own activation, written the way the built-ins are: outside the library.
struct Swish2 {
    static constexpr const char* name = "swish2";
    double beta = 2.0;
    template <class T>
    T value(T x) const {
        return x / (T(1) + std::exp(-static_cast<T>(beta) * x));
    }
    template <class T>
    T derivative(T x, T y) const {
        const T s = T(1) / (T(1) + std::exp(-static_cast<T>(beta) * x));
        return s + static_cast<T>(beta) * y * (T(1) - s);
    }
};

}  // namespace

TEST_CASE("sigmoid, tanh and relu match PyTorch", "[activations][reference]") {
    check_against_pytorch("sigmoid", Sigmoid{});
    check_against_pytorch("tanh", Tanh{});
    check_against_pytorch("relu", ReLU{});
}

TEST_CASE("leaky_relu, elu and selu match PyTorch", "[activations][reference]") {
    check_against_pytorch("leaky_relu", LeakyReLU{.slope = 0.2});
    check_against_pytorch("elu", ELU{.alpha = 1.3});
    check_against_pytorch("selu", SELU{});
}

TEST_CASE("gelu (exact and tanh), silu, softplus and hardtanh match PyTorch",
          "[activations][reference]") {
    check_against_pytorch("gelu", GELU{});
    check_against_pytorch("gelu_tanh", GELUTanh{});
    check_against_pytorch("silu", SiLU{});
    check_against_pytorch("softplus", Softplus{.beta = 2.0});
    check_against_pytorch("hardtanh", Hardtanh{.min = -0.7, .max = 1.2});
}

TEST_CASE("leaky_relu's default slope is PyTorch's 0.01", "[activations]") {
    CHECK(LeakyReLU{}.value(-2.0) == -0.02);
    CHECK(LeakyReLU{}.derivative(-2.0, 0.0) == 0.01);
}

TEST_CASE("sigmoid' <= 0.25 and tanh' <= 1, with the maximum attained at 0", "[activations]") {
    double max_sig = 0.0, max_tanh = 0.0, argmax_sig = 1.0, argmax_tanh = 1.0;
    int violations = 0;
    for (int i = -200000; i <= 200000; ++i) {  // a dense grid on [-20, 20], step 1e-4
        const double x = i * 1e-4;
        const double ds = Sigmoid{}.derivative(x, Sigmoid{}.value(x));
        const double dt = Tanh{}.derivative(x, Tanh{}.value(x));
        violations += (ds > 0.25) + (dt > 1.0);
        if (ds > max_sig) {
            max_sig = ds;
            argmax_sig = x;
        }
        if (dt > max_tanh) {
            max_tanh = dt;
            argmax_tanh = x;
        }
    }
    CHECK(violations == 0);
    CHECK(max_sig == 0.25);
    CHECK(max_tanh == 1.0);
    CHECK(argmax_sig == 0.0);
    CHECK(argmax_tanh == 0.0);
}

TEST_CASE("softplus does not overflow in float and becomes the identity past its threshold",
          "[activations]") {
    const Softplus sp{};
    CHECK(std::isfinite(sp.value(100.0f)));
    CHECK(sp.value(100.0f) == 100.0f);
    CHECK(sp.value(-100.0f) > 0.0f);
    CHECK(sp.value(-100.0f) < 1e-30f);
}

TEST_CASE("a user-defined activation works in the op, in gradcheck and in a trained mlp",
          "[activations]") {
    static_assert(ElementwiseFunction<Swish2, double>);
    const auto x = param(normal(3, 4, 1));
    require_gradcheck([](const Inputs& in) { return elementwise(in[0], Swish2{}); }, {x});

    // Fit y = sin(2x) on [-1, 1]; the loss must fall by a factor of ten.
    auto net = mlp<double>({.widths = {1, 32, 1}, .activation = Swish2{.beta = 1.5}, .seed = 5});
    Matrix<double> xs(64, 1), ys(64, 1);
    for (Index i = 0; i < 64; ++i) {
        xs(i, 0) = -1.0 + 2.0 * static_cast<double>(i) / 63.0;
        ys(i, 0) = std::sin(2.0 * xs(i, 0));
    }
    const auto input = TensorD::constant(xs), target = TensorD::constant(ys);
    const double first = mse_loss((*net)(input), target).item();
    double last = first;
    for (int step = 0; step < 300; ++step) {
        auto loss = mse_loss((*net)(input), target);
        net->zero_grad();
        loss.backward();
        for (auto& p : net->parameters()) p.data() -= 0.1 * p.grad();
        last = loss.item();
    }
    CHECK(last < first / 10.0);
}
