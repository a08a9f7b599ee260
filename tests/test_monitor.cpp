// The gradient monitor and profiles: the numbers they report are the true gradients, steps are
// kept and dropped as asked, detaching stops recording, and verdicts follow their thresholds.
// Also the two remaining claims: clipping keeps an exploding network trainable, and anomaly
// mode names the layer of an injected NaN.
#include "support/skips_first_linear.hpp"
#include "support/testing.hpp"

#include <gradscope/gradscope.hpp>

#include <cmath>
#include <limits>
#include <set>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

std::shared_ptr<MLP<double>> small_net(std::uint64_t seed = 1) {
    return mlp<double>({.widths = {6, 16, 16, 16, 3}, .activation = Tanh{}, .seed = seed});
}

}  // namespace

TEST_CASE("the monitor's numbers equal the gradients computed directly", "[monitor]") {
    auto net = small_net();
    diag::GradientMonitor<double> monitor(*net);
    REQUIRE(monitor.layer_count() == 4);
    CHECK(monitor.layer_names() == std::vector<std::string>{"layers.0.linear", "layers.1.linear",
                                                            "layers.2.linear", "layers.3.linear"});

    // Capture every Linear's output z_l and keep its gradient, independently of the monitor.
    std::vector<TensorD> outputs(4);
    std::vector<TensorD> activations(3);
    auto linears = net->linear_layers();
    for (std::size_t i = 0; i < linears.size(); ++i) {
        linears[i].second->register_forward_hook(
            [&, i](Module<double>&, const TensorD&, const TensorD& out) {
                outputs[i] = out;
                outputs[i].retain_grad();
            });
    }
    for (std::size_t i = 0; i < 3; ++i) {
        net->layers()[i].children()[1].second->register_forward_hook(
            [&, i](Module<double>&, const TensorD&, const TensorD& out) { activations[i] = out; });
    }
    const auto x = TensorD::constant(normal(10, 6, 2));
    cross_entropy((*net)(x), std::vector<int>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}).backward();

    const auto& layers = monitor.last().layers();
    for (std::size_t i = 0; i < 4; ++i) {
        INFO("layer " << i);
        CHECK(layers[i].output_grad_norm == Approx(outputs[i].grad().norm()).epsilon(1e-14));
        CHECK(layers[i].weight_grad_norm ==
              Approx(linears[i].second->weight().grad().norm()).epsilon(1e-14));
        CHECK(layers[i].bias_grad_norm ==
              Approx(linears[i].second->bias().grad().norm()).epsilon(1e-14));
        CHECK(layers[i].weight_norm ==
              Approx(linears[i].second->weight().value().norm()).epsilon(1e-14));
        const double expected_activation =
            i < 3 ? activations[i].value().norm() : outputs[i].value().norm();
        CHECK(layers[i].activation_norm == Approx(expected_activation).epsilon(1e-14));
        CHECK(layers[i].nonfinite == 0);
    }
}

TEST_CASE("the monitor measures the size of each update relative to the weight", "[monitor]") {
    auto net = small_net();
    diag::GradientMonitor<double> monitor(*net);
    SGD<double> sgd(net->parameters(), {.lr = 0.1});
    const auto x = TensorD::constant(normal(8, 6, 3));
    auto& w0 = net->linear_layers()[0].second->weight();
    Matrix<double> before, after;
    for (int step = 0; step < 2; ++step) {
        net->zero_grad();
        sum(square((*net)(x))).backward();
        if (step == 0) before = w0.value();
        sgd.step();
        if (step == 0) after = w0.value();
    }
    REQUIRE(monitor.history().size() == 2);
    CHECK(monitor.history()[0].layers()[0].update_ratio ==
          Approx((after - before).norm() / before.norm()));
    CHECK(std::isnan(monitor.history()[1].layers()[0].update_ratio));  // its update is yet to come
}

