// Lifetimes: hooks, handles, monitors and networks may be created and destroyed in any order
// (Note [Hook lifetimes] in nn/module.hpp), hooks may change the hook lists they run from
// (Note [Hooks that change hooks] in core/hook_list.hpp), and graph misuse that would read
// freed or stale memory is a clear error. CI runs these under ASan + UBSan, which is what makes
// "does not crash" a real claim here.
#include "support/misdeclared_op.hpp"
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <memory>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

std::shared_ptr<MLP<double>> small_net(std::uint64_t seed = 1) {
    return mlp<double>({.widths = {4, 8, 8, 3}, .activation = Tanh{}, .seed = seed});
}

TensorD batch(Index rows = 5) { return TensorD::constant(normal(rows, 4, 7)); }

TensorD loss_of(Module<double>& net, Index rows = 5) { return sum(square(net(batch(rows)))); }

// A module that can be asked to adopt any module as a child, to test register_module.
struct Box : Module<double> {
    void adopt(const std::string& name, std::shared_ptr<Module<double>> child) {
        register_module(name, std::move(child));
    }
    void add_parameter(const std::string& name, TensorD t) {
        register_parameter(name, std::move(t));
    }
    TensorD forward_impl(const TensorD& x) override { return x; }
    [[nodiscard]] std::string type_name() const override { return "Box"; }
};

}  // namespace

TEST_CASE("a monitor that outlives its network keeps its records and detaches safely",
          "[lifetime]") {
    auto net = small_net();
    auto monitor = std::make_unique<diag::GradientMonitor<double>>(*net);
    loss_of(*net).backward();
    REQUIRE(monitor->steps_seen() == 1);
    const double first_layer = monitor->last().layers()[0].output_grad_norm;
    net.reset();
    CHECK(monitor->last().layers()[0].output_grad_norm == first_layer);
    monitor->detach();
    CHECK_FALSE(monitor->attached());
    monitor.reset();
}

TEST_CASE("removing a hook after its module is gone does nothing and says so", "[lifetime]") {
    auto layer = std::make_shared<Linear<double>>(4, 2, *std::make_unique<Rng>(1));
    ModuleHookHandle forward = layer->register_forward_hook([](auto&, const auto&, const auto&) {});
    ModuleHookHandle output_grad = layer->register_output_grad_hook([](auto&, auto) {});
    ModuleHookHandle param_grad = layer->register_param_grad_hook([](auto&) {});
    layer.reset();
    CHECK_FALSE(forward.remove());
    CHECK_FALSE(output_grad.remove());
    CHECK_FALSE(param_grad.remove());
}

TEST_CASE("a handle removes its hook once, and a second remove returns false", "[lifetime]") {
    auto net = small_net();
    int calls = 0;
    ModuleHookHandle handle =
        net->register_forward_hook([&](auto&, const auto&, const auto&) { ++calls; });
    (void)(*net)(batch());
    CHECK(handle.remove());
    CHECK_FALSE(handle.remove());
    (void)(*net)(batch());
    CHECK(calls == 1);
}

TEST_CASE("a network destroyed between forward and backward runs none of its hooks", "[lifetime]") {
    auto net = small_net();
    diag::GradientMonitor<double> monitor(*net);
    int output_grad_calls = 0;
    int param_grad_calls = 0;
    net->register_output_grad_hook([&](auto&, auto) { ++output_grad_calls; });
    net->register_param_grad_hook([&](auto&) { ++param_grad_calls; });
    TensorD loss = loss_of(*net);
    net.reset();  // the graph still holds the outputs the network's modules recorded
    loss.backward();
    CHECK(output_grad_calls == 0);
    CHECK(param_grad_calls == 0);
    CHECK(monitor.steps_seen() == 0);
}

TEST_CASE("a monitor destroyed between forward and backward is not called by that backward",
          "[lifetime]") {
    auto net = small_net();
    auto monitor = std::make_unique<diag::GradientMonitor<double>>(*net);
    int param_grad_calls = 0;
    net->register_param_grad_hook([&](auto&) { ++param_grad_calls; });
    TensorD loss = loss_of(*net);
    monitor.reset();
    loss.backward();
    CHECK(param_grad_calls == 1);  // the network's other hooks still run
}

