// The learning-rate schedulers: 200 values of each against torch.optim.lr_scheduler (PyTorch
// 1.13, from tools/make_scheduler_reference.py in tests/data/scheduler_reference.json),
// ReduceLROnPlateau fed the file's metric sequences, min_lr and max_lr given per parameter
// group, state that restores exactly, and option validation.
//
// Tolerance: 1e-12 relative. gradscope evaluates PyTorch's formulas in the same order, in
// double, from the same recursive (chainable) form, so the only differences left are the
// math library's cos/pow (within an ulp or so) compounded over at most 200 recursive steps:
// a few times 200 * 1.1e-16, well under 1e-12. A wrong branch or an epoch off by one moves a
// value by 1e-4 relative or more.
#include "support/reference.hpp"

#include <gradscope/io/safetensors.hpp>
#include <gradscope/optim/all.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

const nlohmann::json& scheduler_reference() { return reference_file("scheduler_reference.json"); }

const nlohmann::json& reference_case(const std::string& name) {
    for (const auto& c : scheduler_reference().at("cases")) {
        if (c.at("name") == name) return c;
    }
    throw std::runtime_error("no scheduler reference case " + name);
}

// The schedulers of one case, made on one optimiser; `top` is the one to step.
struct Schedule {
    std::vector<std::unique_ptr<LRScheduler>> owned;
    LRScheduler* top = nullptr;

    template <class S, class Options>
    S& add(Optimizer<double>& o, Options options) {
        owned.push_back(std::make_unique<S>(o, options));
        top = owned.back().get();
        return static_cast<S&>(*top);
    }
    template <class S, class... Args>
    void combine(Args&&... args) {
        SchedulerList parts;
        for (const auto& s : owned) parts.emplace_back(*s);
        owned.push_back(std::make_unique<S>(std::move(parts), std::forward<Args>(args)...));
        top = owned.back().get();
    }
};

using Factory = std::function<void(Optimizer<double>&, Schedule&)>;

// The same schedules as SCHEDULES in tools/make_scheduler_reference.py, built in the same order
// (the first scheduler made for an optimiser fixes its initial lr).
const std::map<std::string, Factory>& schedules() {
    static const std::map<std::string, Factory> all = {
        {"step",
         [](auto& o, Schedule& s) {
             s.add<StepLR>(o, StepLROptions{7, 0.5});
         }},
        {"multistep",
         [](auto& o, Schedule& s) {
             s.add<MultiStepLR>(o, MultiStepLROptions{{10, 30, 30, 80, 150}, 0.3});
         }},
        {"exponential",
         [](auto& o, Schedule& s) { s.add<ExponentialLR>(o, ExponentialLROptions{0.97}); }},
        {"constant",
         [](auto& o, Schedule& s) {
             s.add<ConstantLR>(o, ConstantLROptions{0.25, 12});
         }},
        {"linear",
         [](auto& o, Schedule& s) {
             s.add<LinearLR>(o, LinearLROptions{0.05, 0.9, 40});
         }},
        {"cosine",
         [](auto& o, Schedule& s) {
             s.add<CosineAnnealingLR>(o, CosineAnnealingLROptions{60, 1e-3});
         }},
        {"cosine_eta_min_0",
         [](auto& o, Schedule& s) { s.add<CosineAnnealingLR>(o, CosineAnnealingLROptions{37}); }},
        {"warm_restarts",
         [](auto& o, Schedule& s) {
             s.add<CosineAnnealingWarmRestarts>(o, CosineAnnealingWarmRestartsOptions{10, 2, 1e-4});
         }},
        {"warm_restarts_t_mult_1",
         [](auto& o, Schedule& s) {
             s.add<CosineAnnealingWarmRestarts>(o, CosineAnnealingWarmRestartsOptions{17});
         }},
        {"one_cycle_cos",
         [](auto& o, Schedule& s) {
             s.add<OneCycleLR>(
                 o, OneCycleLROptions{.max_lr = 0.5, .total_steps = 200, .pct_start = 0.25});
         }},
        {"one_cycle_linear_three_phase",
         [](auto& o, Schedule& s) {
             s.add<OneCycleLR>(
                 o, OneCycleLROptions{.max_lr = 0.8,
                                      .total_steps = 230,
                                      .pct_start = 0.3,
                                      .anneal_strategy = OneCycleLROptions::Anneal::linear,
                                      .div_factor = 10.0,
                                      .final_div_factor = 100.0,
                                      .three_phase = true});
         }},
        {"chained_linear_exponential",
         [](auto& o, Schedule& s) {
             s.add<LinearLR>(o, LinearLROptions{.start_factor = 0.1, .total_iters = 10});
             s.add<ExponentialLR>(o, ExponentialLROptions{0.99});
             s.combine<ChainedScheduler>();
         }},
        {"chained_linear_cosine",
         [](auto& o, Schedule& s) {
             s.add<LinearLR>(o, LinearLROptions{.start_factor = 0.2, .total_iters = 20});
             s.add<CosineAnnealingLR>(o, CosineAnnealingLROptions{50});
             s.combine<ChainedScheduler>();
         }},
        {"sequential_warmup_cosine",
         [](auto& o, Schedule& s) {
             s.add<LinearLR>(o, LinearLROptions{.start_factor = 0.01, .total_iters = 10});
             s.add<CosineAnnealingLR>(o, CosineAnnealingLROptions{100, 1e-4});
             s.combine<SequentialLR>(std::vector<std::int64_t>{10});
         }},
        {"sequential_three",
         [](auto& o, Schedule& s) {
             s.add<ConstantLR>(o, ConstantLROptions{0.5, 5});
             s.add<ExponentialLR>(o, ExponentialLROptions{0.98});
             s.add<StepLR>(o, StepLROptions{20, 0.5});
             s.combine<SequentialLR>(std::vector<std::int64_t>{15, 90});
         }},
    };
    return all;
}

