// data::DataLoader: mini-batches of a TensorDataset, for range-for.
//
//   data::DataLoader<float> loader(std::move(dataset), {.batch_size = 64, .shuffle = true,
//                                                      .seed = 1, .prefetch = true});
//   for (int epoch = 0; epoch < 10; ++epoch)
//       for (const data::Batch<float>& batch : loader)
//           train_step(TensorF::constant(batch.x), batch.labels);
//
// Each `for` over the loader is one epoch: the sampler fills the epoch's indices (a new seeded
// permutation each epoch with shuffle), and the loader copies each batch's rows into buffers it
// owns. A Batch views those buffers: it is valid until the iteration moves to the next batch.
//
// Allocation. The buffers (the epoch's indices, one batch's rows, two with prefetch) are sized
// when the loader is made, and the last, smaller batch of an epoch uses the first rows of the
// same buffers, so iterating allocates nothing after the first epoch has begun (with prefetch,
// the worker thread is started by the first epoch; tests/test_allocations.cpp counts).
//
// Prefetch. One worker thread copies batch i+1 into the second buffer while the caller works on
// batch i. The epoch's indices are computed before the worker sees them and each batch is a
// plain copy, so the batches are the same, bit for bit, with or without prefetch. Leaving an
// epoch early (break, an exception, destroying the iterator) waits for the batch being copied,
// if any, and leaves the worker idle; destroying the loader stops and joins it.
//
// One epoch at a time, and the loader must outlive its iterators (as a container must): beginning a second iteration while the first one's iterator lives is a
// value_error. A loader is neither copied nor moved (its worker refers to it); hold it in a
// std::unique_ptr to pass it around.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "dataset.hpp"
#include "sampler.hpp"

#include <algorithm>
#include <array>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace gradscope::data {

// In the order of PyTorch's DataLoader keywords (seed where its generator comes), so that
// designated initialisers written in that order compile.
struct LoaderOptions {
    std::size_t batch_size = 1;
    // A new seeded permutation each epoch (a RandomSampler); false visits rows in order.
    bool shuffle = false;
    // Your own order of rows (see sampler.hpp); cannot be combined with shuffle, as in PyTorch.
    std::shared_ptr<Sampler> sampler = nullptr;
    // Leave out the last batch of an epoch when it is smaller than batch_size.
    bool drop_last = false;
    // Of the shuffle's permutations.
    std::uint64_t seed = 0;
    // Copy the next batch on a worker thread while the current one is used.
    bool prefetch = false;
};

// One batch: views of the loader's buffers, valid until the iteration advances.
template <class T>
struct Batch {
    ConstMatrixView<T> x;                  // [size x features]
    ConstMatrixView<T> y;                  // [size x targets]; 0 columns with class labels
    std::span<const int> labels;           // the class labels; empty with a target matrix
    std::span<const std::size_t> indices;  // the dataset rows, in batch order
    std::size_t number = 0;                // the batch's position in its epoch, from 0
    [[nodiscard]] Index size() const { return x.rows(); }
};

template <class T>
class DataLoader {
public:
    DataLoader(std::shared_ptr<const TensorDataset<T>> dataset, LoaderOptions options = {})
        : dataset_(std::move(dataset)), options_(std::move(options)) {
        if (!dataset_) gradscope::detail::throw_value("DataLoader", "the dataset is null");
        if (options_.batch_size == 0)
            gradscope::detail::throw_value("DataLoader", "batch_size must be >= 1");
        if (options_.sampler && options_.shuffle) {
            gradscope::detail::throw_value(
                "DataLoader",
                "a sampler and shuffle = true cannot be combined: the sampler "
                "decides the order (shuffle inside it)");
        }
        sampler_ = options_.sampler ? options_.sampler
                   : options_.shuffle
                       ? std::shared_ptr<Sampler>(std::make_shared<RandomSampler>(options_.seed))
                       : std::shared_ptr<Sampler>(std::make_shared<SequentialSampler>());
        size_buffers(sampler_->length(dataset_->size()));
    }