TEST_CASE("the monitor keeps every step or only the last N, and stops when detached", "[monitor]") {
    auto net = small_net();
    const auto x = TensorD::constant(normal(8, 6, 4));
    auto step = [&] {
        net->zero_grad();
        sum((*net)(x)).backward();
    };
    diag::GradientMonitor<double> all(*net);
    diag::GradientMonitor<double> last_two(*net, {.keep_last = 2});
    for (int i = 0; i < 5; ++i) step();
    CHECK(all.history().size() == 5);
    CHECK(last_two.history().size() == 2);
    CHECK(last_two.history().front().step() == 3);
    CHECK(last_two.steps_seen() == 5);
    all.detach();
    CHECK_FALSE(all.attached());
    step();
    CHECK(all.history().size() == 5);
    CHECK(last_two.history().back().step() == 5);
}

TEST_CASE("the monitor counts saturated and dead units", "[monitor]") {
    // Huge weights saturate sigmoid; a large negative bias kills every ReLU unit.
    auto sat = mlp<double>({.widths = {8, 32, 2},
                            .activation = Sigmoid{},
                            .init = init::normal(0.0, 30.0),
                            .seed = 5});
    diag::GradientMonitor<double> sat_monitor(*sat);
    sum((*sat)(TensorD::constant(normal(16, 8, 6)))).backward();
    CHECK(sat_monitor.last().layers()[0].saturated_fraction > 0.8);

    auto dead = mlp<double>({.widths = {8, 32, 2},
                             .activation = ReLU{},
                             .bias_init = init::constant(-100.0),
                             .seed = 5});
    diag::GradientMonitor<double> dead_monitor(*dead);
    sum((*dead)(TensorD::constant(normal(16, 8, 6)))).backward();
    CHECK(dead_monitor.last().layers()[0].dead_fraction == 1.0);
}

TEST_CASE("a profile computes ratio, gain and fitted gain, and its verdict follows the thresholds",
          "[monitor][profile]") {
    std::vector<diag::LayerStats> layers;
    for (int l = 0; l < 6; ++l) {
        diag::LayerStats s;
        s.output_grad_norm = std::pow(2.0, -(5 - l));  // halves per layer going back
        layers.push_back(s);
    }
    const diag::GradientProfile p(layers);
    CHECK(p.ratio_first_last() == Approx(1.0 / 32.0));
    CHECK(p.gain_per_layer() == Approx(0.5));
    CHECK(p.fitted_gain() == Approx(0.5));
    CHECK(p.verdict() == diag::Verdict::healthy);  // 1/32 is above the default 1e-3
    CHECK(p.verdict({.vanishing_ratio = 0.1}) == diag::Verdict::vanishing);
    CHECK(p.verdict({.vanishing_ratio = 1e-6, .exploding_ratio = 0.01}) ==
          diag::Verdict::exploding);
    // A layer no gradient reached has a NaN |delta| and no non-finite entry: not measured. Inside
    // the network it leaves the verdict alone; at either end there is no verdict to give.
    layers[2].output_grad_norm = diag::not_measured;
    CHECK(diag::GradientProfile(layers).verdict() == diag::Verdict::healthy);
    layers[0].output_grad_norm = diag::not_measured;
    CHECK(diag::GradientProfile(layers).verdict() == diag::Verdict::not_measured);
    CHECK(std::string(to_string(diag::Verdict::not_measured)) == "not measured");
    CHECK(diag::GradientProfile({layers[1]}).verdict() == diag::Verdict::not_measured);
    layers[2].nonfinite = 1;  // counted NaN entries: the gradient itself went bad
    CHECK(diag::GradientProfile(layers).verdict() == diag::Verdict::nonfinite);
    CHECK_THROWS_AS(diag::GradientProfile(std::vector<diag::LayerStats>(3)).fitted_gain(),
                    value_error);
}