using Plateau = ReduceLROnPlateauOptions;

// PLATEAUS in the script.
const std::map<std::string, Plateau>& plateaus() {
    static const std::map<std::string, Plateau> all = {
        {"plateau_min_rel",
         Plateau{Plateau::Mode::min, 0.5, 5, 1e-2, Plateau::ThresholdMode::rel, 3, 1e-3}},
        {"plateau_min_abs",
         Plateau{Plateau::Mode::min, 0.3, 3, 0.02, Plateau::ThresholdMode::abs, 0, 0.0}},
        {"plateau_max_rel",
         Plateau{Plateau::Mode::max, 0.7, 4, 1e-3, Plateau::ThresholdMode::rel, 2, 2e-3}},
        {"plateau_max_abs",
         Plateau{Plateau::Mode::max, 0.5, 2, 0.005, Plateau::ThresholdMode::abs, 5, 0.0, 1e-3}},
    };
    return all;
}

SGD<double> make_sgd(double lr = 0.1) {
    return SGD<double>({TensorD::parameter(Matrix<double>::Zero(1, 1))},
                       SGDOptions{.lr = lr, .momentum = 0.9});
}

// two_groups() in the script: the per-group cases' optimiser.
SGD<double> make_two_group_sgd() {
    return SGD<double>({{{TensorD::parameter(Matrix<double>::Zero(1, 1))}, {}},
                        {{TensorD::parameter(Matrix<double>::Zero(1, 1))}, {.lr = 0.01}}},
                       SGDOptions{.lr = 0.1, .momentum = 0.9});
}

// The cases on make_two_group_sgd(), with min_lr or max_lr given per group; their "lrs" hold
// every group's lr at each step. Tested on their own below.
const std::set<std::string> per_group_cases = {"plateau_min_lrs_per_group",
                                               "one_cycle_max_lrs_per_group"};

void require_close(double got, double want, std::size_t step) {
    INFO("value " << step << ": gradscope " << got << ", PyTorch " << want);
    REQUIRE(std::abs(got - want) <= 1e-12 * std::abs(want));
}

