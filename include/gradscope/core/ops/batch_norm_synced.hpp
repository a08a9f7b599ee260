// Batch normalisation over a batch that is split across replicas (processes that each hold some
// of its rows, as in data-parallel training): the statistics, and the two sums its backward
// needs, are summed over every replica through a BatchReducer, so that each replica normalises
// its rows as one process would normalise the whole batch. The core knows nothing of how the
// replicas talk: gradscope/dist gives BatchNorm1d a reducer over MPI
// (dist::synchronize_batch_norm).
//
// Every replica must make the same reducer calls in the same order: the same network, the same
// number of forward and backward passes. The forward pass makes two (the column sums with the
// row count, then the centred squares: the same two-pass variance as batch_norm_train), the
// backward pass one.
#pragma once

#include "normalization.hpp"
#include "support.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

namespace gradscope {

// Sums values across the replicas: afterwards every replica's `values` holds the element-wise
// sum of all replicas' (each replica's own included).
template <class T>
class BatchReducer {
public:
    virtual ~BatchReducer() = default;
    virtual void sum(std::span<T> values) = 0;
};

namespace detail {

// A recorded batch-norm node needs its reducer again in backward, which may come after the
// module that owned the reducer is gone (a graph may outlive its network). The node cannot own
// it (op attributes are plain bytes), so it keeps an id, and backward asks this registry, which
// holds reducers weakly: a reducer that is gone is a clear error, not a dangling pointer.
template <class T>
class BatchReducerRegistry {
public:
    static std::uint64_t add(const std::shared_ptr<BatchReducer<T>>& reducer) {
        BatchReducerRegistry& r = instance();
        const std::lock_guard lock(r.mutex_);
        std::erase_if(r.reducers_, [](const auto& entry) { return entry.second.expired(); });
        const std::uint64_t id = ++r.last_id_;
        r.reducers_.emplace(id, reducer);
        return id;
    }
    static std::shared_ptr<BatchReducer<T>> find(std::uint64_t id) {
        BatchReducerRegistry& r = instance();
        const std::lock_guard lock(r.mutex_);
        const auto it = r.reducers_.find(id);
        return it == r.reducers_.end() ? nullptr : it->second.lock();
    }

private:
    static BatchReducerRegistry& instance() {
        static BatchReducerRegistry registry;
        return registry;
    }
    std::mutex mutex_;
    std::unordered_map<std::uint64_t, std::weak_ptr<BatchReducer<T>>> reducers_;
    std::uint64_t last_id_ = 0;
};

struct SyncedNormAttr {
    std::uint64_t reducer_id;
    double count;  // rows over all replicas
};

// Inputs x [B x n], gamma, beta [1 x n]; saved: xhat [B x n]; aux: 1/sqrt(var + eps) [1 x n].
// Each replica's loss is over its own rows, so dy is its own; with the sums of dy and dy * xhat
// over every replica, dx is the derivative of the sum of all replicas' losses, and gamma and beta
// get this replica's share of theirs (data-parallel averaging adds the shares up).
template <class T>
void synced_batch_norm_backward(Node<T>& node) {
    Node<T>& x = *node.inputs[0];
    Node<T>& gamma = *node.inputs[1];
    Node<T>& beta = *node.inputs[2];
    const SyncedNormAttr attr = node.template attr<SyncedNormAttr>();
    const std::shared_ptr<BatchReducer<T>> reducer = BatchReducerRegistry<T>::find(attr.reducer_id);
    if (!reducer) {
        throw graph_error(
            "backward: the batch_norm was synchronised across replicas by a reducer that no "
            "longer exists (its BatchNorm1d was destroyed, or desynchronised, before backward)");
    }
    const auto dy = grad_of(node).array();
    const auto xhat = std::as_const(node.saved).view().array();
    const auto invstd = std::as_const(node.aux).view().array();
    const Index rows = dy.rows(), features = dy.cols();
    // Row 0: sum of dy; row 1: sum of dy * xhat; this replica's, then (rows 2, 3) every one's.
    PooledMatrix<T> sums(Shape{4, features});
    auto local = sums.view().topRows(2).array();
    local.setZero();
    for (Index i = 0; i < rows; ++i) {
        local.row(0) += dy.row(i);
        local.row(1) += dy.row(i) * xhat.row(i);
    }
    sums.view().bottomRows(2) = sums.view().topRows(2);
    // Every replica reduces, whether or not its x needs a gradient: the calls must pair up.
    reducer->sum(
        std::span<T>(sums.view().data() + 2 * features, static_cast<std::size_t>(2 * features)));
    if (x.requires_grad) {
        const T count = static_cast<T>(attr.count);
        PooledMatrix<T> scale(Shape{1, features});
        scale.view() = (value_of(gamma).array() * invstd / count).matrix();
        const auto all = std::as_const(sums).view().bottomRows(2).array();
        accumulate(x,
                   (down_rows(std::as_const(scale).view().array(), rows) *
                    (count * dy - down_rows(all.row(0), rows) - xhat * down_rows(all.row(1), rows)))
                       .matrix());
    }
    accumulate(gamma, std::as_const(sums).view().row(1));
    accumulate(beta, std::as_const(sums).view().row(0));
}

}  // namespace detail

// Training-mode batch norm of x, one part of a batch whose other rows the other replicas hold:
// each feature is normalised by the whole batch's mean and biased variance, which are written to
// `stats` (stats.count: the whole batch's rows). Needs more than one row over all replicas.
template <class T>
Tensor<T> batch_norm_train_synced(const Tensor<T>& x, const Tensor<T>& gamma, const Tensor<T>& beta,
                                  double eps, BatchStatistics<T>& stats,
                                  const std::shared_ptr<BatchReducer<T>>& reducer,
                                  std::uint64_t reducer_id) {
    const Shape s = x.shape();
    detail::check_norm_eps("batch_norm", eps);
    Node<T>& xn = x.node();
    detail::check_norm_params<T>("batch_norm", s, gamma.shape(), beta.shape(), s.cols);
    NodePtr<T> node = detail::record<T>("sync_batch_norm", s, {&xn, &gamma.node(), &beta.node()},
                                        &detail::synced_batch_norm_backward<T>, detail::norm_reads);
    node->saved.resize(s);
    node->aux.resize(Shape{1, s.cols});
    const auto xv = detail::value_of(xn).array();

    // The column sums and, in the last place, the row count, summed over the replicas.
    PooledMatrix<T> sums(Shape{1, s.cols + 1});
    auto total = sums.view().row(0).array();
    total.setZero();
    for (Index i = 0; i < s.rows; ++i) total.head(s.cols) += xv.row(i);
    total(s.cols) = static_cast<T>(s.rows);
    reducer->sum(std::span<T>(sums.view().data(), static_cast<std::size_t>(s.cols + 1)));
    const T count = total(s.cols);
    if (count < T(2)) {
        throw value_error(
            "batch_norm: training needs more than one sample per feature over all replicas to "
            "compute a variance (" +
            std::to_string(static_cast<long long>(count)) + " in all, input here " + to_string(s) +
            ")");
    }
    stats.mean.resize(1, s.cols);
    stats.variance.resize(1, s.cols);
    stats.count = static_cast<Index>(count);
    auto mean = stats.mean.row(0).array();
    mean = total.head(s.cols) / count;

    auto xhat = node->saved.view().array();
    auto squares = sums.view().row(0).head(s.cols).array();  // reused: the sums are spent
    squares.setZero();
    for (Index i = 0; i < s.rows; ++i) {
        xhat.row(i) = xv.row(i) - mean;
        squares += xhat.row(i).square();
    }
    reducer->sum(std::span<T>(sums.view().data(), static_cast<std::size_t>(s.cols)));
    auto variance = stats.variance.row(0).array();
    variance = squares / count;

    detail::normalise_centred(*node, variance, eps, gamma, beta);
    node->set_attr(detail::SyncedNormAttr{reducer_id, static_cast<double>(count)});
    return detail::finish(std::move(node));
}

}  // namespace gradscope
