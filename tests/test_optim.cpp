// The optimisers: trajectories against torch.optim (float64, from tools/make_optim_reference.py
// in tests/data/optim_reference.json), checkpoints that restore exactly, checkpoints that are
// refused without harm, hyper-parameter validation, and PyTorch's rules for parameters
// without a gradient.
#include "support/reference.hpp"

#include <gradscope/optim/all.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

const nlohmann::json& optim_reference() { return reference_file("optim_reference.json"); }

Matrix<double> problem_matrix(const char* name) {
    return to_matrix(optim_reference().at("problem").at(name));
}

// The reference problem: loss = mean((x W^T + b - y)^2), with fresh copies of W and b.
template <class T>
struct Problem {
    Tensor<T> W = Tensor<T>::parameter(problem_matrix("W"));
    Tensor<T> b = Tensor<T>::parameter(problem_matrix("b"));
    Tensor<T> x = Tensor<T>::constant(problem_matrix("x"));
    Tensor<T> y = Tensor<T>::constant(problem_matrix("y"));

    [[nodiscard]] std::vector<Tensor<T>> params() const { return {W, b}; }
    [[nodiscard]] Tensor<T> loss() const { return mean(square(linear(x, W, b) - y)); }

    // One training step as torch does it: zero_grad, forward, backward, step.
    void train_step(Optimizer<T>& optimizer) const {
        optimizer.zero_grad();
        loss().backward();
        optimizer.step();
    }
};

using Factory = std::function<std::unique_ptr<Optimizer<double>>(std::vector<TensorD>)>;

template <class Opt, class Options>
Factory factory(Options options) {
    return [options](std::vector<TensorD> params) {
        return std::make_unique<Opt>(std::move(params), options);
    };
}

// The same cases as tools/make_optim_reference.py's CASES, in C++.
const std::vector<std::pair<std::string, Factory>>& reference_cases() {
    static const std::vector<std::pair<std::string, Factory>> cases = {
        {"sgd_momentum", factory<SGD<double>>(SGDOptions{.lr = 0.1, .momentum = 0.9})},
        {"sgd_nesterov_weight_decay",
         factory<SGD<double>>(
             SGDOptions{.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true})},
        {"adam", factory<Adam<double>>(AdamOptions{.lr = 0.01})},
        {"adamw", factory<AdamW<double>>(AdamWOptions{.lr = 0.01, .weight_decay = 0.1})},
        {"rmsprop_centered_momentum",
         factory<RMSprop<double>>(RMSpropOptions{.lr = 0.01, .momentum = 0.5, .centered = true})},
        {"sgd_plain", factory<SGD<double>>(SGDOptions{.lr = 0.1})},
        {"sgd_dampening_weight_decay",
         factory<SGD<double>>(
             SGDOptions{.lr = 0.05, .momentum = 0.8, .dampening = 0.3, .weight_decay = 0.02})},
        {"adam_amsgrad_l2",
         factory<Adam<double>>(
             AdamOptions{.lr = 0.3, .betas = {0.8, 0.5}, .weight_decay = 0.1, .amsgrad = true})},
        {"adamw_amsgrad",
         factory<AdamW<double>>(
             AdamWOptions{.lr = 0.3, .betas = {0.8, 0.5}, .weight_decay = 0.05, .amsgrad = true})},
        {"rmsprop_default", factory<RMSprop<double>>(RMSpropOptions{})},
        {"rmsprop_weight_decay", factory<RMSprop<double>>(RMSpropOptions{
                                     .lr = 0.02, .alpha = 0.9, .eps = 1e-6, .weight_decay = 0.1})},
    };
    return cases;
}

void check_trajectory(const std::string& name) {
    const auto& cases = reference_cases();
    const auto it =
        std::find_if(cases.begin(), cases.end(), [&](const auto& c) { return c.first == name; });
    REQUIRE(it != cases.end());
    const nlohmann::json& steps = optim_reference().at("optimizers").at(name).at("steps");
    Problem<double> problem;
    const auto optimizer = it->second(problem.params());
    for (std::size_t s = 0; s < steps.size(); ++s) {
        problem.train_step(*optimizer);
        INFO(name << ", after step " << s + 1);
        CHECK(all_close(problem.W.value(), to_matrix(steps[s].at("W")), 1e-10, 1e-12));
        CHECK(all_close(problem.b.value(), to_matrix(steps[s].at("b")), 1e-10, 1e-12));
    }
}

bool same_bits(const Matrix<double>& a, const Matrix<double>& b) {
    return a.rows() == b.rows() && a.cols() == b.cols() &&
           std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) ==
               0;
}

bool same_state(const OptimizerState<double>& a, const OptimizerState<double>& b) {
    if (a.step != b.step || a.scalars != b.scalars || a.tensors.size() != b.tensors.size()) {
        return false;
    }
    for (std::size_t i = 0; i < a.tensors.size(); ++i) {
        if (a.tensors[i].first != b.tensors[i].first) return false;
        if (!same_bits(a.tensors[i].second, b.tensors[i].second)) return false;
    }
    return true;
}

std::vector<std::string> tensor_names(const OptimizerState<double>& s) {
    std::vector<std::string> names;
    for (const auto& entry : s.tensors) names.push_back(entry.first);
    return names;
}

bool has_scalar(const OptimizerState<double>& s, const std::string& name) {
    return std::any_of(s.scalars.begin(), s.scalars.end(),
                       [&](const auto& entry) { return entry.first == name; });
}

double scalar(const OptimizerState<double>& s, const std::string& name) {
    for (const auto& [key, value] : s.scalars) {
        if (key == name) return value;
    }
    FAIL("no scalar " << name);
    return 0.0;
}

Matrix<double>& tensor(OptimizerState<double>& s, const std::string& name) {
    for (auto& [key, value] : s.tensors) {
        if (key == name) return value;
    }
    throw std::runtime_error("no tensor " + name);
}

}  // namespace

// --- PyTorch reference ------------------------------------------------------------------------

TEST_CASE("the reference problem is rebuilt exactly: same loss and gradients as PyTorch",
          "[optim][reference]") {
    const nlohmann::json& initial = optim_reference().at("initial");
    Problem<double> problem;
    auto loss = problem.loss();
    CHECK(loss.item() == Approx(initial.at("loss").get<double>()).epsilon(1e-12));
    loss.backward();
    CHECK(all_close(problem.W.grad(), to_matrix(initial.at("grads").at("W")), 1e-10, 1e-12));
    CHECK(all_close(problem.b.grad(), to_matrix(initial.at("grads").at("b")), 1e-10, 1e-12));
}

TEST_CASE("the reference file holds exactly the cases tested here", "[optim][reference]") {
    std::set<std::string> in_file;
    for (const auto& [name, value] : optim_reference().at("optimizers").items())
        in_file.insert(name);
    std::set<std::string> tested;
    for (const auto& entry : reference_cases()) tested.insert(entry.first);
    CHECK(in_file == tested);
}

TEST_CASE("SGD follows torch.optim.SGD: momentum, nesterov, dampening, weight decay",
          "[optim][reference][sgd]") {
    check_trajectory("sgd_plain");
    check_trajectory("sgd_momentum");
    check_trajectory("sgd_nesterov_weight_decay");
    check_trajectory("sgd_dampening_weight_decay");
}

