// Synchronised batch norm over MPI (PyTorch's SyncBatchNorm): every BatchNorm1d of a network
// computes its training statistics, and its backward's two sums, over the whole batch that the
// ranks hold between them, so that N ranks with B/N rows each train as one process with B rows.
// The layers stay BatchNorm1d (same parameters, buffers and checkpoints); each is given a
// BatchReducer (core/ops/batch_norm_synced.hpp) that sums with MPI_Allreduce.
#pragma once

#include "../nn/batchnorm.hpp"
#include "../nn/module.hpp"
#include "communicator.hpp"

#include <cstddef>
#include <memory>
#include <span>
#include <utility>

namespace gradscope::dist {

// Sums over the ranks of its communicator (a duplicate of the one it is given, so that its
// blocking all-reduces in forward and backward never match DataParallel's).
template <class T>
class MpiBatchReducer final : public BatchReducer<T> {
public:
    explicit MpiBatchReducer(const Communicator& comm) : comm_(comm.native()) {}
    void sum(std::span<T> values) override { comm_.all_reduce_sum(values); }

private:
    Communicator comm_;
};

// Makes every BatchNorm1d in `module` synchronised over `comm`'s ranks and returns how many there
// are. A collective: every rank calls it, on the same network. Call it before training (before
// or after making the DataParallel).
template <class T>
std::size_t synchronize_batch_norm(Module<T>& module, const Communicator& comm) {
    const auto reducer = std::make_shared<MpiBatchReducer<T>>(comm);
    std::size_t layers = 0;
    for (auto& [path, m] : module.named_modules()) {
        if (auto* bn = dynamic_cast<BatchNorm1d<T>*>(m)) {
            bn->synchronize_statistics(reducer);
            ++layers;
        }
    }
    return layers;
}

}  // namespace gradscope::dist
