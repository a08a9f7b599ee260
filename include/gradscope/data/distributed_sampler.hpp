// DistributedSampler: rank r of w ranks visits its own disjoint shard of each epoch's rows.
//
// Every rank computes the same (seed, epoch) permutation (sampler.hpp) and keeps the positions
// r, r + w, r + 2w, ... of it, so that the shards are disjoint and together cover the epoch.
// Data-parallel training needs every rank to take the same number of steps (each step ends in a
// collective all-reduce), so the shards must have equal lengths even when w does not divide the
// dataset size n. Two ways, as PyTorch's DistributedSampler offers:
//  - Uneven::pad (the default): the permutation is extended by repeating its first rows until
//    its length is a multiple of w, so every row is visited and ceil(n/w) per rank, a few twice;
//  - Uneven::drop: the last n mod w rows of the permutation are left out of the epoch, so no row
//    is visited twice and floor(n/w) per rank; a new shuffle leaves out different rows.
// No MPI here: the rank and world size are plain numbers (gradscope/dist gives them from a
// communicator), so a single process can check the shards.
#pragma once

#include "../core/errors.hpp"
#include "sampler.hpp"

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace gradscope::data {

struct DistributedSamplerOptions {
    enum class Uneven { pad, drop };
    std::size_t rank = 0;
    std::size_t world_size = 1;
    bool shuffle = true;
    std::uint64_t seed = 0;  // the same on every rank, or the shards overlap
    Uneven uneven = Uneven::pad;
};

class DistributedSampler final : public Sampler {
public:
    using Options = DistributedSamplerOptions;
    using Uneven = DistributedSamplerOptions::Uneven;

    explicit DistributedSampler(const Options& options) : options_(options) {
        if (options.world_size == 0) {
            throw value_error("DistributedSampler: world_size must be at least 1");
        }
        if (options.rank >= options.world_size) {
            throw value_error("DistributedSampler: rank " + std::to_string(options.rank) +
                              " is not below world_size " + std::to_string(options.world_size));
        }
    }

    [[nodiscard]] std::size_t length(std::size_t dataset_size) const override {
        const std::size_t w = options_.world_size;
        return options_.uneven == Uneven::pad ? (dataset_size + w - 1) / w : dataset_size / w;
    }

    void fill(std::size_t epoch, std::size_t dataset_size, std::span<std::size_t> out) override {
        const std::size_t per_rank = length(dataset_size);
        if (out.size() != per_rank) {
            throw value_error("DistributedSampler::fill: the output holds " +
                              std::to_string(out.size()) + " indices, the shard " +
                              std::to_string(per_rank));
        }
        if (per_rank == 0) return;
        // Allocates only when the dataset size changes, so the loader's epochs stay allocation
        // free.
        order_.resize(dataset_size);
        if (options_.shuffle) {
            permutation(options_.seed, epoch, order_);
        } else {
            for (std::size_t i = 0; i < dataset_size; ++i) order_[i] = i;
        }
        // Position p of the (padded) epoch is order_[p mod n]: padding repeats its first rows.
        for (std::size_t k = 0; k < per_rank; ++k) {
            const std::size_t position = k * options_.world_size + options_.rank;
            out[k] = order_[position % dataset_size];
        }
    }

    [[nodiscard]] const Options& options() const noexcept { return options_; }

private:
    Options options_;
    std::vector<std::size_t> order_;
};

}  // namespace gradscope::data
