// Layers and modules: names, modes, gradient checks of every layer (never as the first layer,
// so that its input gradient is exercised), PyTorch agreement for a batch-norm stack, and the
// errors a user meets.
#include "support/reference.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

using namespace gradscope;
using namespace gradscope::testing;

namespace {

// Every parameter of `net` plus a leaf input, for gradcheck; f applies the net to input 0.
Inputs with_parameters(const TensorD& x, const Module<double>& net) {
    Inputs inputs{x};
    for (const auto& p : net.parameters()) inputs.push_back(p);
    return inputs;
}

template <class M>
void gradcheck_module(M& net, const TensorD& x) {
    require_gradcheck([&net](const Inputs& in) { return net(in[0]); }, with_parameters(x, net));
}

std::shared_ptr<Sequential<double>> stack(
    std::initializer_list<std::shared_ptr<Module<double>>> layers) {
    auto s = std::make_shared<Sequential<double>>();
    for (const auto& layer : layers) s->add(layer);
    return s;
}

}  // namespace

TEST_CASE("mlp names parameters and buffers with stable dotted paths", "[layers][module]") {
    auto net =
        mlp<double>({.widths = {3, 8, 8, 2}, .norm = Normalization::batch, .residual = true});
    std::vector<std::string> names;
    for (const auto& [name, p] : net->named_parameters()) names.push_back(name);
    CHECK(names == std::vector<std::string>{
                       "layers.0.linear.weight", "layers.0.linear.bias", "layers.0.bn.weight",
                       "layers.0.bn.bias", "layers.1.branch.bn.weight", "layers.1.branch.bn.bias",
                       "layers.1.branch.linear.weight", "layers.1.branch.linear.bias",
                       "layers.2.linear.weight", "layers.2.linear.bias"});
    std::vector<std::string> buffers;
    for (const auto& [name, b] : net->named_buffers()) buffers.push_back(name);
    CHECK(buffers.front() == "layers.0.bn.running_mean");
    CHECK(buffers.size() == 6);
    CHECK(net->parameter_count() == 3 * 8 + 8 + 16 + 16 + 64 + 8 + 16 + 2);
    auto linears = net->linear_layers();
    REQUIRE(linears.size() == 3);
    CHECK(linears[1].first == "layers.1.branch.linear");
    CHECK(linears[1].second->path() == "layers.1.branch.linear");
    // named_modules() walks the tree depth first; a const module walks it the same way.
    std::vector<std::string> paths;
    for (const auto& [path, module] : net->named_modules()) paths.push_back(path);
    CHECK(paths == std::vector<std::string>{
                       "", "layers", "layers.0", "layers.0.linear", "layers.0.bn", "layers.0.act",
                       "layers.1", "layers.1.branch", "layers.1.branch.bn", "layers.1.branch.act",
                       "layers.1.branch.linear", "layers.2", "layers.2.linear"});
    const Module<double>& const_net = *net;
    std::vector<std::string> const_paths;
    for (const auto& [path, module] : const_net.named_modules()) {
        const_paths.push_back(path);
        CHECK(module->path() == path);
    }
    CHECK(const_paths == paths);
}

TEST_CASE("train and eval reach every descendant", "[layers][module]") {
    auto net = mlp<double>({.widths = {3, 8, 8, 2}, .norm = Normalization::batch, .dropout = 0.5});
    net->eval();
    for (const auto& [path, m] : net->named_modules()) CHECK_FALSE(m->is_training());
    net->train();
    for (const auto& [path, m] : net->named_modules()) CHECK(m->is_training());
}

TEST_CASE("Linear with and without bias passes a gradient check", "[layers][gradcheck]") {
    Rng rng(1);
    auto with_bias = stack({std::make_shared<Linear<double>>(3, 4, rng),
                            std::make_shared<Activation<double, Tanh>>(),
                            std::make_shared<Linear<double>>(4, 2, rng)});
    gradcheck_module(*with_bias, param(5, 3, 2));
    auto without =
        stack({std::make_shared<Linear<double>>(3, 4, rng, LinearOptions<double>{.bias = false}),
               std::make_shared<Activation<double, Sigmoid>>(),
               std::make_shared<Linear<double>>(4, 2, rng, LinearOptions<double>{.bias = false})});
    CHECK(without->parameters().size() == 2);
    gradcheck_module(*without, param(5, 3, 3));
}