TEST_CASE("Adam follows torch.optim.Adam, with L2 weight decay and AMSGrad",
          "[optim][reference][adam]") {
    check_trajectory("adam");
    check_trajectory("adam_amsgrad_l2");
}

TEST_CASE("AdamW follows torch.optim.AdamW: decoupled weight decay", "[optim][reference][adam]") {
    check_trajectory("adamw");
    check_trajectory("adamw_amsgrad");
}

TEST_CASE("RMSprop follows torch.optim.RMSprop, centered and with momentum",
          "[optim][reference][rmsprop]") {
    check_trajectory("rmsprop_default");
    check_trajectory("rmsprop_weight_decay");
    check_trajectory("rmsprop_centered_momentum");
}

TEST_CASE("every optimiser also runs in float and stays near the double trajectory",
          "[optim][float]") {
    const auto run = [](auto make_float, const std::string& name) {
        Problem<float> problem;
        auto optimizer = make_float(problem.params());
        const nlohmann::json& steps = optim_reference().at("optimizers").at(name).at("steps");
        for (std::size_t s = 0; s < steps.size(); ++s) {
            problem.train_step(optimizer);
            INFO(name << " in float, after step " << s + 1);
            CHECK(all_close(problem.W.value(), to_matrix(steps[s].at("W")), 1e-4, 1e-5));
            CHECK(all_close(problem.b.value(), to_matrix(steps[s].at("b")), 1e-4, 1e-5));
        }
    };
    run(
        [](std::vector<TensorF> p) {
            return SGD<float>(std::move(p),
                              {.lr = 0.1, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
        },
        "sgd_nesterov_weight_decay");
    run([](std::vector<TensorF> p) { return Adam<float>(std::move(p), {.lr = 0.01}); }, "adam");
    run(
        [](std::vector<TensorF> p) {
            return AdamW<float>(std::move(p), {.lr = 0.01, .weight_decay = 0.1});
        },
        "adamw");
    run(
        [](std::vector<TensorF> p) {
            return RMSprop<float>(std::move(p), {.lr = 0.01, .momentum = 0.5, .centered = true});
        },
        "rmsprop_centered_momentum");
}

// --- Checkpoints --------------------------------------------------------------------------------

TEST_CASE("state() names buffers '<buffer>.<parameter>' and lists hyper-parameters and steps",
          "[optim][state]") {
    Problem<double> problem;
    Adam<double> adam(problem.params(), {.lr = 0.02, .amsgrad = true});
    CHECK(adam.state().tensors.empty());
    CHECK(adam.state().step == 0);
    problem.train_step(adam);
    problem.train_step(adam);
    const OptimizerState<double> state = adam.state();
    CHECK(state.step == 2);
    CHECK(tensor_names(state) == std::vector<std::string>{"exp_avg.0", "exp_avg_sq.0",
                                                          "max_exp_avg_sq.0", "exp_avg.1",
                                                          "exp_avg_sq.1", "max_exp_avg_sq.1"});
    CHECK(scalar(state, "lr") == 0.02);
    CHECK(scalar(state, "beta1") == 0.9);
    CHECK(scalar(state, "beta2") == 0.999);
    CHECK(scalar(state, "eps") == 1e-8);
    CHECK(scalar(state, "weight_decay") == 0.0);
    CHECK(scalar(state, "amsgrad") == 1.0);
    CHECK(scalar(state, "step.0") == 2.0);
    CHECK(scalar(state, "step.1") == 2.0);

    SGD<double> plain(problem.params(), {.lr = 0.1});
    problem.train_step(plain);
    CHECK(plain.state().tensors.empty());  // no momentum, no buffer (PyTorch keeps None)
    CHECK(scalar(plain.state(), "step.0") == 1.0);

    RMSprop<double> rms(problem.params(), {.momentum = 0.5, .centered = true});
    problem.train_step(rms);
    CHECK(tensor_names(rms.state()) == std::vector<std::string>{"square_avg.0", "momentum_buffer.0",
                                                                "grad_avg.0", "square_avg.1",
                                                                "momentum_buffer.1", "grad_avg.1"});
}

namespace {

// Trains `original` two steps, restores its state into an optimiser built with other options
// over copies of the parameters, then checks both take the same two further steps, bit for bit.
template <class Opt, class Options>
void check_round_trip(Options trained_with, Options restored_into) {
    Problem<double> a;
    Opt original(a.params(), trained_with);
    a.train_step(original);
    a.train_step(original);

    Problem<double> b;
    b.W.data() = a.W.value();
    b.b.data() = a.b.value();
    Opt restored(b.params(), restored_into);
    restored.load_state(original.state());
    CHECK(same_state(restored.state(), original.state()));
    CHECK(restored.step_count() == 2);
    CHECK(restored.lr() == original.lr());

    for (int s = 0; s < 2; ++s) {
        a.train_step(original);
        b.train_step(restored);
    }
    CHECK(same_bits(a.W.value(), b.W.value()));
    CHECK(same_bits(a.b.value(), b.b.value()));
    CHECK(same_state(restored.state(), original.state()));
}

}  // namespace

TEST_CASE("an optimiser restored from another's state continues identically", "[optim][state]") {
    SECTION("SGD") {
        check_round_trip<SGD<double>>(
            SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 0.01, .nesterov = true},
            SGDOptions{.lr = 1.0});
    }
    SECTION("Adam") {
        check_round_trip<Adam<double>>(
            AdamOptions{.lr = 0.1, .betas = {0.8, 0.5}, .weight_decay = 0.1, .amsgrad = true},
            AdamOptions{});
    }
    SECTION("AdamW") {
        check_round_trip<AdamW<double>>(AdamWOptions{.lr = 0.05, .weight_decay = 0.2},
                                        AdamWOptions{.lr = 0.5, .amsgrad = true});
    }
    SECTION("RMSprop") {
        check_round_trip<RMSprop<double>>(
            RMSpropOptions{.lr = 0.02, .momentum = 0.5, .centered = true},
            RMSpropOptions{.alpha = 0.5});
    }
}

TEST_CASE("load_state accepts a state with only some hyper-parameters", "[optim][state]") {
    Problem<double> problem;
    SGD<double> sgd(problem.params(), {.lr = 0.1, .momentum = 0.9});
    OptimizerState<double> partial;
    partial.scalars = {{"lr", 0.25}};
    sgd.load_state(partial);
    CHECK(sgd.lr() == 0.25);
    CHECK(sgd.options().momentum == 0.9);
}

TEST_CASE("load_state refuses a bad state, naming the entry, and changes nothing",
          "[optim][state][errors]") {
    Problem<double> problem;
    Adam<double> adam(problem.params(), {.lr = 0.05});
    problem.train_step(adam);
    problem.train_step(adam);
    const OptimizerState<double> good = adam.state();

    const auto refused = [&] {
        INFO("the optimiser must be unchanged after a refused load_state");
        CHECK(same_state(adam.state(), good));
    };

    SECTION("a buffer of the wrong shape") {
        OptimizerState<double> bad = good;
        tensor(bad, "exp_avg_sq.1") = Matrix<double>::Zero(2, 2);
        CHECK_THROWS_AS(adam.load_state(bad), shape_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("exp_avg_sq.1") &&
                                                    Catch::Contains("[2x2]") &&
                                                    Catch::Contains("[1x3]"));
        refused();
    }
    SECTION("an unknown buffer name") {
        OptimizerState<double> bad = good;
        bad.tensors.emplace_back("momentum_buffer.0", Matrix<double>::Zero(3, 4));
        CHECK_THROWS_AS(adam.load_state(bad), value_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("momentum_buffer.0"));
        refused();
    }
    SECTION("a parameter index out of range") {
        OptimizerState<double> bad = good;
        bad.tensors.emplace_back("exp_avg.2", Matrix<double>::Zero(3, 4));
        CHECK_THROWS_AS(adam.load_state(bad), value_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("exp_avg.2"));
        refused();
    }
    SECTION("an unknown scalar") {
        OptimizerState<double> bad = good;
        bad.scalars.emplace_back("momentum", 0.9);
        CHECK_THROWS_AS(adam.load_state(bad), value_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("'momentum'"));
        refused();
    }
    SECTION("a missing buffer") {
        OptimizerState<double> bad = good;
        std::erase_if(bad.tensors, [](const auto& e) { return e.first == "exp_avg_sq.0"; });
        CHECK_THROWS_AS(adam.load_state(bad), value_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("exp_avg_sq.0"));
        refused();
    }
    SECTION("buffers without a step count") {
        OptimizerState<double> bad = good;
        std::erase_if(bad.scalars, [](const auto& e) { return e.first == "step.1"; });
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("step.1"));
        refused();
    }
    SECTION("a flag switched on without the buffers it needs") {
        OptimizerState<double> bad = good;
        for (auto& [key, value] : bad.scalars) {
            if (key == "amsgrad") value = 1.0;
        }
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("max_exp_avg_sq.0"));
        refused();
    }
    SECTION("a duplicated entry") {
        OptimizerState<double> bad = good;
        bad.tensors.push_back(bad.tensors.front());
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("twice"));
        refused();
    }
    SECTION("an invalid hyper-parameter") {
        OptimizerState<double> bad = good;
        for (auto& [key, value] : bad.scalars) {
            if (key == "beta2") value = 1.5;
        }
        CHECK_THROWS_AS(adam.load_state(bad), value_error);
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("beta2"));
        refused();
    }
    SECTION("a flag that is neither 0 nor 1") {
        OptimizerState<double> bad = good;
        for (auto& [key, value] : bad.scalars) {
            if (key == "amsgrad") value = 0.5;
        }
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("amsgrad"));
        refused();
    }
    SECTION("a step count that is not a whole positive number") {
        OptimizerState<double> bad = good;
        for (auto& [key, value] : bad.scalars) {
            if (key == "step.0") value = 1.5;
        }
        CHECK_THROWS_WITH(adam.load_state(bad), Catch::Contains("step.0"));
        OptimizerState<double> negative = good;
        negative.step = -1;
        CHECK_THROWS_AS(adam.load_state(negative), value_error);
        refused();
    }
    SECTION("another optimiser's state") {
        SGD<double> sgd(problem.params(), {.lr = 0.1, .momentum = 0.9});
        problem.train_step(sgd);
        CHECK_THROWS_AS(adam.load_state(sgd.state()), value_error);
        refused();
    }

    // And after all that, it trains as an untouched twin does.
    Problem<double> twin_problem;
    twin_problem.W.data() = problem.W.value();
    twin_problem.b.data() = problem.b.value();
    Adam<double> twin(twin_problem.params(), {});
    twin.load_state(good);
    problem.train_step(adam);
    twin_problem.train_step(twin);
    CHECK(same_bits(problem.W.value(), twin_problem.W.value()));
}

