// diag::doctor on six deliberately broken networks: it names the cause, and its top remedy,
// applied, brings the gradient ratio into the healthy band. Plus a healthy network (nothing to
// change), a non-finite one (the first module that produced it), and networks with modules
// mean-field theory does not model (no prediction from it; a measured one where it helps).
#include "support/skips_first_linear.hpp"
#include "support/testing.hpp"

#include <gradscope/diag.hpp>
#include <gradscope/diag/doctor.hpp>
#include <gradscope/diag/json_report.hpp>

#include <set>
#include <sstream>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

constexpr Index width = 128;
constexpr Index batch_rows = 64;

// Inputs N(0, 1) and a fixed random linear readout, as in diag::measure_depth: the gradient
// arriving at the top is independent of the forward signal, as mean-field theory assumes.
struct Problem {
    Matrix<double> x, readout;
    diag::LossOf<double> loss;
    Problem() {
        Rng rng(11);
        x = rng.normal_matrix<double>(batch_rows, width);
        readout = rng.normal_matrix<double>(batch_rows, width);
        loss = [this](const TensorD& out) {
            return sum(out * TensorD::constant(readout)) / static_cast<double>(batch_rows);
        };
    }
};

MlpOptions<double> square(int depth, ActivationChoice<double> act, init::Initializer<double> w) {
    return {.widths = std::vector<Index>(static_cast<std::size_t>(depth) + 1, width),
            .activation = std::move(act),
            .init = std::move(w),
            .bias_init = init::zeros(),
            .seed = 1};
}

// The network the top remedy describes, built from the broken one's options.
std::shared_ptr<MLP<double>> apply(const diag::Remedy& remedy, MlpOptions<double> o) {
    switch (remedy.kind) {
        case diag::RemedyKind::critical_init:
            o.init = diag::gaussian_init<double>(remedy.sigma_w2);
            o.bias_init = init::normal(0.0, std::sqrt(remedy.sigma_b2));
            break;
        case diag::RemedyKind::remove_batch_norm:
            o.norm = Normalization::none;
            o.init = diag::gaussian_init<double>(remedy.sigma_w2);
            o.bias_init = init::normal(0.0, std::sqrt(remedy.sigma_b2));
            break;
        case diag::RemedyKind::add_residual:
            o.residual = true;
            o.zero_init_residual = true;
            break;
        case diag::RemedyKind::zero_init_residual:
            o.zero_init_residual = true;
            break;
        case diag::RemedyKind::scale_residual:
            o.residual_scale = remedy.residual_scale;
            break;
        case diag::RemedyKind::reinitialise_layer:
            FAIL("reinitialise_layer changes one layer of a built network, not the options");
        case diag::RemedyKind::lower_learning_rate:
            FAIL("lower_learning_rate changes the training, not the network");
    }
    return std::make_shared<MLP<double>>(o);
}

void check_top_remedy_heals(const MlpOptions<double>& broken, const diag::Diagnosis& d,
                            const Problem& p) {
    REQUIRE_FALSE(d.remedies.empty());
    const auto& top = d.remedies.front();
    INFO("top remedy: " << top.action << ", predicted " << top.predicted_gain << "/layer");
    CHECK(top.predicted_verdict == diag::Verdict::healthy);
    // The prediction assumes the critical point's biases, so the words must say which.
    if (top.kind == diag::RemedyKind::critical_init ||
        top.kind == diag::RemedyKind::remove_batch_norm) {
        CHECK_THAT(top.action,
                   Catch::Contains(top.sigma_b2 > 0.0 ? " and biases of variance 0.05 (its .bias())"
                                                      : " and zero biases"));
    }
    auto fixed = apply(top, broken);
    const auto after = diag::doctor<double>(*fixed, p.x, p.loss);
    INFO("after: " << after.text());
    CHECK(after.verdict == diag::Verdict::healthy);
    CHECK(after.ratio_first_last >= 1e-3);
    CHECK(after.ratio_first_last <= 1e3);
}

}  // namespace