    DataLoader(TensorDataset<T> dataset, LoaderOptions options = {})
        : DataLoader(std::make_shared<const TensorDataset<T>>(std::move(dataset)),
                     std::move(options)) {}

    DataLoader(const DataLoader&) = delete;
    DataLoader& operator=(const DataLoader&) = delete;

    ~DataLoader() {
        if (!worker_.joinable()) return;
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
        }
        changed_.notify_all();
        worker_.join();
    }

    [[nodiscard]] const TensorDataset<T>& dataset() const { return *dataset_; }
    [[nodiscard]] const LoaderOptions& options() const { return options_; }

    // Batches per epoch.
    [[nodiscard]] std::size_t size() const {
        const std::size_t n = sampler_->length(dataset_->size());
        const std::size_t b = options_.batch_size;
        return options_.drop_last ? n / b : (n + b - 1) / b;
    }

    // The number the next epoch will be given (the sampler sees it); set it to resume a run.
    [[nodiscard]] std::size_t epoch() const { return epoch_; }
    void set_epoch(std::size_t epoch) { epoch_ = epoch; }

    struct sentinel {};

    class iterator {
    public:
        iterator(iterator&& other) noexcept
            : loader_(std::exchange(other.loader_, nullptr)), batch_(other.batch_) {}
        iterator& operator=(iterator&&) = delete;
        ~iterator() {
            if (loader_ != nullptr) loader_->end_epoch();
        }

        Batch<T> operator*() const { return loader_->view(batch_); }
        iterator& operator++() {
            loader_->advance(batch_);
            ++batch_;
            return *this;
        }
        friend bool operator==(const iterator& it, sentinel) { return it.at_end(); }

    private:
        friend class DataLoader;
        iterator(DataLoader* loader, std::size_t batch) : loader_(loader), batch_(batch) {}
        [[nodiscard]] bool at_end() const { return batch_ >= loader_->batch_count_; }
        DataLoader* loader_;
        std::size_t batch_;
    };

    // Begins the next epoch.
    iterator begin() {
        if (iterating_) {
            gradscope::detail::throw_value("DataLoader",
                                           "an epoch is already being iterated; finish it (or "
                                           "destroy its iterator) before beginning another");
        }
        const std::size_t n = dataset_->size();
        const std::size_t length = sampler_->length(n);
        if (length != order_.size()) size_buffers(length);  // a sampler whose length changed
        sampler_->fill(epoch_, n, order_);
        for (std::size_t i = 0; i < order_.size(); ++i) {
            if (order_[i] >= n) {
                gradscope::detail::throw_value(
                    "DataLoader", "the sampler gave row " + std::to_string(order_[i]) +
                                      " at position " + std::to_string(i) + " of epoch " +
                                      std::to_string(epoch_) + ", but the dataset has " +
                                      std::to_string(n) + " rows");
            }
        }
        ++epoch_;
        batch_count_ = size();
        iterating_ = true;
        iterator it(this, 0);  // from here on, its destructor ends the epoch
        if (batch_count_ > 0) {
            if (options_.prefetch) {
                start_prefetch();
            } else {
                gather(0, slots_[0]);
            }
        }
        return it;
    }
    sentinel end() { return {}; }