// --- Construction and hyper-parameters -------------------------------------------------------

TEST_CASE("hyper-parameters out of range are refused with a clear message", "[optim][errors]") {
    Problem<double> p;
    const auto params = p.params();
    CHECK_THROWS_AS(SGD<double>(params, {.lr = -0.1}), value_error);
    CHECK_THROWS_WITH(SGD<double>(params, {.lr = -0.1}),
                      Catch::Contains("lr") && Catch::Contains("-0.1"));
    CHECK_THROWS_WITH(SGD<double>(params, {.momentum = 1.0}),
                      Catch::Contains("momentum") && Catch::Contains("[0, 1)"));
    CHECK_THROWS_WITH(SGD<double>(params, {.momentum = -0.5}), Catch::Contains("momentum"));
    CHECK_THROWS_WITH(SGD<double>(params, {.weight_decay = -1.0}), Catch::Contains("weight_decay"));
    CHECK_THROWS_WITH(SGD<double>(params, {.nesterov = true}), Catch::Contains("nesterov"));
    CHECK_THROWS_WITH(SGD<double>(params, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                      Catch::Contains("dampening"));
    CHECK_NOTHROW(SGD<double>(params, {.lr = 0.1, .momentum = 0.9, .nesterov = true}));

    CHECK_THROWS_WITH(Adam<double>(params, {.betas = {1.0, 0.999}}), Catch::Contains("beta1"));
    CHECK_THROWS_WITH(Adam<double>(params, {.betas = {0.9, -0.1}}), Catch::Contains("beta2"));
    CHECK_THROWS_WITH(Adam<double>(params, {.eps = -1e-8}), Catch::Contains("eps"));
    CHECK_THROWS_WITH(Adam<double>(params, {.weight_decay = -0.1}),
                      Catch::Contains("weight_decay"));
    CHECK_THROWS_WITH(AdamW<double>(params, {.lr = std::nan("")}),
                      Catch::Contains("AdamW") && Catch::Contains("lr"));
    CHECK_THROWS_WITH(RMSprop<double>(params, {.alpha = 1.5}), Catch::Contains("alpha"));
    CHECK_THROWS_WITH(RMSprop<double>(params, {.momentum = 1.0}), Catch::Contains("momentum"));
    CHECK_THROWS_WITH(RMSprop<double>(params, {.eps = -1.0}), Catch::Contains("eps"));
}

TEST_CASE("defaults match PyTorch's", "[optim]") {
    CHECK(AdamOptions{}.lr == 1e-3);
    CHECK(AdamOptions{}.betas.beta1 == 0.9);
    CHECK(AdamOptions{}.betas.beta2 == 0.999);
    CHECK(AdamOptions{}.eps == 1e-8);
    CHECK(AdamOptions{}.weight_decay == 0.0);
    CHECK(AdamWOptions{}.weight_decay == 0.01);
    CHECK(RMSpropOptions{}.lr == 0.01);
    CHECK(RMSpropOptions{}.alpha == 0.99);
    CHECK(RMSpropOptions{}.eps == 1e-8);
    CHECK(SGDOptions{}.momentum == 0.0);
}

TEST_CASE("the parameter list is checked when the optimiser is made", "[optim][errors]") {
    CHECK_THROWS_WITH(SGD<double>({}, {.lr = 0.1}), Catch::Contains("empty"));
    const auto w = param(2, 2, 1);
    const auto frozen = TensorD::constant(normal(2, 2, 2));
    CHECK_THROWS_AS(Adam<double>({w, frozen}), value_error);
    CHECK_THROWS_WITH(Adam<double>({w, frozen}),
                      Catch::Contains("parameter 1") && Catch::Contains("does not require grad"));
    CHECK_THROWS_WITH(Adam<double>({w, w * 2.0}),
                      Catch::Contains("parameter 1") && Catch::Contains("not a leaf"));
    CHECK_THROWS_WITH(RMSprop<double>({w, w}),
                      Catch::Contains("parameter 1") && Catch::Contains("parameter 0"));
    CHECK_THROWS_WITH(SGD<double>({TensorD()}), Catch::Contains("parameter 0"));
}

TEST_CASE("the learning rate can be read and set between steps", "[optim]") {
    Problem<double> problem;
    SGD<double> sgd(problem.params(), {.lr = 0.1});
    CHECK(sgd.lr() == 0.1);
    sgd.set_lr(0.0);
    CHECK(sgd.lr() == 0.0);
    CHECK(scalar(sgd.state(), "lr") == 0.0);
    const Matrix<double> before = problem.W.value();
    problem.train_step(sgd);
    CHECK(same_bits(problem.W.value(), before));  // lr 0: nothing moves
    CHECK_THROWS_AS(sgd.set_lr(-1.0), value_error);
    CHECK(sgd.lr() == 0.0);

    // Through the base class, as a schedule would.
    Adam<double> adam(problem.params());
    Optimizer<double>& base = adam;
    base.set_lr(0.5);
    CHECK(adam.options().lr == 0.5);
}

TEST_CASE("zero_grad zeroes every gradient and keeps its buffer", "[optim]") {
    Problem<double> problem;
    Adam<double> adam(problem.params());
    problem.loss().backward();
    REQUIRE(problem.W.grad().norm() > 0.0);
    const double* buffer = problem.W.grad().data();
    adam.zero_grad();
    CHECK(problem.W.has_grad());
    CHECK(problem.b.has_grad());
    CHECK(problem.W.grad().isZero(0.0));
    CHECK(problem.b.grad().isZero(0.0));
    CHECK(problem.W.grad().data() == buffer);
}

TEST_CASE("the step counter counts every call to step", "[optim]") {
    Problem<double> problem;
    RMSprop<double> rms(problem.params());
    CHECK(rms.step_count() == 0);
    rms.step();  // no gradients yet: nothing moves, but the call counts
    CHECK(rms.step_count() == 1);
    CHECK(rms.state().tensors.empty());
    problem.train_step(rms);
    CHECK(rms.step_count() == 2);
    CHECK(scalar(rms.state(), "step.0") == 1.0);
}

TEST_CASE("parameters without a gradient are skipped and get state only once they have one",
          "[optim]") {
    Problem<double> problem;
    auto unused = param(2, 3, 11);
    const Matrix<double> unused_before = unused.value();
    Adam<double> adam({problem.W, problem.b, unused}, {.lr = 0.1});
    problem.train_step(adam);
    problem.train_step(adam);
    CHECK(same_bits(unused.value(), unused_before));
    const OptimizerState<double> state = adam.state();
    REQUIRE(has_scalar(state, "step.2"));  // listed, so that a state for other parameters shows
    CHECK(scalar(state, "step.2") == 0.0);
    for (const auto& name : tensor_names(state)) CHECK(name.back() != '2');

    // Its first update is Adam's first step (bias correction for t = 1), as in PyTorch where
    // the parameter's own step counter starts when it first has a gradient.
    auto twin = TensorD::parameter(unused_before);
    Adam<double> fresh({twin}, {.lr = 0.1});
    sum(square(unused)).backward();
    sum(square(twin)).backward();
    adam.step();
    fresh.step();
    CHECK(same_bits(unused.value(), twin.value()));
    CHECK(scalar(adam.state(), "step.2") == 1.0);
    CHECK(scalar(adam.state(), "step.0") == 3.0);
}

TEST_CASE("SGD momentum starts from the first gradient a parameter receives", "[optim][sgd]") {
    // PyTorch: buf = g on a parameter's first step, so after one step SGD with momentum is
    // plain SGD.
    auto with_momentum = param(3, 3, 12);
    auto without = TensorD::parameter(with_momentum.value());
    SGD<double> a({with_momentum}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
    SGD<double> b({without}, {.lr = 0.1});
    sum(square(with_momentum)).backward();
    sum(square(without)).backward();
    a.step();
    b.step();
    CHECK(same_bits(with_momentum.value(), without.value()));
}

// --- Hostile options: one test per class, each naming the option and the value ---------------

namespace {

constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();
constexpr double inf = std::numeric_limits<double>::infinity();

std::vector<TensorD> two_params() { return {param(3, 4, 31), param(1, 3, 32)}; }

}  // namespace

TEST_CASE("a learning rate that is NaN, infinite or negative is refused by every optimiser",
          "[optim][errors][hostile]") {
    const auto p = two_params();
    for (const double lr : {not_a_number, inf, -inf, -0.1}) {
        const std::string got = "got " + detail::number_text(lr);
        INFO("lr = " << lr);
        REQUIRE_THROWS_MATCHES(SGD<double>(p, {.lr = lr}), value_error,
                               MessageContains({"SGD: lr", got}));
        REQUIRE_THROWS_MATCHES(Adam<double>(p, {.lr = lr}), value_error,
                               MessageContains({"Adam: lr", got}));
        REQUIRE_THROWS_MATCHES(AdamW<double>(p, {.lr = lr}), value_error,
                               MessageContains({"AdamW: lr", got}));
        REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.lr = lr}), value_error,
                               MessageContains({"RMSprop: lr", got}));

        // set_lr checks as the constructor does, and a refused value changes nothing.
        Adam<double> adam(p, {.lr = 0.01});
        REQUIRE_THROWS_MATCHES(adam.set_lr(lr), value_error, MessageContains("lr"));
        CHECK(adam.lr() == 0.01);
    }
}