namespace app {

// A container of a user's own that chains its children, as Sequential does.
class Chain : public Module<double> {
public:
    explicit Chain(std::shared_ptr<Sequential<double>> inner)
        : inner_(register_module("inner", std::move(inner))) {}
    TensorD forward_impl(const TensorD& x) override { return (*inner_)(x); }

private:
    std::shared_ptr<Sequential<double>> inner_;
};

// A leaf of a user's own without parameters that changes the signal.
class Halve : public Module<double> {
public:
    TensorD forward_impl(const TensorD& x) override { return x * 0.5; }
};

// A module of a user's own with extra state it cannot read back (set_extra_state not
// overridden).
class Remembers : public Module<double> {
public:
    TensorD forward_impl(const TensorD& x) override { return x; }
    [[nodiscard]] std::string extra_state() const override { return "7"; }
};

}  // namespace app

TEST_CASE(
    "doctor: deep sigmoid with Xavier init vanishes for its weight scale, and the edge "
    "of chaos heals it",
    "[diag][doctor]") {
    const Problem p;
    const auto broken = square(30, Sigmoid{}, init::xavier_normal());
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::vanishing);
    CHECK(d.cause == diag::Cause::weight_scale);
    CHECK(d.activation == std::string("sigmoid"));
    CHECK(d.unmodelled.empty());
    REQUIRE_FALSE(d.remedies.empty());
    CHECK(d.remedies.front().kind == diag::RemedyKind::critical_init);
    CHECK(d.remedies.front().sigma_w2 == Approx(103.0).epsilon(0.01));
    CHECK(d.remedies.front().basis == "mean-field theory");
    check_top_remedy_heals(broken, d, p);
    const nlohmann::json j = diag::to_json(d);
    CHECK(j["cause"] == "weight scale");
    CHECK(j["verdict"] == "vanishing");
    CHECK(j["layers"].size() == 30);
    CHECK(j["remedies"][0]["predicted_gain_per_layer"].get<double>() ==
          d.remedies.front().predicted_gain);
}

TEST_CASE(
    "doctor: ReLU with Xavier init vanishes at 1/sqrt(2) per layer, and He's variance heals it",
    "[diag][doctor]") {
    const Problem p;
    const auto broken = square(50, ReLU{}, init::xavier_normal());
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::vanishing);
    CHECK(d.cause == diag::Cause::weight_scale);
    CHECK(d.gain_per_layer == Approx(std::sqrt(0.5)).epsilon(0.03));
    CHECK(d.remedies.front().kind == diag::RemedyKind::critical_init);
    CHECK(d.remedies.front().sigma_w2 == Approx(2.0).epsilon(1e-6));
    CHECK(d.remedies.front().predicted_gain == Approx(1.0).epsilon(1e-6));
    check_top_remedy_heals(broken, d, p);
}

TEST_CASE("doctor: naive N(0, 1) ReLU weights explode, and He's variance heals them",
          "[diag][doctor]") {
    const Problem p;
    const auto broken = square(10, ReLU{}, init::normal(0.0, 1.0));
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::exploding);
    CHECK(d.cause == diag::Cause::weight_scale);
    CHECK(d.sigma_w2 == Approx(static_cast<double>(width)).epsilon(0.05));
    CHECK(d.remedies.front().kind == diag::RemedyKind::critical_init);
    check_top_remedy_heals(broken, d, p);
    // The batch may be a tensor, as everywhere else: the same diagnosis, number for number.
    CHECK(diag::doctor(*net, TensorD::constant(p.x), p.loss).text() == d.text());
    std::ostringstream printed;
    printed << d;
    CHECK(printed.str() == d.text());
}

TEST_CASE("doctor: batch norm with ReLU explodes at depth 50, and the remedy heals it",
          "[diag][doctor]") {
    const Problem p;
    auto broken = square(50, ReLU{}, init::he_normal());
    broken.norm = Normalization::batch;
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::exploding);
    CHECK(d.cause == diag::Cause::batch_norm_explosion);
    std::set<diag::RemedyKind> kinds;
    for (const auto& r : d.remedies) kinds.insert(r.kind);
    CHECK(kinds.count(diag::RemedyKind::remove_batch_norm) == 1);
    CHECK(kinds.count(diag::RemedyKind::add_residual) == 1);
    check_top_remedy_heals(broken, d, p);
}