TEST_CASE(
    "an exploding network trained with SGD goes non-finite without clipping and stays finite with it",
    "[monitor][clipping]") {
    auto train = [](bool clip) {
        auto net =
            mlp<double>({.widths = {16, 64, 64, 64, 64, 64, 64, 1},
                         .activation = ReLU{},
                         .init = diag::gaussian_init<double>(6.0),  // three times He's variance
                         .bias_init = init::zeros(),
                         .seed = 3});
        SGD<double> sgd(net->parameters(), {.lr = 0.05});
        const auto x = TensorD::constant(normal(32, 16, 7));
        const auto y = TensorD::constant(normal(32, 1, 8));
        for (int step = 0; step < 20; ++step) {
            auto loss = mse_loss((*net)(x), y);
            if (!std::isfinite(loss.item())) return step;
            net->zero_grad();
            loss.backward();
            if (clip) clip_grad_norm(net->parameters(), 1.0);
            sgd.step();
        }
        return -1;  // finite throughout
    };
    const int without = train(false);
    INFO("non-finite at step " << without << " without clipping");
    CHECK(without >= 0);
    CHECK(without < 10);
    CHECK(train(true) == -1);
}

TEST_CASE("anomaly mode names the layer of an injected NaN, forward and backward",
          "[monitor][anomaly]") {
    auto net = small_net();
    auto& w = net->linear_layers()[2].second->weight();
    const double saved = w.value()(0, 0);
    w.data()(0, 0) = std::numeric_limits<double>::quiet_NaN();
    const auto x = TensorD::constant(normal(4, 6, 9));
    {
        AnomalyGuard anomaly;
        CHECK_THROWS_WITH((*net)(x), Catch::Contains("forward of 'linear'") &&
                                         Catch::Contains("layers.2.linear"));
    }
    w.data()(0, 0) = saved;

    // A hook that poisons the gradient flowing out of layer 2: the backward of the op that
    // passes it on is named, with its module.
    net->linear_layers()[2].second->register_output_grad_hook(
        [](Module<double>&, MatrixView<double> g) {
            g(0, 0) = std::numeric_limits<double>::infinity();
        });
    AnomalyGuard anomaly;
    auto loss = sum((*net)(x));
    CHECK_THROWS_WITH(loss.backward(), Catch::Contains("backward of 'linear' in layers.2.linear"));
}

TEST_CASE("every statistic of layer_statistics is measured, once, under a name of its own",
          "[monitor]") {
    auto net = small_net();
    // Per-sample mode and per-layer sharpness on, so that their statistics are measured too.
    diag::GradientMonitor<double> monitor(
        *net, {.per_sample = {.enabled = true},
               .sharpness = diag::SharpnessOptions{.every = 2, .per_layer = true}});
    SGD<double> sgd(net->parameters(), {.lr = 0.1});
    const auto x = TensorD::constant(normal(10, 6, 2));
    // Mostly one class: the samples' gradients agree enough for the noise scale's |G|^2
    // estimate to be positive (balanced random labels leave it at noise level, not measurable).
    const std::vector<int> labels{0, 0, 0, 0, 1, 0, 0, 0, 2, 0};
    for (int step = 0; step < 2; ++step) {  // the second step measures the first one's update
        sgd.zero_grad();
        auto loss = cross_entropy((*net)(x), labels);
        monitor.observe_loss(loss);
        loss.backward();
        sgd.step();
    }
    std::set<std::string> names;
    const diag::LayerStats& hidden = monitor.history().front().layers()[1];
    for (const auto& s : diag::layer_statistics<double>()) {
        INFO(s.name);
        CHECK(names.insert(s.name).second);
        CHECK(std::string(s.meaning).size() > 3);
        CHECK(std::isfinite(hidden.*s.field));
    }
    CHECK(names.size() == diag::layer_statistics<double>().size());
}

TEST_CASE("the monitor refuses a saturation threshold that is NaN, infinite or negative",
          "[monitor]") {
    auto net = small_net();
    using Monitor = diag::GradientMonitor<double>;
    for (double bad : {std::nan(""), -1e-3, std::numeric_limits<double>::infinity()}) {
        REQUIRE_THROWS_MATCHES(Monitor(*net, {.saturation_threshold = bad}), value_error,
                               MessageContains({"GradientMonitor", "saturation_threshold"}));
    }
    // A refused monitor leaves no hook behind: under the sanitizers, a hook left on the network
    // would touch the destroyed monitor in this step.
    cross_entropy((*net)(TensorD::constant(normal(4, 6, 1))), std::vector<int>{0, 1, 2, 0})
        .backward();
}