TEST_CASE("BatchNorm1d after a Linear passes a gradient check in train and eval mode",
          "[layers][gradcheck]") {
    Rng rng(4);
    auto bn = std::make_shared<BatchNorm1d<double>>(5);
    auto net = stack({std::make_shared<Linear<double>>(3, 5, rng), bn,
                      std::make_shared<Activation<double, Tanh>>(),
                      std::make_shared<Linear<double>>(5, 2, rng)});
    // Non-trivial gamma and beta, so their gradients are not symmetric special cases.
    bn->weight().data() = uniform(1, 5, 5, 0.5, 1.5);
    bn->bias().data() = normal(1, 5, 6, 0.2);
    const auto x = param(6, 3, 7);
    gradcheck_module(*net, x);
    // Give the running statistics values that are not the defaults, then check eval mode.
    for (int i = 0; i < 3; ++i) (void)(*net)(TensorD::constant(normal(6, 3, 8 + i)));
    net->eval();
    gradcheck_module(*net, x);
}

TEST_CASE("LayerNorm and Dropout pass gradient checks", "[layers][gradcheck]") {
    Rng rng(9);
    auto ln_net =
        stack({std::make_shared<Linear<double>>(3, 5, rng), std::make_shared<LayerNorm<double>>(5),
               std::make_shared<Activation<double, GELU>>(),
               std::make_shared<Linear<double>>(5, 2, rng)});
    std::dynamic_pointer_cast<LayerNorm<double>>(ln_net->children()[1].second)->weight().data() =
        uniform(1, 5, 10, 0.5, 1.5);
    gradcheck_module(*ln_net, param(4, 3, 11));

    // A fresh Dropout per evaluation with a fixed seed: the same mask every time.
    auto lin = std::make_shared<Linear<double>>(3, 6, rng);
    Inputs inputs{param(4, 3, 12), lin->weight(), lin->bias()};
    require_gradcheck(
        [&](const Inputs& in) {
            Dropout<double> drop(0.3, 99);
            return tanh(drop((*lin)(in[0])));
        },
        inputs);
}

TEST_CASE("Residual blocks, with identity and projected skips, pass gradient checks",
          "[layers][gradcheck]") {
    Rng rng(13);
    auto same =
        std::make_shared<Residual<double>>(stack({std::make_shared<Activation<double, Tanh>>(),
                                                  std::make_shared<Linear<double>>(4, 4, rng)}),
                                           ResidualOptions{.branch_scale = 0.5});
    auto net = stack({std::make_shared<Linear<double>>(3, 4, rng), same});
    gradcheck_module(*net, param(5, 3, 14));

    auto widen = std::make_shared<Residual<double>>(
        stack({std::make_shared<Linear<double>>(4, 6, rng)}), 4, 6, rng);
    CHECK(widen->named_parameters().back().first == "projection.weight");
    auto net2 = stack({std::make_shared<Linear<double>>(3, 4, rng), widen});
    gradcheck_module(*net2, param(5, 3, 15));
}

TEST_CASE("a zero-initialised residual branch starts as the identity", "[layers]") {
    Rng rng(16);
    Residual<double> block(stack({std::make_shared<Activation<double, ReLU>>(),
                                  std::make_shared<Linear<double>>(4, 4, rng)}),
                           ResidualOptions{.zero_init_last = true});
    const auto x = TensorD::constant(normal(3, 4, 17));
    CHECK(all_close(block(x).value(), x.value(), 0.0, 0.0));
}

TEST_CASE("a mismatched residual branch is a shape error that names the module",
          "[layers][errors]") {
    Rng rng(18);
    auto net = stack(
        {std::make_shared<Residual<double>>(stack({std::make_shared<Linear<double>>(4, 5, rng)}))});
    CHECK_THROWS_WITH(
        (*net)(TensorD::constant(normal(2, 4, 19))),
        Catch::Contains("Residual") && Catch::Contains("[2x5]") && Catch::Contains("projection"));
}

TEST_CASE("an unrolled RNN passes a gradient check through time", "[layers][rnn][gradcheck]") {
    Rng rng(20);
    RNN<double> rnn(2, 3, rng);
    const auto x = param(2, 2 * 4, 21);  // batch 2, four steps of width 2, packed
    gradcheck_module(rnn, x);
}