TEST_CASE("a monitor whose selector picks nothing throws and leaves no hook behind", "[lifetime]") {
    auto net = small_net();
    using Monitor = diag::GradientMonitor<double>;
    REQUIRE_THROWS_MATCHES(
        Monitor(*net, {.select = [](const std::string&, Module<double>&) { return false; }}),
        value_error, MessageContains("the selector picked none"));
    // The activations' hooks would be registered first if anything were: forward and backward
    // must not reach the destroyed monitor.
    loss_of(*net).backward();
    SUCCEED("no hook of the failed monitor ran");
}

TEST_CASE("hooks that remove themselves run exactly once, of every kind", "[lifetime]") {
    auto net = small_net();
    int forward_calls = 0;
    int output_grad_calls = 0;
    int param_grad_calls = 0;
    auto forward = std::make_shared<ModuleHookHandle>();
    auto output_grad = std::make_shared<ModuleHookHandle>();
    auto param_grad = std::make_shared<ModuleHookHandle>();
    *forward = net->register_forward_hook([&, forward](auto&, const auto&, const auto&) {
        ++forward_calls;
        forward->remove();
    });
    *output_grad = net->register_output_grad_hook([&, output_grad](auto&, auto) {
        ++output_grad_calls;
        output_grad->remove();
    });
    *param_grad = net->register_param_grad_hook([&, param_grad](auto&) {
        ++param_grad_calls;
        param_grad->remove();
    });
    for (int step = 0; step < 3; ++step) loss_of(*net).backward();
    CHECK(forward_calls == 1);
    CHECK(output_grad_calls == 1);
    CHECK(param_grad_calls == 1);
    // The shared pointers inside the lambdas were the last owners: break the cycles.
    forward.reset();
    output_grad.reset();
    param_grad.reset();
}

TEST_CASE("a tensor hook that removes itself runs once", "[lifetime]") {
    auto w = param(3, 3, 2);
    int calls = 0;
    auto handle = std::make_shared<HookHandle<double>>();
    *handle = w.register_hook([&calls, handle](MatrixView<double>) {
        ++calls;
        handle->remove();
    });
    for (int i = 0; i < 3; ++i) sum(square(w)).backward();
    CHECK(calls == 1);
    handle.reset();
}

TEST_CASE("a hook added while hooks run first runs at the next call", "[lifetime]") {
    auto net = small_net();
    std::vector<std::string> calls;
    std::vector<ModuleHookHandle> added;
    net->register_forward_hook([&](auto& m, const auto&, const auto&) {
        calls.push_back("first");
        if (added.empty()) {
            added.push_back(m.register_forward_hook(
                [&](auto&, const auto&, const auto&) { calls.push_back("added"); }));
        }
    });
    (void)(*net)(batch());
    CHECK(calls == std::vector<std::string>{"first"});
    (void)(*net)(batch());
    CHECK(calls == std::vector<std::string>{"first", "first", "added"});
}

TEST_CASE("a hook removed by an earlier hook in the same run does not run", "[lifetime]") {
    auto net = small_net();
    int later_calls = 0;
    ModuleHookHandle later;
    net->register_param_grad_hook([&](auto&) { later.remove(); });
    later = net->register_param_grad_hook([&](auto&) { ++later_calls; });
    loss_of(*net).backward();
    loss_of(*net).backward();
    CHECK(later_calls == 0);
}

TEST_CASE("register_module refuses to make a module part of itself", "[lifetime]") {
    auto outer = std::make_shared<Box>();
    auto inner = std::make_shared<Box>();
    outer->adopt("inner", inner);
    REQUIRE_THROWS_MATCHES(outer->adopt("self", outer), value_error, MessageContains("cycle"));
    REQUIRE_THROWS_MATCHES(inner->adopt("parent", outer), value_error, MessageContains("cycle"));
    CHECK(outer->named_modules().size() == 2);
}

TEST_CASE("register_parameter refuses repeated, empty or dotted names and non-leaf tensors",
          "[lifetime]") {
    Box box;
    box.add_parameter("w", param(2, 2, 1));
    REQUIRE_THROWS_MATCHES(box.add_parameter("w", param(2, 2, 2)), value_error,
                           MessageContains("already taken"));
    REQUIRE_THROWS_MATCHES(box.adopt("w", std::make_shared<Box>()), value_error,
                           MessageContains("already taken"));
    REQUIRE_THROWS_MATCHES(box.add_parameter("a.b", param(2, 2, 3)), value_error,
                           MessageContains("no '.'"));
    REQUIRE_THROWS_MATCHES(box.add_parameter("", param(2, 2, 3)), value_error,
                           MessageContains("non-empty"));
    REQUIRE_THROWS_MATCHES(box.add_parameter("y", param(2, 2, 4) * 2.0), value_error,
                           MessageContains({"needs a leaf", "mul_scalar"}));
    REQUIRE_THROWS_MATCHES(box.add_parameter("z", TensorD()), value_error,
                           MessageContains("empty handle"));
    CHECK(box.named_parameters().size() == 1);
}

