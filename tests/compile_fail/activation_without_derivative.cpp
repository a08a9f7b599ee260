// A user's activation type with no derivative(x, y): mlp's .activation must refuse it.
// expect-error: ElementwiseFunction
#include <gradscope/nn.hpp>

struct Cube {
    static constexpr const char* name = "cube";
    template <class T>
    T value(T x) const {
        return x * x * x;
    }
};

int main() { auto net = gradscope::mlp<float>({.widths = {4, 8, 2}, .activation = Cube{}}); }
