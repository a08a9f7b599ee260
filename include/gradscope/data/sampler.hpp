// Samplers: which dataset rows an epoch visits, and in what order. A DataLoader asks its sampler
// once per epoch to fill a buffer with that epoch's indices, then cuts the buffer into batches.
//
// The interface is two calls, both given the dataset's size, so that one sampler object can
// serve any dataset and a sampler may yield fewer rows than the dataset has (or repeat some):
//   length(n)                 how many indices an epoch yields, the same every epoch;
//   fill(epoch, n, out)       writes them, out.size() == length(n), each < n.
// The epoch number is an argument rather than state, so that a shuffle is a function of (seed,
// epoch): epoch 7 has the same order whether or not epochs 0-6 ran in this process (a resumed
// run), and every process computing it agrees. That is what a distributed sampler needs: rank r
// of w computes the same permutation as the other ranks and keeps its own disjoint shard of it
// (length(n) = its shard's size). fill() runs on the thread that begins the epoch, never
// concurrently with itself, and should not allocate if the loader is to stay allocation-free.
#pragma once

#include "../core/random.hpp"

#include <cstddef>
#include <cstdint>
#include <numeric>
#include <span>
#include <utility>

namespace gradscope::data {

class Sampler {
public:
    virtual ~Sampler() = default;
    [[nodiscard]] virtual std::size_t length(std::size_t dataset_size) const = 0;
    virtual void fill(std::size_t epoch, std::size_t dataset_size, std::span<std::size_t> out) = 0;
};

// The seed for one epoch of a shuffle: consecutive epochs (and seeds) give unrelated
// generators. splitmix64's finaliser, which mixes every input bit into every output bit.
inline std::uint64_t epoch_seed(std::uint64_t seed, std::size_t epoch) {
    std::uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (static_cast<std::uint64_t>(epoch) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// out = a uniformly random permutation of 0 .. out.size()-1, a function of (seed, epoch) alone
// (Fisher-Yates with gradscope's Rng, whose output is fixed across standard libraries).
inline void permutation(std::uint64_t seed, std::size_t epoch, std::span<std::size_t> out) {
    std::iota(out.begin(), out.end(), std::size_t{0});
    Rng rng(epoch_seed(seed, epoch));
    for (std::size_t i = out.size(); i > 1; --i) {
        const auto j = static_cast<std::size_t>(rng.below(i));
        std::swap(out[i - 1], out[j]);
    }
}

// Every row, in order.
class SequentialSampler final : public Sampler {
public:
    [[nodiscard]] std::size_t length(std::size_t dataset_size) const override {
        return dataset_size;
    }
    void fill(std::size_t, std::size_t, std::span<std::size_t> out) override {
        std::iota(out.begin(), out.end(), std::size_t{0});
    }
};

// Every row once per epoch, in a new seeded order each epoch.
class RandomSampler final : public Sampler {
public:
    explicit RandomSampler(std::uint64_t seed) : seed_(seed) {}
    [[nodiscard]] std::size_t length(std::size_t dataset_size) const override {
        return dataset_size;
    }
    void fill(std::size_t epoch, std::size_t, std::span<std::size_t> out) override {
        permutation(seed_, epoch, out);
    }

private:
    std::uint64_t seed_;
};

}  // namespace gradscope::data