// net->forward(x) is the same call as (*net)(x): the hooks run either way (a virtual public
// forward once let this spelling skip them, and the monitor then saw no step at all).
TEST_CASE("net->forward runs the hooks, so the monitor sees the step", "[monitor]") {
    auto net = mlp<double>({.widths = {3, 4, 2}, .seed = 2});
    diag::GradientMonitor<double> monitor(*net);
    int forward_calls = 0;
    auto handle = net->register_forward_hook(
        [&](Module<double>&, const TensorD&, const TensorD&) { ++forward_calls; });
    const TensorD x = TensorD::constant(normal(5, 3, 9));
    mean(square(net->forward(x))).backward();
    CHECK(forward_calls == 1);
    REQUIRE(monitor.history().size() == 1);
    CHECK(monitor.last().layers().front().output_grad_norm > 0.0);
    CHECK(monitor.last().layers().back().output_grad_norm > 0.0);
}

// The root's path is "": a monitor on a bare Linear names its one layer module_label("").
TEST_CASE("a monitor on a bare Linear names it (the network), sharpness included", "[monitor]") {
    Rng rng(3);
    auto linear = std::make_shared<Linear<double>>(4, 2, rng);
    diag::GradientMonitor<double> monitor(
        *linear, {.sharpness = diag::SharpnessOptions{.every = 1, .per_layer = true}});
    CHECK(monitor.layer_names() == std::vector<std::string>{"(the network)"});
    const TensorD x = TensorD::constant(normal(6, 4, 5));
    auto loss = mean(square((*linear)(x)));
    monitor.observe_loss(loss);
    loss.backward();
    REQUIRE(monitor.history().size() == 1);
    const diag::LayerStats& layer = monitor.last().layers().front();
    CHECK(layer.name == "(the network)");
    CHECK(diag::format_profile(monitor.last()).find("(the network)") != std::string::npos);
    // The layer's Hessian block is the whole Hessian, so the two sharpnesses agree: a block
    // left unmatched by name would leave the layer's NaN.
    const diag::NetworkSharpness& whole = monitor.last().sharpness();
    REQUIRE(whole.measured());
    CHECK(whole.sharpness > 0.0);
    CHECK(layer.sharpness == Approx(whole.sharpness).epsilon(1e-6));
}

TEST_CASE("a watched module that no gradient reaches is not measured, not non-finite",
          "[monitor][profile]") {
    // An RNN's cell runs its steps without its own forward (and so without hooks): selected, it
    // sees no gradient. The Linear layers around it still give the verdict.
    Rng rng(4);
    Sequential<double> net;
    net.add(std::make_shared<Linear<double>>(4, 10, rng));
    net.add(std::make_shared<RNN<double>>(2, 6, rng));
    net.add(std::make_shared<Linear<double>>(6, 1, rng));
    diag::GradientMonitor<double> monitor(
        net, {.select = [](const std::string&, Module<double>& m) {
            return dynamic_cast<Linear<double>*>(&m) != nullptr ||
                   dynamic_cast<ElmanCell<double>*>(&m) != nullptr;
        }});
    mean(square(net(TensorD::constant(normal(5, 4, 3))))).backward();
    const auto& layers = monitor.last().layers();
    REQUIRE(layers.size() == 3);
    CHECK(layers[1].name == "1.cell");
    CHECK(std::isnan(layers[1].output_grad_norm));
    CHECK(layers[1].weight_grad_norm > 0.0);  // its parameters did get gradients
    CHECK(layers[1].nonfinite == 0);
    CHECK(monitor.last().verdict() == diag::Verdict::healthy);

    SkipsFirstLinear partial(3, rng);
    diag::GradientMonitor<double> watcher(partial);
    mean(square(partial(TensorD::constant(normal(5, 3, 4))))).backward();
    CHECK(watcher.last().verdict() == diag::Verdict::not_measured);
    CHECK(diag::format_profile(watcher.last()).find("verdict: not measured") != std::string::npos);
}