TEST_CASE("a momentum below 0, at or above 1, or NaN is refused", "[optim][errors][hostile]") {
    const auto p = two_params();
    for (const double momentum : {not_a_number, -0.1, 1.0, 2.0, inf}) {
        INFO("momentum = " << momentum);
        REQUIRE_THROWS_MATCHES(SGD<double>(p, {.momentum = momentum}), value_error,
                               MessageContains("SGD: momentum must be in [0, 1)"));
        REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.momentum = momentum}), value_error,
                               MessageContains("RMSprop: momentum must be in [0, 1)"));
    }
}

TEST_CASE("Adam's betas below 0, at or above 1, or NaN are refused", "[optim][errors][hostile]") {
    const auto p = two_params();
    for (const double beta : {not_a_number, -0.5, 1.0, 1.5}) {
        INFO("beta = " << beta);
        REQUIRE_THROWS_MATCHES(Adam<double>(p, {.betas = {beta, 0.999}}), value_error,
                               MessageContains({"Adam: beta1", "[0, 1)"}));
        REQUIRE_THROWS_MATCHES(AdamW<double>(p, {.betas = {0.9, beta}}), value_error,
                               MessageContains({"AdamW: beta2", "[0, 1)"}));
    }
}

TEST_CASE("a weight decay that is negative, NaN or infinite is refused",
          "[optim][errors][hostile]") {
    const auto p = two_params();
    for (const double decay : {-1e-4, not_a_number, inf}) {
        INFO("weight_decay = " << decay);
        REQUIRE_THROWS_MATCHES(SGD<double>(p, {.weight_decay = decay}), value_error,
                               MessageContains("SGD: weight_decay"));
        REQUIRE_THROWS_MATCHES(Adam<double>(p, {.weight_decay = decay}), value_error,
                               MessageContains("Adam: weight_decay"));
        REQUIRE_THROWS_MATCHES(AdamW<double>(p, {.weight_decay = decay}), value_error,
                               MessageContains("AdamW: weight_decay"));
        REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.weight_decay = decay}), value_error,
                               MessageContains("RMSprop: weight_decay"));
    }
}