// Every group's lr at one step of a per-group case.
void require_groups_close(const Optimizer<double>& o, const std::vector<double>& want,
                          std::size_t step) {
    REQUIRE(want.size() == o.group_count());
    for (std::size_t g = 0; g < want.size(); ++g) {
        INFO("group " << g);
        require_close(o.lr(g), want[g], step);
    }
}

// A per-group case's lrs, after checking that it was made on make_two_group_sgd()'s groups.
std::vector<std::vector<double>> group_reference(const nlohmann::json& c) {
    REQUIRE(c.at("group_lrs").get<std::vector<double>>() == std::vector<double>{0.1, 0.01});
    auto lrs = c.at("lrs").get<std::vector<std::vector<double>>>();
    REQUIRE(lrs.size() == 200);
    return lrs;
}

// The lr after construction and after each of steps - 1 calls of step().
std::vector<double> run(const std::string& name, std::size_t steps) {
    SGD<double> sgd = make_sgd();
    Schedule s;
    schedules().at(name)(sgd, s);
    std::vector<double> out{sgd.lr()};
    for (std::size_t i = 1; i < steps; ++i) {
        s.top->step();
        REQUIRE(s.top->last_lr().at(0) == sgd.lr());
        out.push_back(sgd.lr());
    }
    return out;
}

}  // namespace

TEST_CASE("the scheduler reference file holds exactly the cases tested here",
          "[schedulers][reference]") {
    std::set<std::string> in_file, here;
    for (const auto& c : scheduler_reference().at("cases")) in_file.insert(c.at("name"));
    for (const auto& [name, f] : schedules()) here.insert(name);
    for (const auto& [name, p] : plateaus()) here.insert(name);
    here.insert(per_group_cases.begin(), per_group_cases.end());
    REQUIRE(in_file == here);
    REQUIRE(scheduler_reference().at("steps") == 200);
    REQUIRE(scheduler_reference().at("lr") == 0.1);
}

TEST_CASE("every scheduler gives PyTorch's 200 learning rates", "[schedulers][reference]") {
    for (const auto& [name, factory] : schedules()) {
        INFO("case " << name);
        const auto want = reference_case(name).at("lrs").get<std::vector<double>>();
        REQUIRE(want.size() == 200);
        const std::vector<double> got = run(name, want.size());
        for (std::size_t i = 0; i < want.size(); ++i) require_close(got[i], want[i], i);
    }
}

TEST_CASE("ReduceLROnPlateau gives PyTorch's learning rates for modes min and max, rel and abs",
          "[schedulers][reference]") {
    for (const auto& [name, options] : plateaus()) {
        INFO("case " << name);
        const nlohmann::json& c = reference_case(name);
        const auto metrics = c.at("metrics").get<std::vector<double>>();
        const auto want = c.at("lrs").get<std::vector<double>>();
        SGD<double> sgd = make_sgd();
        ReduceLROnPlateau plateau(sgd, options);
        for (std::size_t i = 0; i < metrics.size(); ++i) {
            plateau.step(metrics[i]);
            require_close(sgd.lr(), want[i], i);
            REQUIRE(plateau.last_lr().at(0) == sgd.lr());
        }
        REQUIRE(plateau.best() == c.at("best").get<double>());
        REQUIRE(plateau.num_bad_epochs() == c.at("num_bad_epochs").get<std::int64_t>());
        REQUIRE(plateau.cooldown_counter() == c.at("cooldown_counter").get<std::int64_t>());
        REQUIRE(plateau.last_epoch() == 200);
    }
}

TEST_CASE("ReduceLROnPlateau with a min_lr per group gives PyTorch's lr for both groups",
          "[schedulers][reference][groups]") {
    const nlohmann::json& c = reference_case("plateau_min_lrs_per_group");
    const auto metrics = c.at("metrics").get<std::vector<double>>();
    const auto want = group_reference(c);
    SGD<double> sgd = make_two_group_sgd();
    ReduceLROnPlateau plateau(sgd, Plateau{.factor = 0.5,
                                           .patience = 3,
                                           .threshold = 1e-2,
                                           .cooldown = 2,
                                           .min_lrs = {0.01, 0.0005}});
    for (std::size_t i = 0; i < metrics.size(); ++i) {
        plateau.step(metrics[i]);
        require_groups_close(sgd, want[i], i);
        REQUIRE(plateau.last_lr() == std::vector<double>{sgd.lr(0), sgd.lr(1)});
    }
    // Each group stops at its own minimum (the script checks that both reach it).
    REQUIRE(sgd.lr(0) == 0.01);
    REQUIRE(sgd.lr(1) == 0.0005);
}