TEST_CASE("writing a parameter between forward and backward is reported at backward, by name",
          "[lifetime]") {
    auto net = small_net();
    auto& first = *net->linear_layers()[0].second;
    TensorD loss = loss_of(*net);
    first.weight().data()(0, 0) += 1.0;
    REQUIRE_THROWS_MATCHES(loss.backward(), graph_error,
                           MessageContains({"layers.0.linear.weight", "modified in place"}));
}

TEST_CASE("writing an input the backward reads is reported, and one it does not read is allowed",
          "[lifetime]") {
    Rng rng(3);
    Linear<double> layer(4, 2, rng);
    SECTION("the input x, which dW = g^T x reads") {
        TensorD x = batch();
        TensorD loss = sum(layer(x));
        x.data()(1, 1) = 42.0;
        REQUIRE_THROWS_MATCHES(loss.backward(), graph_error,
                               MessageContains({"a constant leaf [5x4]", "input #0 of 'linear'"}));
    }
    SECTION("the bias, which the linear's backward does not read") {
        TensorD loss = sum(layer(batch()));
        layer.bias().data().setConstant(3.0);
        REQUIRE_NOTHROW(loss.backward());
        CHECK(layer.bias().grad().isApproxToConstant(5.0));  // a sum over 5 rows
    }
    SECTION("a write after backward, as an optimiser makes, then a new forward") {
        sum(layer(batch())).backward();
        layer.weight().data() -= 0.1 * layer.weight().grad();
        REQUIRE_NOTHROW(sum(layer(batch())).backward());
    }
}

TEST_CASE("data() refuses a matrix of another shape instead of writing past the tensor",
          "[lifetime]") {
    auto w = param(3, 2, 1);
    const Matrix<double> wrong = Matrix<double>::Ones(2, 3);
    REQUIRE_THROWS_MATCHES(w.data() = wrong, shape_error, MessageContains({"[3x2]", "[2x3]"}));
    REQUIRE_THROWS_AS(w.data() += wrong, shape_error);
    REQUIRE_THROWS_AS(w.assign(Matrix<double>::Zero(1, 1)), shape_error);
    w.assign(Matrix<double>::Constant(3, 2, 0.5));
    CHECK(w.value().isApproxToConstant(0.5));
}

TEST_CASE("a tensor of negative or overflowing size is a shape_error", "[lifetime]") {
    REQUIRE_THROWS_MATCHES(TensorD::zeros(-1, 3), shape_error,
                           MessageContains({"Tensor::zeros", "-1 x 3"}));
    REQUIRE_THROWS_MATCHES(TensorF::zeros(Index{1} << 40, Index{1} << 40), shape_error,
                           MessageContains("overflow"));
}

TEST_CASE("an empty batch passes through a monitored network without reaching Eigen's asserts",
          "[lifetime]") {
    auto net = small_net();
    diag::GradientMonitor<double> monitor(*net);
    loss_of(*net, 0).backward();
    REQUIRE(monitor.steps_seen() == 1);
    CHECK(monitor.last().layers()[0].output_grad_norm == 0.0);
}

TEST_CASE(
    "an op that reads a value it declared it does not read gets a clear error, not freed memory",
    "[lifetime]") {
    auto x = param(3, 3, 4);
    SECTION("on an interior input, which is released during the forward pass") {
        TensorD y = misdeclared_square(x * 2.0);  // the interior x * 2 has no handle left
        REQUIRE_THROWS_MATCHES(
            sum(y).backward(), graph_error,
            MessageContains({"BackwardReads declaration is wrong", "'mul_scalar'"}));
    }
    SECTION("on a leaf, which is never released, the same op computes the right gradient") {
        sum(misdeclared_square(x)).backward();
        CHECK(all_close(x.grad(), 2.0 * x.value()));
    }
}
