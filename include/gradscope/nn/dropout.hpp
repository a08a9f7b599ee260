// Dropout layer: inverted dropout in training, the identity in evaluation. Its mask comes
// from the layer's own seeded generator, so a run is reproducible, and a checkpoint keeps the
// generator's state, so a resumed run draws the masks the uninterrupted one would have.
#pragma once

#include "../core/ops/dropout.hpp"
#include "module.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace gradscope {

template <class T>
class Dropout : public Module<T> {
public:
    explicit Dropout(double p, std::uint64_t seed = 0) : p_(p), seed_(seed), rng_(seed) {
        if (!(p >= 0.0 && p <= 1.0)) {
            throw value_error("Dropout: the probability must be in [0, 1], got " +
                              gradscope::detail::number_text(p));
        }
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override {
        if (!this->is_training() || p_ == 0.0) return x;
        return dropout(x, p_, rng_);
    }

    [[nodiscard]] std::string type_name() const override { return "Dropout"; }
    [[nodiscard]] std::string extra_repr() const override { return "p=" + detail::number_text(p_); }
    [[nodiscard]] double probability() const noexcept { return p_; }
    [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

    // The mask stream's position, so that a checkpoint resumes it (Module::extra_state).
    [[nodiscard]] std::string extra_state() const override { return rng_.state(); }
    void set_extra_state(std::string_view text) override { rng_.set_state(text); }

    // Restarts the mask stream from `seed`: the next mask is the first one a layer built with
    // that seed draws.
    void reseed(std::uint64_t seed) {
        seed_ = seed;
        rng_ = Rng(seed);
    }

private:
    double p_;
    std::uint64_t seed_;
    Rng rng_;
};

}  // namespace gradscope