TEST_CASE("OneCycleLR with a max_lr per group gives PyTorch's lr for both groups",
          "[schedulers][reference][groups]") {
    const auto want = group_reference(reference_case("one_cycle_max_lrs_per_group"));
    SGD<double> sgd = make_two_group_sgd();
    OneCycleLR cycle(sgd, OneCycleLROptions{.total_steps = 200, .max_lrs = {1.0, 0.1}});
    // Each group starts from its own max_lr / div_factor, whatever lr it was made with.
    REQUIRE(cycle.base_lrs() == std::vector<double>{1.0 / 25.0, 0.1 / 25.0});
    REQUIRE(sgd.initial_lr(1) == 0.1 / 25.0);
    require_groups_close(sgd, want[0], 0);
    for (std::size_t i = 1; i < want.size(); ++i) {
        cycle.step();
        require_groups_close(sgd, want[i], i);
        REQUIRE(cycle.last_lr() == std::vector<double>{sgd.lr(0), sgd.lr(1)});
    }
}

TEST_CASE("a scheduler restored from its state continues exactly where it stopped",
          "[schedulers][state]") {
    for (const auto& [name, factory] : schedules()) {
        INFO("case " << name);
        const std::vector<double> whole = run(name, 120);

        SGD<double> first = make_sgd();
        Schedule a;
        factory(first, a);
        for (int i = 1; i < 70; ++i) a.top->step();
        const SchedulerState saved = a.top->state();

        // A fresh optimiser and scheduler, as a program resuming from a checkpoint makes them:
        // the optimiser's lr comes from its own state, the scheduler's counters from its state.
        SGD<double> second = make_sgd();
        Schedule b;
        factory(second, b);
        second.set_lr(first.lr());
        b.top->load_state(saved);
        REQUIRE(b.top->last_epoch() == a.top->last_epoch());
        for (std::size_t i = 70; i < whole.size(); ++i) {
            b.top->step();
            REQUIRE(second.lr() == whole[i]);
        }
    }
}

TEST_CASE("ReduceLROnPlateau restored from its state continues exactly", "[schedulers][state]") {
    const nlohmann::json& c = reference_case("plateau_min_rel");
    const auto metrics = c.at("metrics").get<std::vector<double>>();
    const auto want = c.at("lrs").get<std::vector<double>>();
    SGD<double> first = make_sgd();
    ReduceLROnPlateau a(first, plateaus().at("plateau_min_rel"));
    for (std::size_t i = 0; i < 90; ++i) a.step(metrics[i]);
    SGD<double> second = make_sgd(first.lr());
    ReduceLROnPlateau b(second, plateaus().at("plateau_min_rel"));
    b.load_state(a.state());
    for (std::size_t i = 90; i < metrics.size(); ++i) {
        b.step(metrics[i]);
        require_close(second.lr(), want[i], i);
    }
}