TEST_CASE("an eps of 0, below 0 or NaN is refused: zero gradients would make 0/0",
          "[optim][errors][hostile]") {
    const auto p = two_params();
    for (const double eps : {0.0, -1e-8, not_a_number, inf}) {
        const std::string got = "got " + detail::number_text(eps);
        INFO("eps = " << eps);
        REQUIRE_THROWS_MATCHES(Adam<double>(p, {.eps = eps}), value_error,
                               MessageContains({"Adam: eps must be finite and positive", got}));
        REQUIRE_THROWS_MATCHES(AdamW<double>(p, {.eps = eps}), value_error,
                               MessageContains({"AdamW: eps", got}));
        REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.eps = eps}), value_error,
                               MessageContains({"RMSprop: eps", got}));
    }
    // The smallest accepted eps keeps a step on zero gradients finite.
    auto w = param(2, 2, 33);
    Adam<double> adam({w}, {.eps = std::numeric_limits<double>::denorm_min()});
    w.zero_grad();
    sum(w * 0.0).backward();
    adam.step();
    CHECK(w.value().allFinite());
}

TEST_CASE("SGD's dampening and nesterov, and RMSprop's alpha, are checked",
          "[optim][errors][hostile]") {
    const auto p = two_params();
    REQUIRE_THROWS_MATCHES(SGD<double>(p, {.momentum = 0.9, .dampening = not_a_number}),
                           value_error, MessageContains("SGD: dampening must be in [0, 1]"));
    REQUIRE_THROWS_MATCHES(SGD<double>(p, {.momentum = 0.9, .dampening = 1.5}), value_error,
                           MessageContains({"dampening", "1.5"}));
    REQUIRE_THROWS_MATCHES(SGD<double>(p, {.nesterov = true}), value_error,
                           MessageContains("nesterov needs momentum > 0"));
    REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.alpha = not_a_number}), value_error,
                           MessageContains("RMSprop: alpha must be in [0, 1]"));
    REQUIRE_THROWS_MATCHES(RMSprop<double>(p, {.alpha = -0.1}), value_error,
                           MessageContains({"alpha", "-0.1"}));
}

TEST_CASE("AdamW refuses lr * weight_decay above 1, which would flip the weights' sign",
          "[optim][errors][hostile]") {
    const auto p = two_params();
    REQUIRE_THROWS_MATCHES(AdamW<double>(p, {.lr = 10.0, .weight_decay = 0.5}), value_error,
                           MessageContains({"AdamW: lr * weight_decay must be <= 1", "= 5"}));
    AdamW<double> adamw(p, {.lr = 1.0, .weight_decay = 1.0});  // shrinks to 0: allowed
    REQUIRE_THROWS_MATCHES(adamw.set_lr(2.0), value_error, MessageContains("lr * weight_decay"));
    CHECK(adamw.lr() == 1.0);
    // Adam's weight decay is an L2 term, not a shrink factor: no such bound.
    CHECK_NOTHROW(Adam<double>(p, {.lr = 10.0, .weight_decay = 0.5}));
}

TEST_CASE("an option a float optimiser cannot hold is refused, naming the type",
          "[optim][errors][hostile]") {
    const std::vector<TensorF> p{TensorF::parameter(Matrix<float>::Ones(2, 2))};
    REQUIRE_THROWS_MATCHES(Adam<float>(p, {.eps = 1e-50}), value_error,
                           MessageContains({"Adam: eps", "round to 0 in float"}));
    REQUIRE_THROWS_MATCHES(RMSprop<float>(p, {.eps = 1e-60}), value_error,
                           MessageContains({"RMSprop: eps", "float"}));
    REQUIRE_THROWS_MATCHES(SGD<float>(p, {.lr = 1e300}), value_error,
                           MessageContains({"SGD: lr", "within float's range"}));
    CHECK_NOTHROW(Adam<double>({TensorD::parameter(Matrix<double>::Ones(2, 2))}, {.eps = 1e-50}));
}

TEST_CASE("parameter lists are checked as torch.optim checks them", "[optim][errors][hostile]") {
    const auto w = param(2, 2, 34);
    const auto b = param(1, 2, 35);
    REQUIRE_THROWS_MATCHES(SGD<double>(std::vector<TensorD>{}), value_error,
                           MessageContains("SGD: optimizer got an empty parameter list"));
    REQUIRE_THROWS_MATCHES(Adam<double>(Module<double>::Named<TensorD>{}), value_error,
                           MessageContains("empty parameter list"));
    REQUIRE_THROWS_MATCHES(Adam<double>({w, b, w}), value_error,
                           MessageContains("parameter 2 is the same tensor as parameter 0"));
    REQUIRE_THROWS_MATCHES(
        SGD<double>(Module<double>::Named<TensorD>{{"w", w}, {"alias", w}}), value_error,
        MessageContains("parameter 'alias' is the same tensor as parameter 'w'"));
    REQUIRE_THROWS_MATCHES(RMSprop<double>(Module<double>::Named<TensorD>{{"w", w}, {"w", b}}),
                           value_error,
                           MessageContains("parameter 'w' has the same name as parameter 'w'"));
    REQUIRE_THROWS_MATCHES(SGD<double>(Module<double>::Named<TensorD>{{"", w}}), value_error,
                           MessageContains("has an empty name"));
    const auto frozen = TensorD::constant(normal(2, 2, 36));
    REQUIRE_THROWS_MATCHES(
        AdamW<double>(Module<double>::Named<TensorD>{{"w", w}, {"frozen", frozen}}), value_error,
        MessageContains("parameter 'frozen' does not require grad"));
    REQUIRE_THROWS_MATCHES(Adam<double>({w, w * 2.0}), value_error,
                           MessageContains("parameter 1 is not a leaf"));
    REQUIRE_THROWS_MATCHES(SGD<double>({w, TensorD()}), value_error,
                           MessageContains("parameter 1 is an empty Tensor handle"));
}