TEST_CASE(
    "doctor: an unscaled ReLU residual stack grows with depth; scaled or zero branches heal it",
    "[diag][doctor]") {
    const Problem p;
    auto broken = square(50, ReLU{}, init::he_normal());
    broken.residual = true;
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::exploding);
    CHECK(d.cause == diag::Cause::residual_growth);
    const auto kind = d.remedies.front().kind;
    CHECK(
        (kind == diag::RemedyKind::zero_init_residual || kind == diag::RemedyKind::scale_residual));
    CHECK(d.remedies.front().basis == "measured with the change made");
    check_top_remedy_heals(broken, d, p);
    // The doctor put the network back as it was.
    CHECK(diag::doctor<double>(*net, p.x, p.loss).ratio_first_last == d.ratio_first_last);
}

TEST_CASE("doctor: a dead ReLU layer is named, and re-initialising it heals the network",
          "[diag][doctor]") {
    const Problem p;
    auto net = std::make_shared<MLP<double>>(square(10, ReLU{}, init::he_normal()));
    Linear<double>* dead = nullptr;
    for (const auto& [path, module] : net->named_modules()) {
        if (path == "layers.3.linear") dead = dynamic_cast<Linear<double>*>(module);
    }
    REQUIRE(dead != nullptr);
    dead->bias().data().setConstant(-100.0);  // no unit of layer 4 is ever positive
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::vanishing);
    CHECK(d.cause == diag::Cause::dead_layer);
    CHECK(d.evidence.find("layers.3.linear") != std::string::npos);
    REQUIRE_FALSE(d.remedies.empty());
    const auto& top = d.remedies.front();
    CHECK(top.kind == diag::RemedyKind::reinitialise_layer);
    CHECK(top.layer == "layers.3.linear");
    CHECK(top.predicted_verdict == diag::Verdict::healthy);
    // Applied as the remedy says: He weights and zero biases for that layer.
    Rng rng(5);
    Matrix<double> w(width, width);
    init::he_normal()(MatrixView<double>(w.data(), width, width), width, width, rng);
    dead->weight().assign(w);
    dead->bias().data().setZero();
    CHECK(diag::doctor<double>(*net, p.x, p.loss).verdict == diag::Verdict::healthy);
}

TEST_CASE("doctor: a healthy network needs nothing, and its state is left as it was",
          "[diag][doctor]") {
    const Problem p;
    auto net = std::make_shared<MLP<double>>(square(10, Tanh{}, init::xavier_normal()));
    auto bn = std::make_shared<MLP<double>>(MlpOptions<double>{
        .widths = {width, width, width, 4}, .norm = Normalization::batch, .seed = 2});
    const auto before = bn->named_buffers();
    std::vector<Matrix<double>> running;
    for (const auto& [name, b] : before) running.emplace_back(b.value());
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    CHECK(d.verdict == diag::Verdict::healthy);
    CHECK(d.cause == diag::Cause::none);
    CHECK(d.remedies.empty());
    CHECK(d.text().find("healthy: nothing to change") != std::string::npos);
    diag::doctor<double>(*bn, p.x, [](const TensorD& out) { return mean(square(out)); });
    for (std::size_t i = 0; i < running.size(); ++i) CHECK(before[i].second.value() == running[i]);
    for (const auto& param : bn->parameters()) CHECK_FALSE(param.has_grad());
}

TEST_CASE("doctor: non-finite values are traced to the first module that produced them",
          "[diag][doctor][errors]") {
    const Problem p;
    auto net = std::make_shared<MLP<double>>(square(6, Tanh{}, init::xavier_normal()));
    for (const auto& [path, module] : net->named_modules()) {
        if (path == "layers.2.linear")
            dynamic_cast<Linear<double>&>(*module).weight().data()(0, 0) = std::nan("");
    }
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    CHECK(d.verdict == diag::Verdict::nonfinite);
    CHECK(d.cause == diag::Cause::nonfinite);
    CHECK(d.first_nonfinite_module == "layers.2.linear");
    REQUIRE_THROWS_MATCHES(diag::doctor<double>(*net, Matrix<double>(1, width), p.loss),
                           value_error, MessageContains("doctor: the batch needs at least 2 rows"));
}

