// A module defines forward_impl; forward() is the non-virtual call that runs forward_impl and
// the hooks. A module written to override forward must not compile: that override would let
// `net->forward(x)` skip the hooks a monitor relies on.
// expect-error: marked 'override'
#include <gradscope/nn.hpp>

#include <string>

struct Doubler : gradscope::Module<float> {
    gradscope::Tensor<float> forward(const gradscope::Tensor<float>& x) override { return x; }
    [[nodiscard]] std::string type_name() const override { return "Doubler"; }
};

int main() { Doubler d; }