TEST_CASE("a scheduler refuses a state it cannot use and stays as it was", "[schedulers][state]") {
    SGD<double> sgd = make_sgd();
    StepLR step(sgd, StepLROptions{3, 0.5});
    for (int i = 0; i < 4; ++i) step.step();
    const SchedulerState good = step.state();

    SchedulerState unknown = good;
    unknown.scalars.emplace_back("T_cur", 1.0);
    REQUIRE_THROWS_MATCHES(step.load_state(unknown), value_error,
                           MessageContains({"StepLR: load_state", "unknown scalar 'T_cur'"}));
    SchedulerState missing = good;
    missing.scalars.erase(missing.scalars.begin());  // last_epoch
    REQUIRE_THROWS_MATCHES(step.load_state(missing), value_error, MessageContains("last_epoch"));
    SchedulerState twice = good;
    twice.scalars.push_back(good.scalars.front());
    REQUIRE_THROWS_MATCHES(step.load_state(twice), value_error, MessageContains("given twice"));
    REQUIRE(step.last_epoch() == 4);

    // A composite puts back the parts it loaded when a later part refuses its entries.
    SGD<double> other = make_sgd();
    LinearLR warm(other, LinearLROptions{});
    CosineAnnealingWarmRestarts restarts(other, CosineAnnealingWarmRestartsOptions{5});
    ChainedScheduler chain({warm, restarts});
    for (int i = 0; i < 3; ++i) chain.step();
    SchedulerState bad = chain.state();
    for (auto& [key, value] : bad.scalars) {
        if (key == "0.last_epoch") value = 40.0;
        if (key == "1.T_cur") value = 9.0;  // not below T_i = 5
    }
    REQUIRE_THROWS_MATCHES(chain.load_state(bad), value_error, MessageContains("T_cur"));
    REQUIRE(warm.last_epoch() == 3);
    REQUIRE(restarts.epochs_since_restart() == 3);

    ReduceLROnPlateau plateau(sgd, ReduceLROnPlateauOptions{});
    SchedulerState partial = plateau.state();
    partial.scalars.pop_back();
    REQUIRE_THROWS_MATCHES(plateau.load_state(partial), value_error,
                           MessageContains("'last_lr.0' is missing"));
}

