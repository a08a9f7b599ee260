// Layer-sequential unit-variance initialisation (Mishkin & Matas 2016, "All you need is a good
// init"): orthogonal weights, then each Linear layer in the order the network calls them is
// rescaled until its output has variance 1 on a batch of real inputs (the variance of each
// output unit over the batch, averaged over the units). Where the mean-field
// initialisers assume Gaussian inputs and a known activation, LSUV measures: it works for any
// activation, with batch norm and residual blocks present, and for the data the network sees.
//
//     const auto layers = init::lsuv(*net, train_x.topRows(256));
//     for (const auto& l : layers) std::cout << l.name << ": " << l.iterations << " rescalings\n";
//
// The batch runs with the network in eval mode (no dropout, batch norm uses and keeps its
// running statistics) and without recording a graph; the network's mode is restored afterwards.
// Forward hooks registered on the network see every pass.
#pragma once

#include "../core/errors.hpp"
#include "../core/grad_mode.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "module.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

namespace gradscope::init {

struct LsuvOptions {
    double tolerance = 0.1;        // done when |Var - 1| <= tolerance (Mishkin & Matas: 0.1)
    int max_iters = 10;            // rescalings per layer before giving up
    bool orthogonal_first = true;  // start from orthogonal weights (gain 1), as the paper does
    std::uint64_t seed = 0;        // of the orthogonal weights
};

struct LsuvLayer {
    std::string name;       // the Linear's path, "layers.3.linear" (module_label)
    int iterations = 0;     // rescalings it took (0: already within tolerance)
    double variance = 0.0;  // its output's variance over the batch at the end, averaged over units
};

namespace detail {

// The variance over the batch of each unit (column), averaged over the units, in double. Per
// unit rather than over all entries, so that a layer whose input is the same for every row
// (its output is its bias) has variance 0 whatever its bias is. A variance below 1e-20 of the
// entries' mean square is rounding of identical rows, and is 0.
template <class T>
double batch_variance(ConstMatrixView<T> m) {
    using Wide = DependentDouble<T>;
    const Eigen::Matrix<Wide, Eigen::Dynamic, Eigen::Dynamic> x = m.template cast<Wide>();
    const Eigen::Matrix<Wide, 1, Eigen::Dynamic> mean = x.colwise().mean();
    const double variance =
        (x.rowwise() - mean).array().square().sum() / static_cast<double>(x.size());
    const double mean_square = x.array().square().mean();
    return variance <= 1e-20 * mean_square ? 0.0 : variance;
}

// The network's training mode, restored on the way out (also when LSUV throws).
template <class T>
class EvalModeFor {
public:
    explicit EvalModeFor(Module<T>& net) : net_(net), was_training_(net.is_training()) {
        net_.eval();
    }
    EvalModeFor(const EvalModeFor&) = delete;
    EvalModeFor& operator=(const EvalModeFor&) = delete;
    ~EvalModeFor() { net_.train(was_training_); }

private:
    Module<T>& net_;
    bool was_training_;
};

}  // namespace detail

// Initialises every Linear layer of `net` by LSUV on `batch` (rows = samples). Returns one entry
// per Linear layer, in call order. value_error when the batch is empty or not finite, the network
// has no Linear layer, or a layer cannot reach unit variance: its output is constant on the batch
// (a dead ReLU layer before it, or identical rows), or it is still off after max_iters rescalings
// (its bias alone has a variance above 1 + tolerance, say).
template <class T>
std::vector<LsuvLayer> lsuv(Module<T>& net, const std::type_identity_t<Matrix<T>>& batch,
                            const LsuvOptions& options = {}) {
    const char* who = "lsuv";
    gradscope::detail::check_positive(who, "tolerance", options.tolerance);
    if (options.max_iters < 1) {
        gradscope::detail::throw_value(
            who, "max_iters must be at least 1, got " + std::to_string(options.max_iters));
    }
    if (batch.rows() == 0 || batch.cols() == 0) {
        gradscope::detail::throw_value(who, "the batch is empty (" + std::to_string(batch.rows()) +
                                                " x " + std::to_string(batch.cols()) + ")");
    }
    if (batch.rows() < 2) {
        gradscope::detail::throw_value(
            who,
            "a variance over the batch needs at least 2 rows, got " + std::to_string(batch.rows()));
    }
    if (!batch.allFinite()) gradscope::detail::throw_value(who, "the batch has a non-finite value");

    std::vector<std::pair<std::string, Linear<T>*>> linears;
    for (const auto& [path, module] : net.named_modules()) {
        if (auto* layer = dynamic_cast<Linear<T>*>(module)) linears.emplace_back(path, layer);
    }
    if (linears.empty()) gradscope::detail::throw_value(who, "the network has no Linear layer");

    if (options.orthogonal_first) {
        Rng rng(options.seed);
        for (auto& [path, layer] : linears) {
            Tensor<T>& w = layer->weight();
            Matrix<T> value(w.shape().rows, w.shape().cols);
            orthogonal(1.0)(MatrixView<T>(value.data(), value.rows(), value.cols()),
                            layer->in_features(), layer->out_features(), rng);
            w.assign(value);
        }
    }

    const detail::EvalModeFor<T> eval_mode(net);
    const NoGradGuard no_graph;
    const Tensor<T> input = Tensor<T>::constant(batch);

    // The order the network calls its Linear layers, and each one's output variance, per pass.
    std::vector<const Module<T>*> call_order;
    std::vector<double> variance_of(linears.size(), 0.0);
    ScopedHooks hooks;
    for (std::size_t k = 0; k < linears.size(); ++k) {
        hooks.add(linears[k].second->register_forward_hook(
            [&, k](Module<T>& m, const Tensor<T>&, const Tensor<T>& output) {
                variance_of[k] = detail::batch_variance<T>(output.value());
                if (std::find(call_order.begin(), call_order.end(), &m) == call_order.end())
                    call_order.push_back(&m);
            }));
    }
    net(input);
    std::vector<std::size_t> order;
    for (const Module<T>* m : call_order) {
        for (std::size_t k = 0; k < linears.size(); ++k) {
            if (linears[k].second == m) order.push_back(k);
        }
    }

    std::vector<LsuvLayer> out;
    for (const std::size_t k : order) {
        const std::string name = module_label(linears[k].first);
        LsuvLayer result{name, 0, 0.0};
        for (;;) {
            net(input);
            const double variance = variance_of[k];
            result.variance = variance;
            if (!std::isfinite(variance)) {
                gradscope::detail::throw_value(
                    who, "the output of " + name + " has a non-finite variance on the batch");
            }
            if (variance == 0.0) {
                gradscope::detail::throw_value(
                    who, "the output of " + name +
                             " has variance 0 on the batch: every row it gets is the same (a dead "
                             "ReLU layer before it, or identical rows in the batch)");
            }
            if (std::abs(variance - 1.0) <= options.tolerance) break;
            if (result.iterations == options.max_iters) {
                gradscope::detail::throw_value(
                    who, "the output of " + name + " still has variance " +
                             gradscope::detail::number_text(variance) + " after " +
                             std::to_string(options.max_iters) +
                             " rescalings (its bias alone may exceed the target)");
            }
            Tensor<T>& w = linears[k].second->weight();
            w.data() *= static_cast<T>(1.0 / std::sqrt(variance));
            ++result.iterations;
        }
        out.push_back(std::move(result));
    }
    return out;
}

// The same for a batch held as a tensor: its value is the batch.
template <class T>
std::vector<LsuvLayer> lsuv(Module<T>& net, const Tensor<T>& batch,
                            const LsuvOptions& options = {}) {
    return lsuv(net, Matrix<T>(batch.value()), options);
}

}  // namespace gradscope::init