TEST_CASE("a state for other parameters is refused, naming the parameter, and changes nothing",
          "[optim][state][errors][hostile]") {
    const auto w = param(3, 4, 37);
    const auto b = param(1, 3, 38);
    const auto extra = param(2, 2, 39);
    const auto loss = [&] { return sum(square(w)) + sum(square(b)) + sum(square(extra)); };

    SECTION("by position: a state for three parameters into two, and back") {
        Adam<double> three({w, b, extra});
        loss().backward();
        three.step();
        Adam<double> two({w, b});
        const OptimizerState<double> before = two.state();
        REQUIRE_THROWS_MATCHES(two.load_state(three.state()), value_error,
                               MessageContains({"'step.2'", "it has 2 parameters, 0 to 1"}));
        CHECK(same_state(two.state(), before));
        two.step();
        REQUIRE_THROWS_MATCHES(three.load_state(two.state()), value_error,
                               MessageContains("no 'step.2' for parameter 2"));
    }
    SECTION("by name: an extra name, a missing name, a buffer of another parameter's shape") {
        using Named = Module<double>::Named<TensorD>;
        Adam<double> saved(Named{{"w", w}, {"b", b}});
        loss().backward();
        saved.step();
        const OptimizerState<double> state = saved.state();

        Adam<double> renamed(Named{{"w", w}, {"bias", b}});
        REQUIRE_THROWS_MATCHES(
            renamed.load_state(state), value_error,
            MessageContains({"'step.b' is for a parameter 'b'", "its parameters are 'w', 'bias'"}));
        CHECK(renamed.state().tensors.empty());

        Adam<double> more(Named{{"w", w}, {"b", b}, {"extra", extra}});
        REQUIRE_THROWS_MATCHES(more.load_state(state), value_error,
                               MessageContains("no 'step.extra' for parameter 'extra'"));

        Adam<double> swapped_shapes(Named{{"b", w}, {"w", b}});
        REQUIRE_THROWS_MATCHES(swapped_shapes.load_state(state), shape_error,
                               MessageContains({"'exp_avg.w' is [3x4]", "parameter 'w' is [1x3]"}));
    }
    SECTION("keys given to state() and load_state() are checked") {
        Adam<double> adam({w, b});
        REQUIRE_THROWS_MATCHES(adam.state({"w"}), value_error,
                               MessageContains("1 keys for 2 parameters"));
        REQUIRE_THROWS_MATCHES(adam.load_state(adam.state(), {"w", "w"}), value_error,
                               MessageContains("the same key 'w'"));
        REQUIRE_THROWS_MATCHES(adam.load_state(adam.state(), {"w", ""}), value_error,
                               MessageContains("is empty"));
    }
}

// --- State by name ---------------------------------------------------------------------------

TEST_CASE("state saved by name restores into parameters registered in another order",
          "[optim][state]") {
    using Named = Module<double>::Named<TensorD>;
    Problem<double> a;
    Adam<double> original(Named{{"weight", a.W}, {"bias", a.b}}, {.lr = 0.05, .amsgrad = true});
    a.train_step(original);
    a.train_step(original);
    const OptimizerState<double> state = original.state();
    CHECK(tensor_names(state) ==
          std::vector<std::string>{"exp_avg.weight", "exp_avg_sq.weight", "max_exp_avg_sq.weight",
                                   "exp_avg.bias", "exp_avg_sq.bias", "max_exp_avg_sq.bias"});
    CHECK(scalar(state, "step.bias") == 2.0);
    CHECK(original.param_keys() == std::vector<std::string>{"weight", "bias"});

    Problem<double> b;
    b.W.data() = a.W.value();
    b.b.data() = a.b.value();
    Adam<double> reordered(Named{{"bias", b.b}, {"weight", b.W}});
    reordered.load_state(state);
    CHECK(reordered.step_count() == 2);
    for (int s = 0; s < 3; ++s) {
        a.train_step(original);
        b.train_step(reordered);
    }
    CHECK(same_bits(a.W.value(), b.W.value()));
    CHECK(same_bits(a.b.value(), b.b.value()));

    // The same by explicit keys, for an optimiser made without names.
    Problem<double> c;
    c.W.data() = b.W.value();
    c.b.data() = b.b.value();
    Adam<double> positional({c.b, c.W});
    positional.load_state(reordered.state(), {"bias", "weight"});
    CHECK(same_state(positional.state({"bias", "weight"}), reordered.state()));
    b.train_step(reordered);
    c.train_step(positional);
    CHECK(same_bits(b.W.value(), c.W.value()));
}

TEST_CASE("a state keyed by position, as written before names were kept, loads by position",
          "[optim][state]") {
    Problem<double> a;
    SGD<double> positional(a.params(), {.lr = 0.1, .momentum = 0.9});
    a.train_step(positional);
    OptimizerState<double> old = positional.state();
    // The old format listed no step count for a parameter never updated; here all were.
    CHECK(tensor_names(old) == std::vector<std::string>{"momentum_buffer.0", "momentum_buffer.1"});

    Problem<double> b;
    b.W.data() = a.W.value();
    b.b.data() = a.b.value();
    SGD<double> named(Module<double>::Named<TensorD>{{"W", b.W}, {"b", b.b}});
    named.load_state(old);
    CHECK(tensor_names(named.state()) ==
          std::vector<std::string>{"momentum_buffer.W", "momentum_buffer.b"});
    a.train_step(positional);
    b.train_step(named);
    CHECK(same_bits(a.W.value(), b.W.value()));
}

TEST_CASE("centered RMSprop stays finite when the gradient is constant for long",
          "[optim][rmsprop][hostile]") {
    // With a constant gradient the running variance s - a^2 tends to 0 and rounding can take it
    // just below; the square root must not turn that into NaN.
    auto w = TensorD::parameter(normal(8, 8, 40));
    const auto direction = TensorD::constant(normal(8, 8, 41));
    RMSprop<double> rms({w}, {.lr = 1e-3, .alpha = 0.5, .centered = true});
    for (int s = 0; s < 300; ++s) {
        rms.zero_grad();
        sum(w * direction).backward();
        rms.step();
    }
    CHECK(w.value().allFinite());
}

// ---- Parameter groups ----