TEST_CASE("scheduler options are checked where they are given", "[schedulers][validation]") {
    SGD<double> sgd = make_sgd();
    using M = MessageContains;
    REQUIRE_THROWS_MATCHES(StepLR(sgd, StepLROptions{0, 0.1}), value_error,
                           M("StepLR: step_size must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(StepLR(sgd, StepLROptions{2, -0.5}), value_error,
                           M({"StepLR: gamma", "-0.5"}));
    REQUIRE_THROWS_MATCHES(MultiStepLR(sgd, MultiStepLROptions{{3, -1}, 0.1}), value_error,
                           M("MultiStepLR: every milestone must be >= 0, got -1"));
    REQUIRE_THROWS_MATCHES(
        ExponentialLR(sgd, ExponentialLROptions{std::numeric_limits<double>::quiet_NaN()}),
        value_error, M({"ExponentialLR: gamma", "nan"}));
    REQUIRE_THROWS_MATCHES(ConstantLR(sgd, ConstantLROptions{0.0, 5}), value_error,
                           M("ConstantLR: factor must be in (0, 1], got 0"));
    REQUIRE_THROWS_MATCHES(LinearLR(sgd, LinearLROptions{.start_factor = 0.0}), value_error,
                           M("LinearLR: start_factor must be in (0, 1], got 0"));
    REQUIRE_THROWS_MATCHES(LinearLR(sgd, LinearLROptions{.end_factor = 1.5}), value_error,
                           M("LinearLR: end_factor must be in [0, 1], got 1.5"));
    REQUIRE_THROWS_MATCHES(LinearLR(sgd, LinearLROptions{.total_iters = 0}), value_error,
                           M("LinearLR: total_iters must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(CosineAnnealingLR(sgd, CosineAnnealingLROptions{0}), value_error,
                           M("CosineAnnealingLR: T_max must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(CosineAnnealingLR(sgd, CosineAnnealingLROptions{10, -1e-3}), value_error,
                           M("CosineAnnealingLR: eta_min"));
    REQUIRE_THROWS_MATCHES(
        CosineAnnealingWarmRestarts(sgd, CosineAnnealingWarmRestartsOptions{5, 0}), value_error,
        M("CosineAnnealingWarmRestarts: T_mult must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(OneCycleLR(sgd, OneCycleLROptions{.total_steps = 100}), value_error,
                           M("OneCycleLR: max_lr must be finite and positive, got 0"));
    REQUIRE_THROWS_MATCHES(OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0}), value_error,
                           M("OneCycleLR: total_steps is required (the run's number of optimizer "
                             "steps, >= 2), or epochs and steps_per_epoch"));
    REQUIRE_THROWS_MATCHES(OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = -3}),
                           value_error, M("OneCycleLR: total_steps must be >= 2, got -3"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = 100, .epochs = 10}),
        value_error,
        M("OneCycleLR: give total_steps (100) or epochs and steps_per_epoch, not both"));
    REQUIRE_THROWS_MATCHES(OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .epochs = 10}),
                           value_error, M("OneCycleLR: steps_per_epoch must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .epochs = 1, .steps_per_epoch = 1}),
        value_error, M("OneCycleLR: epochs * steps_per_epoch must be >= 2, got 1"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0,
                                          .epochs = std::int64_t{1} << 40,
                                          .steps_per_epoch = std::int64_t{1} << 30}),
        value_error, M("does not fit a 64-bit count"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd,
                   OneCycleLROptions{.max_lr = 1.0,
                                     .epochs = 1,
                                     .steps_per_epoch = std::numeric_limits<std::size_t>::max()}),
        value_error, M("epochs * steps_per_epoch (1 * 18446744073709551615) does not fit"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = 10, .pct_start = 1.2}),
        value_error, M("OneCycleLR: pct_start must be in [0, 1], got 1.2"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = 10, .pct_start = 0.05}),
        value_error,
        M("OneCycleLR: pct_start 0.05 with total_steps 10 leaves a phase with no steps"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(
            sgd,
            OneCycleLROptions{.max_lr = 1.0, .epochs = 2, .steps_per_epoch = 5, .pct_start = 0.05}),
        value_error,
        M("OneCycleLR: pct_start 0.05 with total_steps 10 (2 epochs of 5) leaves a phase with no "
          "steps"));
    REQUIRE_THROWS_MATCHES(ReduceLROnPlateau(sgd, ReduceLROnPlateauOptions{.factor = 1.0}),
                           value_error, M("ReduceLROnPlateau: factor must be in [0, 1), got 1"));
    REQUIRE_THROWS_MATCHES(ReduceLROnPlateau(sgd, ReduceLROnPlateauOptions{.patience = -1}),
                           value_error, M("ReduceLROnPlateau: patience must be >= 0, got -1"));
    REQUIRE_THROWS_MATCHES(ReduceLROnPlateau(sgd, ReduceLROnPlateauOptions{.min_lr = -1.0}),
                           value_error, M("ReduceLROnPlateau: min_lr"));

    // The options PyTorch requires have defaults that are refused.
    REQUIRE_THROWS_MATCHES(StepLR(sgd, StepLROptions{}), value_error,
                           M("StepLR: step_size must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(ExponentialLR(sgd, ExponentialLROptions{}), value_error,
                           M("ExponentialLR: gamma must be finite and non-negative, got nan"));
    REQUIRE_THROWS_MATCHES(CosineAnnealingLR(sgd, CosineAnnealingLROptions{}), value_error,
                           M("CosineAnnealingLR: T_max must be >= 1, got 0"));
    REQUIRE_THROWS_MATCHES(CosineAnnealingWarmRestarts(sgd, CosineAnnealingWarmRestartsOptions{}),
                           value_error, M("CosineAnnealingWarmRestarts: T_0 must be >= 1, got 0"));

    REQUIRE_FALSE(sgd.initial_lr());  // a scheduler refused has left the optimiser alone
    StepLR a(sgd, StepLROptions{5});
    SGD<double> other = make_sgd();
    StepLR b(other, StepLROptions{5});
    REQUIRE_THROWS_MATCHES(ChainedScheduler({a, b}), value_error,
                           M("ChainedScheduler: scheduler 1 (StepLR) drives another optimiser"));
    REQUIRE_THROWS_MATCHES(ChainedScheduler(SchedulerList{}), value_error,
                           M("ChainedScheduler: needs at least one scheduler"));
    StepLR c(sgd, StepLROptions{5});
    REQUIRE_THROWS_MATCHES(SequentialLR({a, c}, {}), value_error,
                           M("SequentialLR: 2 schedulers need 1 milestones, got 0"));
    REQUIRE_THROWS_MATCHES(SequentialLR({a, c}, {0}), value_error,
                           M("SequentialLR: milestones must be increasing epochs >= 1, got 0"));
}