TEST_CASE("doctor: a network it cannot follow the gradient through is an error, not a diagnosis",
          "[diag][doctor][errors]") {
    const Problem p;
    Rng rng(2);
    // One Linear after a recurrent layer: there is no path of Linear layers to follow.
    Sequential<double> rnn;
    rnn.add(std::make_shared<RNN<double>>(2, width, rng));
    rnn.add(std::make_shared<Linear<double>>(width, width, rng));
    REQUIRE_THROWS_MATCHES(diag::doctor<double>(rnn, normal(batch_rows, 10, 3), p.loss),
                           value_error, MessageContains("needs two, but Sequential has one (1)"));
    // The doctor saves each module's extra state to put it back; one it could not put back is
    // an error before the pass, not an exception from the restoring destructor.
    Sequential<double> remembers;
    remembers.add(std::make_shared<Linear<double>>(width, width, rng));
    remembers.add(std::make_shared<Linear<double>>(width, width, rng));
    remembers.add(std::make_shared<app::Remembers>());
    REQUIRE_THROWS_MATCHES(diag::doctor<double>(remembers, p.x, p.loss), value_error,
                           MessageContains("set_extra_state: the module keeps no extra state"));
    SkipsFirstLinear skips(width, rng);
    REQUIRE_THROWS_MATCHES(diag::doctor<double>(skips, p.x, p.loss), value_error,
                           MessageContains("no gradient reached the first Linear layer, first,"));
}

TEST_CASE(
    "doctor: with layer norm the weights' scale does not matter, and no remedy from mean-field "
    "theory is offered",
    "[diag][doctor]") {
    const Problem p;
    auto broken = square(20, Sigmoid{}, init::xavier_normal());
    broken.norm = Normalization::layer;
    auto net = std::make_shared<MLP<double>>(broken);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::vanishing);
    CHECK(d.cause == diag::Cause::unmodelled_layers);
    REQUIRE(d.unmodelled.size() == 19);  // after every hidden Linear
    CHECK(d.unmodelled.front() == "layers.0.ln (LayerNorm)");
    CHECK(d.text().find("not modelled by mean-field theory: layers.0.ln (LayerNorm), layers.1.ln "
                        "(LayerNorm), layers.2.ln (LayerNorm) and 16 more") != std::string::npos);
    CHECK(diag::to_json(d)["unmodelled"].size() == 19);
    // The edge of chaos the theory would prescribe (sigma_w2 = 103 for sigmoid) leaves the gain
    // where it was, so the doctor, having measured that, offers nothing.
    CHECK(d.remedies.empty());
    auto rescaled = broken;
    rescaled.init = diag::gaussian_init<double>(103.0);
    auto critical = std::make_shared<MLP<double>>(rescaled);
    const auto after = diag::doctor<double>(*critical, p.x, p.loss);
    CHECK(after.verdict == diag::Verdict::vanishing);
    CHECK(after.gain_per_layer == Approx(d.gain_per_layer).epsilon(0.01));
}

TEST_CASE(
    "doctor: in a network with a module the theory does not model, the critical "
    "initialisation's effect is measured",
    "[diag][doctor]") {
    const Problem p;
    // 20 tanh layers at sigma_w2 = 0.3, then a layer norm: the Linear layers vanish as in a
    // plain network, but the layer norm takes the network out of the theory's reach.
    const auto build = [](double sigma_w2) {
        Rng rng(3);
        auto net = std::make_shared<Sequential<double>>();
        for (int l = 0; l < 20; ++l) {
            net->add(std::make_shared<Linear<double>>(
                width, width, rng,
                LinearOptions<double>{.weight_init = diag::gaussian_init<double>(sigma_w2),
                                      .bias_init = init::zeros()}));
            net->add(std::make_shared<Activation<double, Tanh>>());
        }
        net->add(std::make_shared<LayerNorm<double>>(width));
        return net;
    };
    auto net = build(0.3);
    const auto d = diag::doctor<double>(*net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.verdict == diag::Verdict::vanishing);
    CHECK(d.cause == diag::Cause::unmodelled_layers);
    CHECK(d.unmodelled == std::vector<std::string>{"40 (LayerNorm)"});
    REQUIRE_FALSE(d.remedies.empty());
    const auto& top = d.remedies.front();
    CHECK(top.kind == diag::RemedyKind::critical_init);
    CHECK(top.basis == "measured with the change made");
    CHECK(top.predicted_verdict == diag::Verdict::healthy);
    auto fixed = build(top.sigma_w2);
    const auto after = diag::doctor<double>(*fixed, p.x, p.loss);
    INFO("after: " << after.text());
    CHECK(after.verdict == diag::Verdict::healthy);
    CHECK(after.gain_per_layer == Approx(top.predicted_gain).epsilon(0.05));
}

