// gradcheck calls f with all the inputs, a const std::vector<Tensor<double>>&, not with one.
// expect-error: GradcheckFunction
#include <gradscope/core.hpp>

int main() {
    using gradscope::Tensor;
    auto x = Tensor<double>::zeros(2, 3, true);
    auto report = gradscope::gradcheck([](const Tensor<double>& t) { return t * t; }, {x});
}