TEST_CASE("per-group min_lrs and max_lrs are checked against the optimiser's groups",
          "[schedulers][validation][groups]") {
    SGD<double> sgd = make_two_group_sgd();
    using M = MessageContains;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    REQUIRE_THROWS_MATCHES(
        ReduceLROnPlateau(sgd, Plateau{.min_lrs = {0.01}}), value_error,
        M("ReduceLROnPlateau: expected 2 min_lrs (one per parameter group), got 1"));
    REQUIRE_THROWS_MATCHES(
        ReduceLROnPlateau(sgd, Plateau{.min_lrs = {0.01, -1e-3}}), value_error,
        M("ReduceLROnPlateau: min_lrs[1] must be finite and non-negative, got -0.001"));
    REQUIRE_THROWS_MATCHES(ReduceLROnPlateau(sgd, Plateau{.min_lrs = {nan, 0.0}}), value_error,
                           M("ReduceLROnPlateau: min_lrs[0] must be finite and non-negative"));
    REQUIRE_THROWS_MATCHES(
        ReduceLROnPlateau(sgd, Plateau{.min_lr = 1e-3, .min_lrs = {0.01, 0.001}}), value_error,
        M("ReduceLROnPlateau: give min_lr or min_lrs, not both (min_lr is 0.001)"));

    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.total_steps = 10, .max_lrs = {1.0, 0.1, 0.01}}),
        value_error, M("OneCycleLR: expected 2 max_lrs (one per parameter group), got 3"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.total_steps = 10, .max_lrs = {1.0, 0.0}}),
        value_error, M("OneCycleLR: max_lrs[1] must be finite and positive, got 0"));
    REQUIRE_THROWS_MATCHES(
        OneCycleLR(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = 10, .max_lrs = {1.0, 0.1}}),
        value_error, M("OneCycleLR: give max_lr or max_lrs, not both (max_lr is 1)"));
    REQUIRE_FALSE(sgd.initial_lr(0));  // refused before touching the optimiser
    REQUIRE_FALSE(sgd.initial_lr(1));

    // One number still serves every group.
    OneCycleLR cycle(sgd, OneCycleLROptions{.max_lr = 0.5, .total_steps = 10});
    REQUIRE(cycle.base_lrs() == std::vector<double>{0.02, 0.02});
}

TEST_CASE("OneCycleLR over epochs * steps_per_epoch is the schedule of that many total_steps",
          "[schedulers]") {
    // one_cycle_cos, which equals PyTorch's lrs in the reference test, as 8 epochs of 25 steps.
    const std::vector<double> want = run("one_cycle_cos", 200);
    SGD<double> sgd = make_sgd();
    const std::size_t batches = 25;  // a loader's size(), as PyTorch's steps_per_epoch=len(loader)
    OneCycleLR cycle(
        sgd, OneCycleLROptions{
                 .max_lr = 0.5, .epochs = 8, .steps_per_epoch = batches, .pct_start = 0.25});
    REQUIRE(cycle.total_steps() == 200);
    std::vector<double> got{sgd.lr()};
    for (std::size_t i = 1; i < want.size(); ++i) {
        cycle.step();
        got.push_back(sgd.lr());
    }
    REQUIRE(got == want);
    cycle.step();  // step 200 is allowed, as with total_steps
    REQUIRE_THROWS_MATCHES(
        cycle.step(), value_error,
        MessageContains("OneCycleLR: stepped 202 times, but total_steps is 200"));
}

TEST_CASE("OneCycleLR refuses to step past total_steps, as PyTorch does", "[schedulers]") {
    SGD<double> sgd = make_sgd();
    OneCycleLR cycle(sgd, OneCycleLROptions{.max_lr = 1.0, .total_steps = 10});
    for (int i = 0; i < 10; ++i) cycle.step();  // epochs 1..10: PyTorch allows step == total
    REQUIRE_THROWS_MATCHES(cycle.step(), value_error,
                           MessageContains("OneCycleLR: stepped 12 times, but total_steps is 10"));
}