namespace {

// What a group sets, from the reference file's PyTorch keywords.
GroupOptions group_options_of(const nlohmann::json& j) {
    GroupOptions o;
    const auto number = [&](const char* key, std::optional<double>& field) {
        if (j.contains(key)) field = j.at(key).get<double>();
    };
    const auto flag = [&](const char* key, std::optional<bool>& field) {
        if (j.contains(key)) field = j.at(key).get<bool>();
    };
    number("lr", o.lr);
    number("weight_decay", o.weight_decay);
    number("momentum", o.momentum);
    number("dampening", o.dampening);
    flag("nesterov", o.nesterov);
    if (j.contains("betas")) {
        o.betas = AdamBetas{j.at("betas").at(0).get<double>(), j.at("betas").at(1).get<double>()};
    }
    number("eps", o.eps);
    flag("amsgrad", o.amsgrad);
    number("alpha", o.alpha);
    flag("centered", o.centered);
    return o;
}

// The optimiser a groups case names, with its defaults given as the optimiser's options (not
// as group 0's), so that group 0 inherits them and group 1 overrides them.
std::unique_ptr<Optimizer<double>> grouped_optimizer(const nlohmann::json& c,
                                                     std::vector<ParamGroup<double>> groups) {
    const nlohmann::json& d = c.at("options");
    const auto number = [&](const char* key, double fallback) {
        return d.contains(key) ? d.at(key).get<double>() : fallback;
    };
    const std::string kind = c.at("class").get<std::string>();
    if (kind == "SGD") {
        const SGDOptions o{};
        return std::make_unique<SGD<double>>(
            std::move(groups), SGDOptions{.lr = number("lr", o.lr),
                                          .momentum = number("momentum", o.momentum),
                                          .dampening = number("dampening", o.dampening),
                                          .weight_decay = number("weight_decay", o.weight_decay)});
    }
    if (kind == "RMSprop") {
        const RMSpropOptions o{};
        return std::make_unique<RMSprop<double>>(
            std::move(groups),
            RMSpropOptions{.lr = number("lr", o.lr),
                           .alpha = number("alpha", o.alpha),
                           .weight_decay = number("weight_decay", o.weight_decay),
                           .momentum = number("momentum", o.momentum)});
    }
    if (kind == "Adam") {
        const AdamOptions o{};
        return std::make_unique<Adam<double>>(
            std::move(groups), AdamOptions{.lr = number("lr", o.lr),
                                           .weight_decay = number("weight_decay", o.weight_decay)});
    }
    REQUIRE(kind == "AdamW");
    const AdamWOptions o{};
    return std::make_unique<AdamW<double>>(
        std::move(groups), AdamWOptions{.lr = number("lr", o.lr),
                                        .weight_decay = number("weight_decay", o.weight_decay)});
}

}  // namespace

// Same arithmetic as PyTorch in double, per group: 1e-10 as for the single-group trajectories.
// Group 1's options all change b's path (another lr, momentum, betas, AMSGrad, decay), so b
// stepped with group 0's options, or W with group 1's, misses by far more.
TEST_CASE("two parameter groups follow torch.optim for every optimiser, and StepLR scales each",
          "[optim][reference][groups]") {
    const nlohmann::json& cases = optim_reference().at("groups");
    REQUIRE(cases.size() == 5);
    for (const auto& [name, c] : cases.items()) {
        Problem<double> problem;
        auto optimizer = grouped_optimizer(
            c, {{{problem.W}, {}}, {{problem.b}, group_options_of(c.at("group1"))}});
        REQUIRE(optimizer->group_count() == 2);
        std::unique_ptr<StepLR> scheduler;
        if (c.contains("scheduler")) {
            scheduler = std::make_unique<StepLR>(
                *optimizer, StepLROptions{.step_size = c.at("scheduler").at("step_size").get<int>(),
                                          .gamma = c.at("scheduler").at("gamma").get<double>()});
        }
        const nlohmann::json& steps = c.at("steps");
        for (std::size_t s = 0; s < steps.size(); ++s) {
            problem.train_step(*optimizer);
            if (scheduler) scheduler->step();
            INFO(name << ", after step " << s + 1);
            CHECK(all_close(problem.W.value(), to_matrix(steps[s].at("W")), 1e-10, 1e-12));
            CHECK(all_close(problem.b.value(), to_matrix(steps[s].at("b")), 1e-10, 1e-12));
            for (std::size_t g = 0; g < 2; ++g) {
                CHECK(optimizer->lr(g) ==
                      Approx(steps[s].at("lr").at(g).get<double>()).epsilon(1e-15));
            }
        }
    }
}

TEST_CASE(
    "weight_decay_groups exempts biases and norm parameters, and AdamW then shrinks only weights",
    "[optim][groups]") {
    auto net = mlp<double>({.widths = {4, 6, 3}, .norm = Normalization::batch, .seed = 3});
    const auto groups = weight_decay_groups(*net);
    REQUIRE(groups.size() == 2);
    CHECK(groups[0].params.keys() ==
          std::vector<std::string>{"layers.0.linear.weight", "layers.1.linear.weight"});
    CHECK(groups[1].params.keys() ==
          std::vector<std::string>{"layers.0.linear.bias", "layers.0.bn.weight", "layers.0.bn.bias",
                                   "layers.1.linear.bias"});
    AdamW<double> adamw(groups, {.lr = 0.1, .weight_decay = 0.5});
    CHECK(adamw.options(0).weight_decay == 0.5);
    CHECK(adamw.options(1).weight_decay == 0.0);
    CHECK(adamw.options(1).lr == 0.1);  // the rest is the optimiser's

    // With zero gradients Adam's own step is 0, so all that moves a parameter is the decay:
    // weights scale by exactly 1 - lr * weight_decay = 0.95, exempt parameters stay put.
    sum((*net)(TensorD::constant(normal(5, 4, 4)))).backward();
    adamw.zero_grad();
    std::vector<Matrix<double>> before;
    for (const auto& [name, p] : net->named_parameters()) before.push_back(p.value());
    adamw.step();
    std::size_t i = 0;
    for (const auto& [name, p] : net->named_parameters()) {
        INFO(name);
        const bool weight = name.ends_with("linear.weight");
        CHECK(all_close(p.value(), (weight ? 0.95 : 1.0) * before[i++], 1e-15, 0.0));
    }
}

TEST_CASE("a grouped optimiser's state keeps every group, and a restored one continues identically",
          "[optim][state][groups]") {
    const auto make = [](Problem<double>& p) {
        return Adam<double>(
            {{{p.W}, {.amsgrad = true}}, {{p.b}, {.lr = 0.05, .betas = AdamBetas{0.5, 0.9}}}},
            {.lr = 0.01});
    };
    Problem<double> a, b;
    Adam<double> first = make(a);
    a.train_step(first);
    a.train_step(first);
    const OptimizerState<double> state = first.state();
    // group 0 under the plain names (as before groups), group 1 prefixed
    CHECK(scalar(state, "lr") == 0.01);
    CHECK(scalar(state, "amsgrad") == 1.0);
    CHECK(scalar(state, "group1.lr") == 0.05);
    CHECK(scalar(state, "group1.beta1") == 0.5);
    CHECK(scalar(state, "group1.amsgrad") == 0.0);
    CHECK(tensor_names(state) == std::vector<std::string>{"exp_avg.0", "exp_avg_sq.0",
                                                          "max_exp_avg_sq.0", "exp_avg.1",
                                                          "exp_avg_sq.1"});

    // Another optimiser made with other group options takes them all from the state.
    b.W.data() = a.W.value();
    b.b.data() = a.b.value();
    Adam<double> second({{{b.W}, {}}, {{b.b}, {}}}, {.lr = 0.2, .amsgrad = true});
    second.load_state(state);
    CHECK(second.options(1).lr == 0.05);
    CHECK(second.options(1).betas.beta1 == 0.5);
    CHECK_FALSE(second.options(1).amsgrad);
    CHECK(same_state(second.state(), state));
    a.train_step(first);
    b.train_step(second);
    CHECK(same_bits(a.W.value(), b.W.value()));
    CHECK(same_bits(a.b.value(), b.b.value()));

    // A state for more groups than the optimiser has names the group.
    Problem<double> c;
    Adam<double> single(c.params());
    REQUIRE_THROWS_MATCHES(single.load_state(state), value_error,
                           MessageContains({"group1.", "parameter group 1", "1 group"}));
}

