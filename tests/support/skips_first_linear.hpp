// A module for tests of layers that no gradient reaches.
#pragma once

#include <gradscope/gradscope.hpp>

#include <memory>

namespace gradscope::testing {

// Two Linear layers, width x width, of which forward calls only the second: the first is a
// watched layer that no gradient ever reaches.
class SkipsFirstLinear : public Module<double> {
public:
    SkipsFirstLinear(Index width, Rng& rng)
        : first_(register_module("first", std::make_shared<Linear<double>>(width, width, rng))),
          second_(register_module("second", std::make_shared<Linear<double>>(width, width, rng))) {}
    TensorD forward_impl(const TensorD& x) override { return (*second_)(x); }

private:
    std::shared_ptr<Linear<double>> first_, second_;
};

}  // namespace gradscope::testing
