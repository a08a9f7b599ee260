// A downstream program: it only includes the umbrella header through the CMake package.
#include <gradscope/gradscope.hpp>

#include <iostream>
#include <string_view>

static_assert(__cplusplus >= 202002L, "gradscope::gradscope must bring C++20 to its users");

int main() {
  std::cout << "consumer built against gradscope " << gradscope::version << "\n";
#ifdef GRADSCOPE_EXPECTED_VERSION
  if (std::string_view(gradscope::version) != GRADSCOPE_EXPECTED_VERSION) {
    std::cerr << "gradscope::version is " << gradscope::version << " but CMake says "
              << GRADSCOPE_EXPECTED_VERSION << "\n";
    return 1;
  }
#endif
  return 0;
}
