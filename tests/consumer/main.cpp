// A downstream program: it includes the umbrella header through the CMake package and runs a
// small graph, so that the package is proven usable, not merely found.
#include <gradscope/gradscope.hpp>

#include <cmath>
#include <iostream>
#include <string_view>

static_assert(__cplusplus >= 202002L, "gradscope::gradscope must bring C++20 to its users");
#if defined(GRADSCOPE_CONSUMER_EXPECTS_PRECOMPILED) && !defined(GRADSCOPE_PRECOMPILED)
#error "gradscope::precompiled must define GRADSCOPE_PRECOMPILED for its users"
#endif

int main() {
    std::cout << "consumer built against gradscope " << gradscope::version << "\n";
#ifdef GRADSCOPE_EXPECTED_VERSION
    if (std::string_view(gradscope::version) != GRADSCOPE_EXPECTED_VERSION) {
        std::cerr << "gradscope::version is " << gradscope::version << " but CMake says "
                  << GRADSCOPE_EXPECTED_VERSION << "\n";
        return 1;
    }
#endif
    using namespace gradscope;
    // d/dw sum(tanh(w * 0.5)) = 0.5 * (1 - tanh(0.5 w)^2); at w = 0 that is exactly 0.5.
    auto w = TensorD::parameter(Matrix<double>::Zero(1, 3));
    sum(tanh(w * 0.5)).backward();
    if (std::abs(w.grad()(0, 1) - 0.5) > 1e-15) {
        std::cerr << "unexpected gradient " << w.grad() << "\n";
        return 1;
    }
    std::cout << "gradient ok\n";
    return 0;
}