TEST_CASE("a state saved before groups existed loads into group 0 of a grouped optimiser",
          "[optim][state][groups]") {
    Problem<double> p;
    SGD<double> old_style(p.params(), {.lr = 0.1, .momentum = 0.9});
    p.train_step(old_style);
    Problem<double> q;
    SGD<double> grouped({{{q.W}, {}}, {{q.b}, {.lr = 0.3, .momentum = 0.9}}},
                        {.lr = 0.5, .momentum = 0.9});
    grouped.load_state(old_style.state());
    CHECK(grouped.lr(0) == 0.1);  // the state's plain hyper-parameters are group 0's
    CHECK(grouped.lr(1) == 0.3);  // group 1 keeps its own: the state says nothing about it
}

TEST_CASE(
    "groups are checked: options their optimiser lacks, shared tensors, bad values and indices",
    "[optim][errors][groups]") {
    Problem<double> p;
    REQUIRE_THROWS_MATCHES(SGD<double>({{{p.W}, {}}, {{p.b}, {.betas = AdamBetas{}}}}, {.lr = 0.1}),
                           value_error,
                           MessageContains({"SGD: parameter group 1 sets beta1", "does not have"}));
    REQUIRE_THROWS_MATCHES(Adam<double>({{{p.W}, {}}, {{p.W, p.b}, {}}}), value_error,
                           MessageContains({"same tensor", "parameter groups 0 and 1"}));
    REQUIRE_THROWS_MATCHES(
        RMSprop<double>({{{p.W}, {}}, {{p.b}, {.momentum = 1.5}}}), value_error,
        MessageContains({"RMSprop: momentum must be in [0, 1), got 1.5", "parameter group 1"}));
    REQUIRE_THROWS_MATCHES(
        AdamW<double>(
            {{std::vector<std::pair<std::string, TensorD>>{{"W", p.W}}, {}}, {{p.b}, {}}}),
        value_error, MessageContains("some parameter groups have names and some do not"));
    REQUIRE_THROWS_MATCHES(
        SGD<double>({{std::vector<TensorD>{}, {}}, {std::vector<TensorD>{}, {}}}), value_error,
        MessageContains("empty parameter list"));
    // One group may be empty (a network without biases, say), as in PyTorch.
    SGD<double> sgd({{{p.W, p.b}, {}}, {std::vector<TensorD>{}, {.lr = 1.0}}}, {.lr = 0.1});
    CHECK(sgd.group_count() == 2);
    CHECK(sgd.group_params(1).empty());
    REQUIRE_THROWS_MATCHES(sgd.lr(2), value_error,
                           MessageContains({"no parameter group 2", "there are 2"}));
}

TEST_CASE("set_lr sets every group or one, and a refused lr changes none", "[optim][groups]") {
    Problem<double> p;
    AdamW<double> adamw({{{p.W}, {}}, {{p.b}, {.lr = 0.5, .weight_decay = 1.0}}}, {.lr = 0.1});
    CHECK(adamw.lr(0) == 0.1);
    CHECK(adamw.lr(1) == 0.5);
    adamw.set_lr(1, 0.25);
    CHECK(adamw.lr(0) == 0.1);
    CHECK(adamw.lr(1) == 0.25);
    // lr 2 is fine for group 0 (decay 0.01) but lr * weight_decay = 2 > 1 in group 1
    REQUIRE_THROWS_MATCHES(
        adamw.set_lr(2.0), value_error,
        MessageContains({"lr * weight_decay must be <= 1", "parameter group 1"}));
    CHECK(adamw.lr(0) == 0.1);
    adamw.set_lr(0.5);
    CHECK(adamw.lr(0) == 0.5);
    CHECK(adamw.lr(1) == 0.5);
}

// Designated initialisers must follow the declaration order, so every options struct declares its
// fields in the order of PyTorch's keywords: a user who writes them as in PyTorch compiles. This
// writes every field of each, in PyTorch's order (the compile is the test; the checks say the
// values land in the fields they name).
TEST_CASE("optimiser and scheduler options take their fields in PyTorch's keyword order",
          "[optim][options]") {
    const SGDOptions sgd{
        .lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 1e-4, .nesterov = false};
    const AdamOptions adam{
        .lr = 0.1, .betas = {0.8, 0.9}, .eps = 1e-6, .weight_decay = 0.01, .amsgrad = true};
    const AdamWOptions adamw{
        .lr = 0.1, .betas = {0.8, 0.9}, .eps = 1e-6, .weight_decay = 0.05, .amsgrad = false};
    const RMSpropOptions rmsprop{.lr = 0.1,
                                 .alpha = 0.9,
                                 .eps = 1e-6,
                                 .weight_decay = 0.01,
                                 .momentum = 0.5,
                                 .centered = true};
    CHECK((sgd.dampening == 0.1 && sgd.weight_decay == 1e-4));
    CHECK((adam.betas.beta2 == 0.9 && adam.amsgrad && adamw.weight_decay == 0.05));
    CHECK((rmsprop.alpha == 0.9 && rmsprop.momentum == 0.5 && rmsprop.centered));

    const StepLROptions step{.step_size = 3, .gamma = 0.5};
    const MultiStepLROptions multi{.milestones = {2, 5}, .gamma = 0.5};
    const ConstantLROptions constant{.factor = 0.5, .total_iters = 4};
    const LinearLROptions linear{.start_factor = 0.25, .end_factor = 1.0, .total_iters = 4};
    const CosineAnnealingLROptions cosine{.T_max = 10, .eta_min = 1e-4};
    const CosineAnnealingWarmRestartsOptions restarts{.T_0 = 5, .T_mult = 2, .eta_min = 1e-4};
    const OneCycleLROptions one_cycle{.max_lr = 0.1,
                                      .total_steps = 100,
                                      .pct_start = 0.25,
                                      .anneal_strategy = OneCycleLROptions::Anneal::linear,
                                      .div_factor = 10.0,
                                      .final_div_factor = 100.0,
                                      .three_phase = true};
    const OneCycleLROptions one_cycle_by_epochs{
        .max_lr = 0.1, .epochs = 4, .steps_per_epoch = 25, .pct_start = 0.25};
    const ReduceLROnPlateauOptions plateau{
        .mode = ReduceLROnPlateauOptions::Mode::max,
        .factor = 0.5,
        .patience = 2,
        .threshold = 1e-3,
        .threshold_mode = ReduceLROnPlateauOptions::ThresholdMode::abs,
        .cooldown = 1,
        .min_lr = 1e-5,
        .eps = 1e-9};
    CHECK((step.gamma == 0.5 && multi.milestones.size() == 2 && constant.total_iters == 4));
    CHECK((linear.end_factor == 1.0 && cosine.eta_min == 1e-4 && restarts.T_mult == 2));
    CHECK((one_cycle.div_factor == 10.0 && one_cycle.three_phase));
    CHECK((one_cycle_by_epochs.steps_per_epoch == 25 && one_cycle_by_epochs.pct_start == 0.25));
    CHECK((plateau.cooldown == 1 && plateau.min_lr == 1e-5 && plateau.eps == 1e-9));
}
