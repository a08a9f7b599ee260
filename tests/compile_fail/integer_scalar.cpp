// gradscope computes in float or double: an int network must be refused where it is asked for.
// expect-error: TensorScalar
#include <gradscope/nn.hpp>

int main() { auto net = gradscope::mlp<int>({.widths = {4, 8, 2}}); }