TEST_CASE("with recurrent weight rho*Q and identity activation, |dh_T/dh_0| = rho^T",
          "[layers][rnn]") {
    const Index hidden = 8, steps = 30;
    for (double rho : {0.9, 1.0, 1.1}) {
        Rng rng(22);
        RNN<double, Identity> rnn(1, hidden, rng);
        Matrix<double> q(hidden, hidden);
        init::orthogonal()(MatrixView<double>(q.data(), hidden, hidden), hidden, hidden, rng);
        rnn.cell().weight_hh().data() = rho * q;
        auto h0 = TensorD::parameter(Matrix<double>::Zero(1, hidden));
        std::vector<TensorD> xs;
        for (Index t = 0; t < steps; ++t) xs.push_back(TensorD::constant(normal(1, 1, 23 + t)));
        auto states = rnn.unroll(xs, h0);
        // Any unit seed: an orthogonal Q^T times rho^T keeps its norm exactly rho^T.
        Matrix<double> seed = normal(1, hidden, 24);
        seed /= seed.norm();
        states.back().backward(seed);
        INFO("rho = " << rho);
        CHECK(h0.grad().norm() == Approx(std::pow(rho, steps)).epsilon(1e-12));
    }
}

namespace {

// Three SGD steps in training mode and one evaluation pass of tools/make_nn_reference.py's
// Linear->BatchNorm1d->ReLU->Linear stack, with the batch norm's options of the case. Same
// formulas in double as PyTorch's, in another summation order: 1e-10 relative leaves room for
// that and for three steps of it, while a wrong momentum factor (1/n against 0.1) or the
// running statistics used in place of the batch's moves the outputs in their second digit.
void check_bn_stack(const std::string& name, const BatchNormOptions& options) {
    ReferenceCase c("nn_reference.json", name);
    Rng rng(0);
    auto l1 = std::make_shared<Linear<double>>(4, 6, rng);
    auto bn = std::make_shared<BatchNorm1d<double>>(6, options);
    auto l2 = std::make_shared<Linear<double>>(6, 3, rng);
    auto net = stack({l1, bn, std::make_shared<Activation<double, ReLU>>(), l2});
    std::map<std::string, TensorD> named{{"l1.weight", l1->weight()}, {"l1.bias", l1->bias()},
                                         {"bn.weight", bn->weight()}, {"bn.bias", bn->bias()},
                                         {"l2.weight", l2->weight()}, {"l2.bias", l2->bias()}};
    for (auto& [key, p] : named) p.data() = c.input(key);

    for (int step = 0; step < 3; ++step) {
        const std::string s = std::to_string(step);
        auto out = (*net)(TensorD::constant(c.input("x" + s)));
        auto loss = mse_loss(out, TensorD::constant(c.input("y" + s)));
        c.check_output("loss" + s, loss);
        net->zero_grad();
        loss.backward();
        if (step == 0) {
            c.check_output("out0", out);
            for (auto& [key, p] : named) {
                INFO("step 0 gradient of " << key);
                CHECK(all_close(p.grad(), c.grad("step0." + key), 1e-10, 1e-12));
            }
        }
        for (auto& [key, p] : named) p.data() -= 0.1 * p.grad();
    }
    if (options.track_running_stats) {
        c.check_output("running_mean", bn->running_mean().value());
        c.check_output("running_var", bn->running_var().value());
        c.check_output("num_batches_tracked", bn->num_batches_tracked().value());
    } else {
        CHECK(net->named_buffers().empty());  // as PyTorch's state_dict: no running buffers
    }
    for (auto& [key, p] : named) c.check_output("after." + key, p.value());

    net->eval();
    auto x = TensorD::parameter(c.input("x_eval"));
    auto out = (*net)(x);
    auto loss = sum(out * TensorD::constant(c.input("r_eval")));
    c.check_output("eval.out", out);
    net->zero_grad();
    loss.backward();
    CHECK(all_close(x.grad(), c.grad("eval.x"), 1e-10, 1e-12));
    for (auto& [key, p] : named) {
        INFO("eval gradient of " << key);
        CHECK(all_close(p.grad(), c.grad("eval." + key), 1e-10, 1e-12));
    }
}

}  // namespace

TEST_CASE("a Linear->BatchNorm1d->ReLU->Linear stack matches PyTorch in train and eval",
          "[layers][reference]") {
    check_bn_stack("bn_stack", {});
}

