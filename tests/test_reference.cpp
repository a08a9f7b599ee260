// Values and gradients of compound expressions against PyTorch (float64), computed by
// tools/make_core_reference.py and committed in tests/data/core_reference.json. Both sides
// compute in double; the differences left are rounding in a different order of operations,
// so 1e-10 relative (with a 1e-12 floor for entries near zero) is a tolerance with room.
#include "support/reference.hpp"

using namespace gradscope;
using namespace gradscope::testing;

namespace {

struct Case : ReferenceCase {
    explicit Case(const std::string& name) : ReferenceCase("core_reference.json", name) {}
};

}  // namespace

TEST_CASE("a two-layer tanh network with log-softmax loss matches PyTorch", "[reference]") {
    Case c("tanh_mlp_nll");
    auto h = tanh(linear(c.in("x"), c.in("W1"), c.in("b1")));
    auto z = linear(h, c.in("W2"), c.in("b2"));
    auto loss = -sum(log_softmax(z) * c.in("Y")) / 4.0;
    c.check_output("z", z);
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}

TEST_CASE("a sigmoid layer with broadcast bias and MSE matches PyTorch", "[reference]") {
    Case c("sigmoid_mse_broadcast");
    // The bias is added by broadcasting here (not by linear), to exercise add's row case.
    auto y = sigmoid(matmul(c.in("x"), transpose(c.in("W"))) + c.in("b"));
    auto loss = mean(square(y - c.in("t")));
    c.check_output("y", y);
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}

TEST_CASE("a chain of elementwise ops matches PyTorch", "[reference]") {
    Case c("elementwise_chain");
    auto& a = c.in("a");
    auto& b = c.in("b");
    auto& cc = c.in("c");
    auto u = sqrt(exp(a) / b + 1.0) * log(b) - cc;
    auto v = pow(abs(a) + 1.0, 1.5);
    auto w = clamp(a, -0.5, 0.5) * square(cc);
    auto loss = sum(u) + mean(v) + sum(w) / 3.0 + mean(-a) * 0.25 + sum(2.0 - b) / sum(b + 1.0);
    c.check_output("u", u);
    c.check_output("v", v);
    c.check_output("w", w);
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}

TEST_CASE("softmax, maxima and reductions match PyTorch", "[reference]") {
    Case c("softmax_max_reductions");
    auto& a = c.in("a");
    auto s = softmax(a);
    auto loss = sum(s * c.in("m")) + mean(row_max(a)) + sum(col_max(a)) * 0.5 + max(a) +
                sum(square(row_sum(a))) / 10.0 + sum(col_mean(a) * c.in("c")) + mean(a) +
                sum(a / 2.0) * 0.1 + sum(3.0 - a) * 0.01 +
                sum(col_sum(a)) * sum(row_mean(a)) * 0.05;
    c.check_output("s", s);
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}

TEST_CASE("matmul, concat, slice and transpose match PyTorch", "[reference]") {
    Case c("matmul_concat_slice");
    auto m = matmul(c.in("A"), c.in("B"));
    auto k = concat_cols(m, c.in("C"));
    auto s = slice_cols(k, 1, 3);
    auto p = matmul(transpose(s), s);
    auto loss = sum(p * c.in("D")) + sum(relu(k)) + sum(log_softmax(s) * c.in("D"));
    c.check_output("K", k);
    c.check_output("S", s);
    c.check_output("P", p);
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}

TEST_CASE("a six-layer tanh chain matches PyTorch", "[reference]") {
    Case c("deep_tanh_chain");
    TensorD h = c.in("x");
    for (int l = 0; l < 6; ++l) {
        const std::string i = std::to_string(l);
        h = tanh(linear(h, c.in("W" + i), c.in("b" + i)));
    }
    auto loss = mean(h) + sum(square(h)) * 0.01;
    c.check_output("loss", loss);
    loss.backward();
    c.check_grads();
}