TEST_CASE(
    "doctor: with the learning rate, a sharpness beyond 2/eta is the cause, and the "
    "sharpest layer is named",
    "[diag][doctor][curvature]") {
    // A small healthy tanh network: the gradient flows well, so only the curvature can object.
    auto net = mlp<double>({.widths = {6, 8, 8, 2}, .activation = Tanh{}, .seed = 5});
    const Matrix<double> x = normal(12, 6, 6);
    const auto y = TensorD::constant(normal(12, 2, 7));
    const diag::LossOf<double> loss = [&](const TensorD& out) { return mse_loss(out, y); };
    // The exact answer: the dense Hessian from n products, and its layers' diagonal blocks.
    Hessian<double> hessian(loss((*net)(TensorD::constant(x))), *net);
    const Index n = hessian.size();
    Matrix<double> dense(n, n);
    for (Index j = 0; j < n; ++j) dense.col(j) = hessian.product(Eigen::VectorXd::Unit(n, j));
    const auto top = [](const Matrix<double>& m) {
        return Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(m).eigenvalues().maxCoeff();
    };
    const double lambda = top(dense);
    std::string sharpest;
    double sharpest_value = -1e300;
    Index offset = 0;
    std::vector<double> block_values;
    for (const auto& block : diag::layer_blocks(*net)) {
        Index size = 0;
        for (const std::size_t i : block.tensors) size += hessian.tensors()[i].shape().size();
        block_values.push_back(top(dense.block(offset, offset, size, size)));
        if (block_values.back() > sharpest_value) {
            sharpest_value = block_values.back();
            sharpest = block.name;
        }
        offset += size;
    }
    const diag::DoctorOptions exact{
        .sharpness = true,
        .sharpness_lanczos = {.k = 1, .max_iterations = 400, .tolerance = 1e-10, .seed = 0}};

    const auto plain = diag::doctor<double>(*net, x, loss);
    CHECK(plain.cause == diag::Cause::none);
    CHECK(std::isnan(plain.sharpness));
    CHECK(plain.sharpest_layer.empty());
    CHECK(plain.text().find("sharpness") == std::string::npos);
    CHECK(diag::to_json(plain)["sharpness"].is_null());

    const auto measured = diag::doctor<double>(*net, x, loss, exact);
    INFO(measured.text());
    CHECK(measured.cause == diag::Cause::none);  // no learning rate: nothing to hold it against
    CHECK(measured.sharpness == Approx(lambda).epsilon(1e-7));
    CHECK(measured.sharpest_layer == sharpest);
    REQUIRE(measured.layers.size() == block_values.size());
    for (std::size_t l = 0; l < block_values.size(); ++l) {
        CHECK(measured.layers[l].sharpness == Approx(block_values[l]).epsilon(1e-7));
    }
    CHECK(measured.text().find("sharpness lambda_max") != std::string::npos);
    CHECK(measured.text().find("sharpest layer " + sharpest) != std::string::npos);

    // eta = 3/lambda: beyond 2/eta, the cause; eta = 1/lambda: within, healthy.
    auto unstable_options = exact;
    unstable_options.learning_rate = 3.0 / lambda;
    const auto unstable = diag::doctor<double>(*net, x, loss, unstable_options);
    INFO(unstable.text());
    CHECK(unstable.verdict == diag::Verdict::healthy);
    CHECK(unstable.cause == diag::Cause::unstable_step_size);
    CHECK(unstable.stability_limit == Approx(2.0 * lambda / 3.0));
    CHECK(unstable.evidence.find("exceeds 2/eta") != std::string::npos);
    CHECK(unstable.evidence.find("the sharpest layer is " + sharpest) != std::string::npos);
    REQUIRE(unstable.remedies.size() == 1);
    CHECK(unstable.remedies[0].kind == diag::RemedyKind::lower_learning_rate);
    CHECK(unstable.remedies[0].learning_rate == Approx(1.0 / lambda).epsilon(1e-7));
    CHECK(unstable.remedies[0].learning_rate < 2.0 / lambda);
    const nlohmann::json j = diag::to_json(unstable);
    CHECK(j["sharpness"].get<double>() == Approx(lambda).epsilon(1e-7));
    CHECK(j["sharpest_layer"] == sharpest);
    CHECK(j["cause"] == "learning rate beyond the stability limit");
    CHECK(j["layers"][0]["sharpness"].is_number());
    const std::string html = diag::doctor_html(unstable).html();
    CHECK(html.find("Cause: learning rate beyond the stability limit") != std::string::npos);
    CHECK(html.find("sharpest layer " + sharpest) != std::string::npos);
    CHECK(diag::doctor_html(plain).html().find("lambda_max") == std::string::npos);

    auto stable_options = exact;
    stable_options.learning_rate = 1.0 / lambda;
    const auto stable = diag::doctor<double>(*net, x, loss, stable_options);
    CHECK(stable.cause == diag::Cause::none);
    CHECK(stable.text().find("<= 2/eta") != std::string::npos);
    // A learning rate alone turns the measurement on.
    const auto by_rate = diag::doctor<double>(*net, x, loss, {.learning_rate = 3.0 / lambda});
    CHECK(by_rate.cause == diag::Cause::unstable_step_size);

    REQUIRE_THROWS_MATCHES(diag::doctor<double>(*net, x, loss, {.learning_rate = -0.1}),
                           value_error, MessageContains("learning_rate must be finite and >= 0"));
}