TEST_CASE("BatchNorm1d with momentum none keeps PyTorch's cumulative average",
          "[layers][reference]") {
    check_bn_stack("bn_stack_cumulative", {.momentum = std::nullopt});
}

TEST_CASE("BatchNorm1d without running statistics normalises by the batch in eval as PyTorch",
          "[layers][reference]") {
    check_bn_stack("bn_stack_batch_stats", {.track_running_stats = false});
}

TEST_CASE("BatchNorm1d with momentum none averages every batch equally", "[layers]") {
    // After n batches the running mean is the plain average of the n batch means, whatever the
    // order: exact in double up to rounding of a few additions (1e-14 relative).
    BatchNorm1d<double> bn(3, {.momentum = std::nullopt});
    Matrix<double> sum_of_means = Matrix<double>::Zero(1, 3);
    for (int i = 0; i < 5; ++i) {
        const Matrix<double> x = normal(4, 3, 40 + static_cast<std::uint64_t>(i), 1.0 + i);
        (void)bn(TensorD::constant(x));
        sum_of_means += x.colwise().mean();
    }
    CHECK(all_close(bn.running_mean().value(), sum_of_means / 5.0, 1e-14, 1e-15));
    CHECK(bn.num_batches_tracked().value()(0, 0) == 5.0);
    CHECK(bn.extra_repr().find("momentum=none") != std::string::npos);
}

TEST_CASE("BatchNorm1d without running statistics has no buffers to ask for", "[layers][errors]") {
    BatchNorm1d<double> bn(3, {.track_running_stats = false});
    REQUIRE_THROWS_MATCHES(bn.running_mean(), value_error,
                           MessageContains({"running_mean", "track_running_stats = false"}));
    REQUIRE_THROWS_AS(bn.num_batches_tracked(), value_error);
    CHECK(bn.extra_repr().find("track_running_stats=false") != std::string::npos);
    // eval still needs a batch to take statistics from
    bn.eval();
    CHECK_THROWS_AS(bn(TensorD::constant(normal(1, 3, 45))), value_error);
}

namespace {
// Replicas within one process: `copies` replicas that all hold the same rows, so that a sum over
// them is the local value times `copies`.
class IdenticalReplicas final : public BatchReducer<double> {
public:
    explicit IdenticalReplicas(double copies) : copies_(copies) {}
    void sum(std::span<double> values) override {
        for (double& v : values) v *= copies_;
        ++calls;
    }
    int calls = 0;

private:
    double copies_;
};
}  // namespace

TEST_CASE(
    "BatchNorm1d synchronised over replicas: one replica is plain batch norm, and passes a "
    "gradient check",
    "[layers]") {
    const Matrix<double> x = normal(6, 3, 71, 2.0);
    BatchNorm1d<double> plain(3), synced(3);
    auto one = std::make_shared<IdenticalReplicas>(1.0);
    synced.synchronize_statistics(one);
    CHECK(synced.synchronized());
    CHECK(synced.extra_repr().find("synchronized") != std::string::npos);
    auto xp = TensorD::parameter(x), xs = TensorD::parameter(x);
    const Matrix<double> r = normal(6, 3, 72);
    sum(plain(xp) * TensorD::constant(r)).backward();
    sum(synced(xs) * TensorD::constant(r)).backward();
    CHECK(one->calls == 3);  // two in forward, one in backward
    CHECK(all_close(xs.grad(), xp.grad(), 1e-14, 1e-15));
    CHECK(all_close(synced.weight().grad(), plain.weight().grad(), 1e-14, 1e-15));
    CHECK(all_close(synced.running_var().value(), plain.running_var().value(), 1e-15, 1e-15));

    BatchNorm1d<double> checked(3);
    checked.synchronize_statistics(std::make_shared<IdenticalReplicas>(1.0));
    require_gradcheck([&](const Inputs& in) { return sum(checked(in[0]) * TensorD::constant(r)); },
                      {param(x)});

    // Second order has no rule for it, and says which op.
    Hessian<double> hessian(sum(synced(TensorD::constant(x)) * TensorD::constant(r)), synced);
    const Eigen::VectorXd v = Eigen::VectorXd::Ones(hessian.size());
    REQUIRE_THROWS_MATCHES(hessian.product(v), graph_error,
                           MessageContains({"sync_batch_norm", "no second-order rule"}));
}

