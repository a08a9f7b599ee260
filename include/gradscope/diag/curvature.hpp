// The curvature of a network's loss: the Hessian's top eigenvalues (its sharpness), its trace
// and its spectral density, for the whole network and block by block per layer, from exact
// Hessian-vector products (nn/hessian.hpp) fed to the operator algorithms of diag/spectrum.hpp.
//
// The per-layer figures are those of the Hessian's diagonal blocks: the curvature of the loss
// when only that layer's parameters move. The largest block eigenvalue never exceeds the
// whole Hessian's (a diagonal block of a symmetric matrix is a compression of it), and the
// block traces add up to the whole trace, so they say which layer is sharp.
#pragma once

#include "../nn/hessian.hpp"
#include "../nn/module.hpp"
#include "spectrum.hpp"

#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag {

// The Hessian as an operator on the flattened parameters (each tensor row by row, in order).
template <class T>
SymmetricOperator<T> hessian_operator(Hessian<T>& hessian) {
    return [&hessian](const Eigen::Matrix<T, Eigen::Dynamic, 1>& v,
                      Eigen::Matrix<T, Eigen::Dynamic, 1>& out) { out = hessian.product(v); };
}

template <class T>
EigenEstimate hessian_top_eigenvalues(Hessian<T>& hessian, const LanczosOptions& options = {}) {
    return top_eigenvalues<T>(hessian_operator(hessian), hessian.size(), options);
}

template <class T>
TraceEstimate hessian_trace(Hessian<T>& hessian, const TraceOptions& options = {}) {
    return hutchinson_trace<T>(hessian_operator(hessian), hessian.size(), options);
}

template <class T>
SpectralDensity hessian_spectral_density(Hessian<T>& hessian, const DensityOptions& options = {}) {
    return spectral_density<T>(hessian_operator(hessian), hessian.size(), options);
}

// A diagonal block of the Hessian: the tensors (indices into Hessian::tensors()) of one layer.
struct HessianBlock {
    std::string name;                  // the layer's module path, e.g. "layers.0.linear"
    std::vector<std::size_t> tensors;  // its parameters, in the Hessian's order
};

// The block's Hessian as an operator on the block's flattened parameters: the direction is
// zero on every other tensor, which the second-order pass skips rather than multiplies.
template <class T>
SymmetricOperator<T> block_operator(Hessian<T>& hessian, const HessianBlock& block) {
    return [&hessian, &block](const Eigen::Matrix<T, Eigen::Dynamic, 1>& v,
                              Eigen::Matrix<T, Eigen::Dynamic, 1>& out) {
        const auto& tensors = hessian.tensors();
        std::vector<Matrix<T>> direction(tensors.size());
        Index offset = 0;
        for (const std::size_t i : block.tensors) {
            const Shape s = tensors[i].shape();
            direction[i] = Eigen::Map<const Matrix<T>>(v.data() + offset, s.rows, s.cols);
            offset += s.size();
        }
        const std::vector<Matrix<T>> product = hessian.product(direction);
        offset = 0;
        for (const std::size_t i : block.tensors) {
            Eigen::Map<Matrix<T>>(out.data() + offset, product[i].rows(), product[i].cols()) =
                product[i];
            offset += product[i].size();
        }
    };
}

template <class T>
Index block_size(const Hessian<T>& hessian, const HessianBlock& block) {
    Index n = 0;
    for (const std::size_t i : block.tensors) n += hessian.tensors()[i].shape().size();
    return n;
}

// One block per module that owns parameters directly ("layers.0.linear" for
// "layers.0.linear.weight" and ".bias"), in named_parameters() order; `module` must be the one
// whose parameters the Hessian is taken with respect to (Hessian(loss, module)).
template <class T>
std::vector<HessianBlock> layer_blocks(const Module<T>& module) {
    std::vector<HessianBlock> blocks;
    const auto named = module.named_parameters();
    for (std::size_t i = 0; i < named.size(); ++i) {
        const std::string& name = named[i].first;
        const std::size_t dot = name.rfind('.');
        const std::string owner = dot == std::string::npos ? std::string() : name.substr(0, dot);
        if (blocks.empty() || blocks.back().name != owner) blocks.push_back({owner, {}});
        blocks.back().tensors.push_back(i);
    }
    return blocks;
}

struct BlockCurvature {
    std::string name;
    Index parameters = 0;
    EigenEstimate top;    // the block's largest eigenvalue(s)
    TraceEstimate trace;  // the block's trace
};

struct CurvatureOptions {
    LanczosOptions eigen{.k = 1, .max_iterations = 30, .tolerance = 1e-3, .seed = 0};
    TraceOptions trace{.samples = 16, .seed = 0};
};

// Top eigenvalue(s) and trace of each block. Costs, per block, eigen.max_iterations (at most)
// plus trace.samples Hessian-vector products.
template <class T>
std::vector<BlockCurvature> block_curvature(Hessian<T>& hessian,
                                            const std::vector<HessianBlock>& blocks,
                                            const CurvatureOptions& options = {}) {
    std::vector<BlockCurvature> out;
    for (const HessianBlock& block : blocks) {
        for (const std::size_t i : block.tensors) {
            if (i >= hessian.tensors().size()) {
                throw value_error("block_curvature: block '" + block.name + "' names tensor #" +
                                  std::to_string(i) + " of a Hessian with " +
                                  std::to_string(hessian.tensors().size()));
            }
        }
        const Index n = block_size(hessian, block);
        const SymmetricOperator<T> op = block_operator(hessian, block);
        LanczosOptions eigen = options.eigen;
        eigen.k = static_cast<int>(std::min<Index>(eigen.k, n));
        eigen.max_iterations =
            std::max(eigen.k, static_cast<int>(std::min<Index>(eigen.max_iterations, n)));
        out.push_back({block.name, n, top_eigenvalues<T>(op, n, eigen),
                       hutchinson_trace<T>(op, n, options.trace)});
    }
    return out;
}

}  // namespace gradscope::diag