private:
    struct Slot {
        Matrix<T> x;
        Matrix<T> y;
        std::vector<int> labels;
    };

    // A batch never holds more rows than an epoch has, so a batch_size larger than the dataset
    // (a common way to ask for full-batch training) costs no more than the dataset.
    void size_buffers(std::size_t length) {
        order_.resize(length);
        const std::size_t rows = std::min(options_.batch_size, length);
        for (std::size_t s = 0; s < (options_.prefetch ? 2U : 1U); ++s) {
            slots_[s].x.resize(static_cast<Index>(rows), dataset_->feature_count());
            slots_[s].y.resize(static_cast<Index>(rows), dataset_->target_count());
            if (dataset_->has_labels()) slots_[s].labels.resize(rows);
        }
    }

    [[nodiscard]] std::size_t rows_in(std::size_t batch) const {
        const std::size_t first = batch * options_.batch_size;
        return std::min(options_.batch_size, order_.size() - first);
    }

    // Copies batch `batch`'s rows into `slot`: touches only the slot and reads only constants,
    // so the worker may run it while the caller reads the other slot.
    void gather(std::size_t batch, Slot& slot) const {
        const std::size_t first = batch * options_.batch_size;
        const std::size_t rows = rows_in(batch);
        const TensorDataset<T>& d = *dataset_;
        for (std::size_t r = 0; r < rows; ++r) {
            const auto source = static_cast<Index>(order_[first + r]);
            const auto target = static_cast<Index>(r);
            slot.x.row(target) = d.features().row(source);
            if (d.target_count() > 0) slot.y.row(target) = d.targets().row(source);
            if (d.has_labels()) slot.labels[r] = d.labels()[order_[first + r]];
        }
    }

    Batch<T> view(std::size_t batch) {
        if (options_.prefetch) wait_for(batch);
        const Slot& slot = slots_[options_.prefetch ? batch % 2 : 0];
        const std::size_t rows = rows_in(batch);
        const auto r = static_cast<Index>(rows);
        return Batch<T>{
            .x = ConstMatrixView<T>(slot.x.data(), r, slot.x.cols()),
            .y = ConstMatrixView<T>(slot.y.data(), r, slot.y.cols()),
            .labels = dataset_->has_labels() ? std::span<const int>(slot.labels.data(), rows)
                                             : std::span<const int>(),
            .indices =
                std::span<const std::size_t>(order_).subspan(batch * options_.batch_size, rows),
            .number = batch};
    }

    void advance(std::size_t batch) {
        if (batch + 1 >= batch_count_) return;
        if (!options_.prefetch) {
            gather(batch + 1, slots_[0]);
            return;
        }
        {
            std::lock_guard lock(mutex_);
            released_ = batch + 1;  // its slot is free for batch + 2
        }
        changed_.notify_all();
    }

    void end_epoch() {
        if (options_.prefetch && worker_.joinable()) {
            std::unique_lock lock(mutex_);
            active_ = false;
            changed_.wait(lock, [&] { return !busy_; });
        }
        iterating_ = false;
    }

    // Note [Prefetch protocol]. Batch i goes to slot i % 2. The worker copies batch `produced_`
    // when it is one of the two after the last one the caller let go of (produced_ <
    // released_ + 2), i.e. when its slot is free; the caller reads batch i once produced_ > i.
    // `busy_` says a copy is running outside the lock, so that ending an epoch can wait for it
    // before the buffers are reused.
    void start_prefetch() {
        {
            std::lock_guard lock(mutex_);
            produced_ = 0;
            released_ = 0;
            active_ = true;
        }
        if (!worker_.joinable()) worker_ = std::thread([this] { work(); });
        changed_.notify_all();
    }

    void wait_for(std::size_t batch) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return produced_ > batch; });
    }

    void work() {
        std::unique_lock lock(mutex_);
        for (;;) {
            changed_.wait(lock, [&] {
                return stop_ || (active_ && produced_ < batch_count_ && produced_ < released_ + 2);
            });
            if (stop_) return;
            const std::size_t batch = produced_;
            busy_ = true;
            lock.unlock();
            gather(batch, slots_[batch % 2]);
            lock.lock();
            busy_ = false;
            if (active_) ++produced_;
            changed_.notify_all();
        }
    }

    std::shared_ptr<const TensorDataset<T>> dataset_;
    LoaderOptions options_;
    std::shared_ptr<Sampler> sampler_;
    std::vector<std::size_t> order_;  // this epoch's rows
    std::array<Slot, 2> slots_;       // the second only with prefetch
    std::size_t epoch_ = 0;
    std::size_t batch_count_ = 0;
    bool iterating_ = false;

    std::thread worker_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::size_t produced_ = 0;  // batches the worker has finished this epoch
    std::size_t released_ = 0;  // batches the caller has moved past this epoch
    bool active_ = false;
    bool busy_ = false;
    bool stop_ = false;
};

}  // namespace gradscope::data