TEST_CASE("BatchNorm1d synchronised over replicas normalises by the whole batch's statistics",
          "[layers]") {
    // Two replicas with the same 6 rows are one batch of 12 rows, each row twice: the same mean,
    // the same biased variance, so the same outputs and input gradients, but running statistics
    // from 12 rows (unbiased by 12/11, not 6/5).
    const Matrix<double> x = normal(6, 3, 73, 2.0);
    BatchNorm1d<double> plain(3), synced(3), twelve(3);
    synced.synchronize_statistics(std::make_shared<IdenticalReplicas>(2.0));
    auto xp = TensorD::parameter(x), xs = TensorD::parameter(x);
    const Matrix<double> r = normal(6, 3, 74);
    sum(plain(xp) * TensorD::constant(r)).backward();
    const TensorD ys = synced(xs);
    sum(ys * TensorD::constant(r)).backward();
    CHECK(all_close(ys.value(), plain(TensorD::constant(x)).value(), 1e-14, 1e-15));
    CHECK(all_close(xs.grad(), xp.grad(), 1e-13, 1e-15));
    Matrix<double> stacked(12, 3);
    stacked << x, x;
    (void)twelve(TensorD::constant(stacked));
    CHECK(all_close(synced.running_var().value(), twelve.running_var().value(), 1e-14, 1e-15));
    CHECK(!all_close(synced.running_var().value(), plain.running_var().value(), 1e-6, 0.0));
}

TEST_CASE("a synchronised batch norm whose reducer is gone by backward says so",
          "[layers][errors]") {
    auto bn = std::make_shared<BatchNorm1d<double>>(3);
    bn->synchronize_statistics(std::make_shared<IdenticalReplicas>(1.0));
    auto x = TensorD::parameter(normal(4, 3, 75));
    TensorD loss = sum((*bn)(x));
    bn.reset();  // the module, and with it the only owner of its reducer
    REQUIRE_THROWS_MATCHES(loss.backward(), graph_error,
                           MessageContains("reducer that no longer exists"));
}

TEST_CASE("LayerNorm matches PyTorch", "[layers][reference]") {
    ReferenceCase c("nn_reference.json", "layer_norm");
    auto y = layer_norm(c.in("x"), c.in("weight"), c.in("bias"), 1e-5);
    c.check_output("y", y);
    sum(y * c.in("r")).backward();
    c.check_grads();
}

TEST_CASE("BatchNorm1d refuses to train on a batch of one row", "[layers][errors]") {
    BatchNorm1d<double> bn(4);
    CHECK_THROWS_AS(bn(TensorD::constant(normal(1, 4, 25))), value_error);
    CHECK_THROWS_WITH(bn(TensorD::constant(normal(1, 4, 25))),
                      Catch::Contains("more than one") && Catch::Contains("[1x4]"));
    bn.eval();
    CHECK_NOTHROW(bn(TensorD::constant(normal(1, 4, 25))));
}

TEST_CASE("Dropout zeroes about p of the units, rescales the rest, and is the identity in eval",
          "[layers]") {
    Dropout<double> drop(0.25, 7);
    const auto x = TensorD::constant(Matrix<double>::Ones(200, 100));
    const Matrix<double> y = drop(x).value();
    const double zeros = static_cast<double>((y.array() == 0.0).count());
    // Binomial(20000, 0.25): standard deviation ~61; 5 sigma is ~306.
    CHECK(std::abs(zeros - 5000.0) < 306.0);
    CHECK((y.array() == 0.0 || (y.array() - 1.0 / 0.75).abs() < 1e-15).all());
    Dropout<double> same(0.25, 7);
    CHECK(same(x).value() == y);
    drop.eval();
    CHECK(drop(x).value() == x.value());
    CHECK_THROWS_AS(Dropout<double>(1.5), value_error);
}

TEST_CASE("a wrong input width names the module path and both shapes", "[layers][errors]") {
    auto net = mlp<float>({.widths = {4, 8, 2}});
    CHECK_THROWS_AS((*net)(TensorF::constant(Matrix<float>::Zero(3, 5))), shape_error);
    CHECK_THROWS_WITH((*net)(TensorF::constant(Matrix<float>::Zero(3, 5))),
                      Catch::Contains("layers.0.linear") && Catch::Contains("[3x5]") &&
                          Catch::Contains("[batch x 4]"));
}

