// The benchmark workload (workload.hpp) built with gradscope's mlp(), and the copy of its
// parameters into the hand-written baseline, so that both start from the same numbers (the
// benchmark) and can be compared gradient for gradient (tests/test_bench_baseline.cpp).
#pragma once

#include "baseline_mlp.hpp"
#include "workload.hpp"

#include <gradscope/gradscope.hpp>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

namespace gradscope::bench {

template <class T>
std::shared_ptr<MLP<T>> make_network(const Workload& w, std::uint64_t seed) {
    return mlp<T>({.widths = std::vector<Index>(static_cast<std::size_t>(w.depth) + 1, w.width),
                   .activation = ReLU{},
                   .init = init::normal(0.0, w.weight_stddev()),
                   .norm = w.batch_norm ? Normalization::batch : Normalization::none,
                   .residual = w.residual,
                   .seed = seed});
}

template <class T>
std::vector<BatchNorm1d<T>*> batch_norms(MLP<T>& net) {
    std::vector<BatchNorm1d<T>*> out;
    for (auto& [path, module] : net.named_modules()) {
        if (auto* bn = dynamic_cast<BatchNorm1d<T>*>(module)) out.push_back(bn);
    }
    return out;
}

// Copies every Linear's weight and bias and every batch norm's gamma and beta, input side first.
template <class T>
void copy_parameters(MLP<T>& net, BaselineMlp<T>& baseline) {
    const auto linears = net.linear_layers();
    for (std::size_t l = 0; l < linears.size(); ++l) {
        baseline.weight(l) = linears[l].second->weight().value();
        baseline.bias(l) = linears[l].second->bias().value();
    }
    const auto norms = batch_norms(net);
    for (std::size_t l = 0; l < norms.size(); ++l) {
        baseline.bn_weight(l) = norms[l]->weight().value();
        baseline.bn_bias(l) = norms[l]->bias().value();
    }
}

}  // namespace gradscope::bench
