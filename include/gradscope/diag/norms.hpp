// Norms that neither overflow nor underflow where a gradient-flow study needs them.
//
// Norms are summed over chunks: each chunk's sum of squares is taken in T (for float,
// vectorised), and only if that sum overflowed, or is so small that squares may have
// underflowed, again in double. A float gradient of 1e30 must not overflow, and one of 1e-30
// (what a vanishing-gradient study measures) must not vanish; squaring everything in double
// would be safe too but does not vectorise, and the monitor takes several norms of every
// watched layer per step. Chunks of 1024 keep float rounding below ~1e-6 relative.
#pragma once

#include "../core/matrix.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <type_traits>

namespace gradscope::diag {

namespace detail {

inline constexpr Index norm_chunk = 1024;

template <class Chunk>
double chunk_sum_of_squares(const Chunk& c) {
    using T = typename Chunk::Scalar;
    if constexpr (std::is_same_v<T, float>) {
        // 1e-24: squares that underflowed (each < 1.2e-38, at most 1024 of them) would change
        // such a sum by less than 1e-11 of itself.
        const float fast = c.square().sum();
        if (std::isfinite(fast) && fast >= 1e-24f) return static_cast<double>(fast);
    }
    return c.template cast<double>().square().sum();
}

template <class T>
using ChunkMap = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;

}  // namespace detail

// The Euclidean (Frobenius) norm of a contiguously stored matrix (a Matrix or a view of one).
template <class D>
double robust_norm(const Eigen::MatrixBase<D>& matrix) {
    using T = typename D::Scalar;
    const D& m = matrix.derived();
    double sum = 0.0;
    for (Index start = 0; start < m.size(); start += detail::norm_chunk) {
        sum += detail::chunk_sum_of_squares(
            detail::ChunkMap<T>(m.data() + start, std::min(detail::norm_chunk, m.size() - start)));
    }
    return std::sqrt(sum);
}

// |a - b| for two contiguously stored matrices of one shape, in one pass.
template <class T>
double robust_distance(ConstMatrixView<T> a, ConstMatrixView<T> b) {
    double sum = 0.0;
    for (Index start = 0; start < a.size(); start += detail::norm_chunk) {
        const Index length = std::min(detail::norm_chunk, a.size() - start);
        sum += detail::chunk_sum_of_squares(detail::ChunkMap<T>(a.data() + start, length) -
                                            detail::ChunkMap<T>(b.data() + start, length));
    }
    return std::sqrt(sum);
}

template <class D>
std::size_t count_nonfinite(const Eigen::MatrixBase<D>& m) {
    return static_cast<std::size_t>((!m.array().isFinite()).count());
}

// A norm, and how many entries are NaN or infinite. Squares of finite floats summed in double
// cannot overflow, so a finite norm means no such entry: the count (a second pass over the
// matrix) is only taken when the norm is not finite.
template <class D>
double robust_norm_counting_nonfinite(const Eigen::MatrixBase<D>& m, std::size_t& nonfinite) {
    const double norm = robust_norm(m);
    if (!std::isfinite(norm)) nonfinite += count_nonfinite(m);
    return norm;
}

}  // namespace gradscope::diag