TEST_CASE("a NaN in the input is trapped, with its module, when asked",
          "[layers][errors][anomaly]") {
    auto net = mlp<double>({.widths = {3, 4, 2}});
    Matrix<double> x = normal(2, 3, 26);
    x(1, 2) = std::numeric_limits<double>::quiet_NaN();
    CHECK_NOTHROW((*net)(TensorD::constant(x)));
    AnomalyGuard anomaly;
    CHECK_THROWS_WITH((*net)(TensorD::constant(x)),
                      Catch::Contains("'linear'") && Catch::Contains("layers.0.linear"));
}

TEST_CASE("module hooks see inputs, outputs and output gradients, and can be removed",
          "[layers][hooks]") {
    auto net = mlp<double>({.widths = {3, 5, 2}, .activation = Tanh{}});
    auto linears = net->linear_layers();
    Linear<double>& first = *linears[0].second;
    Matrix<double> seen_out, seen_grad;
    int param_calls = 0;
    Matrix<double> weight_grad_at_hook;
    auto fh = first.register_forward_hook(
        [&](Module<double>&, const TensorD&, const TensorD& out) { seen_out = out.value(); });
    auto gh = first.register_output_grad_hook(
        [&](Module<double>&, MatrixView<double> g) { seen_grad = g; });
    auto ph = first.register_param_grad_hook([&](Module<double>& m) {
        ++param_calls;
        weight_grad_at_hook = m.own_parameters()[0].second.grad();
    });
    const auto x = TensorD::constant(normal(4, 3, 27));
    auto z = first(x);
    z.retain_grad();
    auto loss = sum(square((*net->linear_layers()[1].second)(tanh(z))));
    loss.backward();
    CHECK(all_close(seen_out, z.value(), 0.0, 0.0));
    // The hook saw exactly dL/dz, the gradient reaching the layer's pre-activation output.
    CHECK(all_close(seen_grad, z.grad(), 0.0, 0.0));
    CHECK(param_calls == 1);
    CHECK(all_close(weight_grad_at_hook, first.weight().grad(), 0.0, 0.0));
    CHECK(fh.remove());
    CHECK(gh.remove());
    CHECK(ph.remove());
    seen_grad.resize(0, 0);
    net->zero_grad();
    sum((*net)(x)).backward();
    CHECK(seen_grad.size() == 0);
    CHECK(param_calls == 1);
}

TEST_CASE("an output-gradient hook on a container and on its last child both fire",
          "[layers][hooks]") {
    auto net = mlp<double>({.widths = {3, 4, 2}});
    auto& last = *net->linear_layers().back().second;
    int outer = 0, inner = 0;
    net->register_output_grad_hook([&](Module<double>&, MatrixView<double>) { ++outer; });
    last.register_output_grad_hook([&](Module<double>&, MatrixView<double>) { ++inner; });
    sum((*net)(TensorD::constant(normal(2, 3, 28)))).backward();
    CHECK(outer == 1);
    CHECK(inner == 1);
}

TEST_CASE("mlp without a type argument builds a float network", "[layers][module]") {
    auto net = mlp({.widths = {3, 4, 2}, .activation = Tanh{}, .seed = 1});
    static_assert(std::is_same_v<decltype(net), std::shared_ptr<MLP<float>>>);
    const TensorF out = (*net)(TensorF::constant(Matrix<float>::Ones(5, 3)));
    CHECK(out.rows() == 5);
    CHECK(out.cols() == 2);
}

TEST_CASE("mlp's options compile in the README's order, and a hidden layer is built in it",
          "[layers][module]") {
    // Every field, in the order the README lists them: designated initialisers must follow the
    // declaration order, so this stops compiling if the two drift apart.
    auto net = mlp<double>({.widths = {3, 4, 2},
                            .activation = Tanh{},
                            .init = init::xavier_normal(),
                            .bias_init = init::zeros(),
                            .norm = Normalization::batch,
                            .residual = false,
                            .residual_scale = 1.0,
                            .zero_init_residual = false,
                            .dropout = 0.1,
                            .bias = true,
                            .seed = 1});
    // A hidden layer: Linear, then the normalisation, the activation and the dropout.
    std::vector<std::string> hidden;
    for (const auto& [path, module] : net->named_modules()) {
        if (path.starts_with("layers.0.")) hidden.push_back(path);
    }
    CHECK(hidden == std::vector<std::string>{"layers.0.linear", "layers.0.bn", "layers.0.act",
                                             "layers.0.dropout"});
}

