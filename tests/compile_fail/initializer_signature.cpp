// An initialiser is called as init(weight, fan_in, fan_out, rng); this one forgets the Rng.
// expect-error: InitializerFor
#include <gradscope/nn.hpp>

int main() {
    auto net = gradscope::mlp<float>({.widths = {4, 8, 2},
                                      .init = [](gradscope::MatrixView<float> w, gradscope::Index,
                                                 gradscope::Index) { w.setZero(); }});
}