TEST_CASE(
    "doctor: a parameterless module that changes the signal is not modelled either, a "
    "container or an evaluation-mode dropout is, and the dropout's stream is put back",
    "[diag][doctor]") {
    const Problem p;
    // 20 tanh layers at sigma_w2 = 0.3 (they vanish, as the theory predicts), then a dropout,
    // a layer norm without parameters and a leaf of the user's own, in a container of theirs.
    const auto tanh_stack = [] {
        Rng rng(4);
        auto layers = std::make_shared<Sequential<double>>();
        for (int l = 0; l < 20; ++l) {
            layers->add(std::make_shared<Linear<double>>(
                width, width, rng,
                LinearOptions<double>{.weight_init = diag::gaussian_init<double>(0.3),
                                      .bias_init = init::zeros()}));
            layers->add(std::make_shared<Activation<double, Tanh>>());
        }
        return layers;
    };
    auto layers = tanh_stack();
    auto dropout = std::make_shared<Dropout<double>>(0.5, 9);
    layers->add(dropout);
    layers->add(std::make_shared<LayerNorm<double>>(width, LayerNormOptions{.affine = false}));
    layers->add(std::make_shared<app::Halve>());
    app::Chain net(layers);

    const std::string stream = dropout->extra_state();
    const auto d = diag::doctor<double>(net, p.x, p.loss);
    INFO(d.text());
    CHECK(d.unmodelled == std::vector<std::string>{"inner.40 (Dropout)", "inner.41 (LayerNorm)",
                                                   "inner.42 (Halve)"});
    CHECK(d.cause == diag::Cause::unmodelled_layers);
    // The pass drew dropout masks; the doctor put the stream back, so training draws the masks
    // it would have drawn without the diagnosis.
    CHECK(dropout->extra_state() == stream);

    // In evaluation mode the dropout is the identity, which the theory covers.
    net.train(false);
    CHECK(diag::doctor<double>(net, p.x, p.loss).unmodelled ==
          std::vector<std::string>{"inner.41 (LayerNorm)", "inner.42 (Halve)"});

    // Without those modules the user's container is a plain network, and the theory explains it.
    auto plain_layers = tanh_stack();
    plain_layers->add(std::make_shared<Dropout<double>>(0.0));
    app::Chain plain(plain_layers);
    const auto theory = diag::doctor<double>(plain, p.x, p.loss);
    INFO(theory.text());
    CHECK(theory.unmodelled.empty());
    CHECK(theory.cause == diag::Cause::weight_scale);
    REQUIRE_FALSE(theory.remedies.empty());
    CHECK(theory.remedies.front().basis == "mean-field theory");
}