TEST_CASE("mlp validates its options", "[layers][errors]") {
    CHECK_THROWS_AS(mlp<double>({.widths = {3}}), value_error);
    CHECK_THROWS_WITH(mlp<double>({.widths = {3, 0, 2}}), Catch::Contains("widths[1]"));
    CHECK_THROWS_AS(mlp<double>({.widths = {3, 2}, .dropout = 1.0}), value_error);
    CHECK_THROWS_WITH(mlp<double>({.widths = {3, 2}, .dropout = std::nan("")}),
                      Catch::Contains("dropout must be in [0, 1)"));
    // A value outside the enumeration (cast from an int read from a file, say) is refused by
    // name, not built as no normalisation.
    CHECK_THROWS_WITH(mlp<double>({.widths = {3, 4, 2}, .norm = static_cast<Normalization>(7)}),
                      Catch::Contains("7 is not a Normalization"));
    // Each choice builds its layer under its stable name; none and 0 build nothing.
    auto layer_norm = mlp<double>({.widths = {3, 4, 2}, .norm = Normalization::layer});
    CHECK(layer_norm->layers()[0].type_name() == "Sequential");
    std::vector<std::string> names;
    for (const auto& [path, module] : layer_norm->named_modules()) names.push_back(path);
    CHECK(std::count(names.begin(), names.end(), "layers.0.ln") == 1);
    auto plain = mlp<double>({.widths = {3, 4, 2}, .norm = Normalization::none, .dropout = 0.0});
    CHECK(plain->layers()[0].children().size() == 2);  // linear, act
    // `.residual` reads back as written; false builds plain blocks where true builds Residuals.
    const MlpOptions<double> residual{.widths = {3, 4, 4, 2}, .residual = true};
    CHECK(residual.residual == true);
    CHECK_FALSE(MlpOptions<double>{.widths = {3, 2}, .residual = false}.residual);
    CHECK(mlp<double>(residual)->layers()[1].type_name() == "Residual");
    CHECK(mlp<double>({.widths = {3, 4, 4, 2}, .residual = false})->layers()[1].type_name() ==
          "Sequential");
}

TEST_CASE("copy_state copies every parameter and buffer by name, or nothing", "[layers][copy]") {
    const MlpOptions<double> options{
        .widths = {4, 6, 6, 3}, .norm = Normalization::batch, .residual = true, .seed = 1};
    auto source = mlp<double>(options);
    const TensorD x = TensorD::constant(normal(8, 4, 3));
    (void)(*source)(x);  // training mode: moves the batch norms' running statistics
    auto other = options;
    other.seed = 2;
    auto target = mlp<double>(other);
    copy_state(*source, *target);
    source->eval();
    target->eval();
    CHECK((*target)(x).value() == (*source)(x).value());  // the running statistics came too

    // Into float: the same network, rounded.
    auto as_float = mlp<float>(
        {.widths = {4, 6, 6, 3}, .norm = Normalization::batch, .residual = true, .seed = 3});
    copy_state(*source, *as_float);
    as_float->eval();
    const Matrix<double> rounded =
        (*as_float)(TensorF::constant(x.value().cast<float>())).value().cast<double>();
    CHECK(rounded.isApprox((*source)(x).value(), 1e-5));

    // A different architecture: refused, naming the tensor, and the target is untouched.
    auto wider = mlp<double>({.widths = {4, 7, 6, 3}, .seed = 4});
    const Matrix<double> before = wider->named_parameters().front().second.value();
    REQUIRE_THROWS_MATCHES(copy_state(*mlp<double>({.widths = {4, 6, 6, 3}, .seed = 5}), *wider),
                           shape_error,
                           MessageContains({"copy_state", "layers.0", "[6x4]", "[7x4]"}));
    CHECK(wider->named_parameters().front().second.value() == before);
    REQUIRE_THROWS_MATCHES(copy_state(*source, *mlp<double>({.widths = {4, 6, 6, 3}, .seed = 6})),
                           value_error, MessageContains({"copy_state", "has no namesake"}));
}