TEST_CASE("a NaN metric is a bad epoch for ReduceLROnPlateau", "[schedulers]") {
    SGD<double> sgd = make_sgd();
    ReduceLROnPlateau plateau(sgd, ReduceLROnPlateauOptions{.factor = 0.5, .patience = 1});
    plateau.step(1.0);
    plateau.step(std::numeric_limits<double>::quiet_NaN());
    REQUIRE(plateau.num_bad_epochs() == 1);
    REQUIRE(sgd.lr() == 0.1);
    plateau.step(std::numeric_limits<double>::quiet_NaN());
    REQUIRE(sgd.lr() == 0.05);
    REQUIRE(plateau.best() == 1.0);
}

TEST_CASE("schedulers drive a float optimiser, and an lr it refuses is an error", "[schedulers]") {
    auto w = TensorF::parameter(Matrix<float>::Zero(1, 1));
    Adam<float> adam({w}, AdamOptions{.lr = 0.01});
    CosineAnnealingLR cosine(adam, CosineAnnealingLROptions{4});
    for (int i = 0; i < 4; ++i) cosine.step();
    REQUIRE(adam.lr() == 0.0);  // the bottom of the cosine, eta_min 0
    REQUIRE(adam.initial_lr() == 0.01);
    REQUIRE(cosine.base_lrs() == std::vector<double>{0.01});
}

namespace {

// A network, its optimiser and two schedulers on it, as a training program holds them.
struct Training {
    std::shared_ptr<MLP<double>> net;
    SGD<double> sgd;
    LinearLR warm;
    CosineAnnealingLR cosine;
    SequentialLR schedule;
    ReduceLROnPlateau plateau;

    explicit Training(std::uint64_t seed)
        : net(mlp<double>({.widths = {3, 4, 2}, .seed = seed})),
          sgd(net->named_parameters(), SGDOptions{.lr = 0.1, .momentum = 0.9}),
          warm(sgd, LinearLROptions{.start_factor = 0.01, .total_iters = 7}),
          cosine(sgd, CosineAnnealingLROptions{40, 1e-4}),
          schedule({warm, cosine}, {7}),
          plateau(sgd, ReduceLROnPlateauOptions{.patience = 1}) {}
};

}  // namespace

TEST_CASE("scheduler state travels in a checkpoint's metadata and restores bit for bit",
          "[schedulers][state][checkpoint]") {
    Training a(3);
    for (int i = 0; i < 20; ++i) a.schedule.step();
    a.plateau.step(2.0);  // best 2, finite; then one bad epoch
    a.plateau.step(3.0);

    std::map<std::string, std::string> metadata = scheduler_metadata(a.schedule.state());
    metadata.merge(scheduler_metadata(a.plateau.state(), "plateau."));
    metadata["epoch"] = "20";
    const auto bytes = save_checkpoint_to_bytes(*a.net, a.sgd, {.metadata = metadata});

    Training b(4);
    const LoadReport report = load_checkpoint_from_bytes(bytes, *b.net, b.sgd);
    b.schedule.load_state(scheduler_state_from_metadata(report.metadata));
    b.plateau.load_state(scheduler_state_from_metadata(report.metadata, "plateau."));
    REQUIRE(b.sgd.lr() == a.sgd.lr());  // the optimiser's own state carries the lr
    REQUIRE(b.plateau.best() == 2.0);
    REQUIRE(b.plateau.num_bad_epochs() == 1);
    for (int i = 0; i < 30; ++i) {
        a.schedule.step();
        b.schedule.step();
        REQUIRE(b.sgd.lr() == a.sgd.lr());
    }

    std::map<std::string, std::string> bad = {{"scheduler.last_epoch", "3x"}};
    REQUIRE_THROWS_MATCHES(scheduler_state_from_metadata(bad), value_error,
                           MessageContains("'scheduler.last_epoch' is '3x', not a number"));
}
