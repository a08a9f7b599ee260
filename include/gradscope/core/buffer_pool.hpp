// A per-thread cache of aligned storage blocks, so that a training loop which builds the same
// graph step after step stops touching the heap after its first step.
//
// Blocks are cached by exact element count: a steady-state step asks for the same sizes in
// the same order, and an exact match never wastes memory. Each thread has its own pool, so
// acquiring a block takes no lock; a block released on another thread simply joins that
// thread's pool (any pool can free any block).
#pragma once

#include "matrix.hpp"

#include <algorithm>
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

namespace gradscope {

struct BufferPoolStats {
    std::size_t cached_blocks = 0;  // blocks waiting in the pool for reuse
    std::size_t cached_bytes = 0;
    std::size_t hits = 0;    // requests served from the pool
    std::size_t misses = 0;  // requests that went to the heap
};

template <class T>
class BufferPool {
public:
    // 64 bytes: a cache line, and what AVX-512 loads want.
    static constexpr std::size_t alignment = 64;

    BufferPool() = default;
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;
    ~BufferPool() { release_cached(); }

    // The calling thread's pool, or null once that thread's pool has been destroyed (a tensor
    // with static storage duration can outlive it): callers then use the heap directly.
    static BufferPool* local() noexcept {
        thread_local bool destroyed = false;
        if (destroyed) return nullptr;
        struct Holder {
            BufferPool pool;
            bool* destroyed;
            ~Holder() { *destroyed = true; }
        };
        thread_local Holder holder{{}, &destroyed};
        return &holder.pool;
    }

    // Borrows a block of `count` elements from the calling thread's pool (or the heap).
    [[nodiscard]] static T* borrow(Index count) {
        if (count == 0) return empty_block();
        if (BufferPool* pool = local()) return pool->acquire(count);
        return allocate_block(count);
    }

    // Gives a block back to the calling thread's pool (or the heap).
    static void give_back(T* block, Index count) noexcept {
        if (block == nullptr || block == empty_block()) return;
        if (BufferPool* pool = local()) {
            pool->release(block, count);
        } else {
            free_block(block);
        }
    }

    // Where a matrix with no elements points (an empty batch: [0 x n]). Not null, because
    // Eigen offsets the data pointer of such a matrix to form its blocks, and an offset from
    // null is undefined behaviour; nothing is ever read or written through it.
    [[nodiscard]] static T* empty_block() noexcept {
        alignas(alignment) static T none[1] = {};
        return none;
    }

    [[nodiscard]] T* acquire(Index count) {
        if (count == 0) return empty_block();
        if (Bucket* bucket = find(count); bucket != nullptr && !bucket->blocks.empty()) {
            T* block = bucket->blocks.back();
            bucket->blocks.pop_back();
            ++stats_.hits;
            stats_.cached_blocks -= 1;
            stats_.cached_bytes -= bytes_for(count);
            return block;
        }
        ++stats_.misses;
        return allocate_block(count);
    }

    void release(T* block, Index count) noexcept {
        if (block == nullptr || block == empty_block()) return;
        Bucket* bucket = find(count);
        try {
            if (bucket == nullptr) {
                buckets_.push_back(Bucket{count, {}});
                bucket = &buckets_.back();
            }
            bucket->blocks.push_back(block);
        } catch (...) {  // out of memory for the bookkeeping: give the block back instead
            free_block(block);
            return;
        }
        stats_.cached_blocks += 1;
        stats_.cached_bytes += bytes_for(count);
    }

    // Returns every cached block to the heap (the blocks in use are untouched).
    void release_cached() noexcept {
        for (Bucket& bucket : buckets_) {
            for (T* block : bucket.blocks) free_block(block);
        }
        buckets_.clear();
        stats_.cached_blocks = 0;
        stats_.cached_bytes = 0;
    }

    [[nodiscard]] const BufferPoolStats& stats() const noexcept { return stats_; }

private:
    struct Bucket {
        Index count;
        std::vector<T*> blocks;
    };

    static std::size_t bytes_for(Index count) noexcept {
        std::size_t bytes = static_cast<std::size_t>(count) * sizeof(T);
        return (bytes + alignment - 1) / alignment * alignment;
    }

    static T* allocate_block(Index count) {
        return static_cast<T*>(::operator new (bytes_for(count), std::align_val_t{alignment}));
    }

    static void free_block(T* block) noexcept {
        ::operator delete (static_cast<void*>(block), std::align_val_t{alignment});
    }

    // A network uses a handful of distinct sizes, so a linear scan beats hashing.
    Bucket* find(Index count) noexcept {
        for (Bucket& bucket : buckets_) {
            if (bucket.count == count) return &bucket;
        }
        return nullptr;
    }

    std::vector<Bucket> buckets_;
    BufferPoolStats stats_;
};

// Storage for one matrix, borrowed from the calling thread's pool and returned on destruction.
template <class T>
class PooledMatrix {
public:
    PooledMatrix() = default;
    explicit PooledMatrix(Shape shape) { resize(shape); }
    PooledMatrix(const PooledMatrix&) = delete;
    PooledMatrix& operator=(const PooledMatrix&) = delete;
    PooledMatrix(PooledMatrix&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), shape_(std::exchange(other.shape_, {})) {}
    PooledMatrix& operator=(PooledMatrix&& other) noexcept {
        if (this != &other) {
            reset();
            data_ = std::exchange(other.data_, nullptr);
            shape_ = std::exchange(other.shape_, {});
        }
        return *this;
    }
    ~PooledMatrix() { reset(); }

    // Keeps the block when the element count is unchanged (a reshape costs nothing).
    void resize(Shape shape) {
        if (shape.size() != shape_.size() || data_ == nullptr) {
            reset();
            data_ = BufferPool<T>::borrow(shape.size());
        }
        shape_ = shape;
    }

    void reset() noexcept {
        BufferPool<T>::give_back(data_, shape_.size());
        data_ = nullptr;
        shape_ = {};
    }

    // Returns the block to the pool but remembers the shape: for a node's value that no
    // backward will read (see Node::value_readers). Its view must not be read afterwards.
    void release_storage() noexcept {
        BufferPool<T>::give_back(data_, shape_.size());
        data_ = nullptr;
    }
    [[nodiscard]] bool has_storage() const noexcept { return data_ != nullptr; }

    [[nodiscard]] Shape shape() const noexcept { return shape_; }
    [[nodiscard]] MatrixView<T> view() noexcept { return {data_, shape_.rows, shape_.cols}; }
    [[nodiscard]] ConstMatrixView<T> view() const noexcept {
        return {data_, shape_.rows, shape_.cols};
    }

private:
    T* data_ = nullptr;
    Shape shape_;
};

// Frees the calling thread's cached blocks, e.g. after a large evaluation pass.
template <class T>
void release_cached_memory() noexcept {
    if (BufferPool<T>* pool = BufferPool<T>::local()) pool->release_cached();
}

}  // namespace gradscope
