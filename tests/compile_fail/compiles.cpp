// The control: each misuse in this directory, written correctly. It must compile, so that a
// broken include path or flag cannot make every expected failure pass for the wrong reason.
#include <gradscope/diag.hpp>
#include <gradscope/nn.hpp>

struct Cube {
    static constexpr const char* name = "cube";
    template <class T>
    T value(T x) const {
        return x * x * x;
    }
    template <class T>
    T derivative(T x, T) const {
        return T(3) * x * x;
    }
};

int main() {
    using namespace gradscope;
    auto net = mlp<float>({.widths = {4, 8, 2},
                           .activation = Cube{},
                           .init = [](MatrixView<float> w, Index, Index, Rng&) { w.setZero(); }});
    auto forward = net->register_forward_hook(
        [](Module<float>&, const Tensor<float>&, const Tensor<float>&) {});
    auto x = Tensor<float>::zeros(2, 3, true);
    auto grad = x.register_hook([](MatrixView<float> g) { (void)g; });
    auto doubles = mlp<double>({.widths = {4, 8, 2}});
    auto y = Tensor<double>::zeros(2, 3, true);
    auto report =
        gradcheck([](const std::vector<Tensor<double>>& in) { return in[0] * in[0]; }, {y});
    // diag::doctor's loss: the concept only, since calling the doctor would instantiate all of it.
    const std::vector<int> labels{0, 1, 0};
    const auto loss = [&](const Tensor<double>& out) { return cross_entropy(out, labels); };
    static_assert(diag::LossFunctionFor<decltype(loss), double>);
    // GradientMonitor's layer selector, a lambda and the built-in one.
    const diag::GradientMonitor<float>::Options watch_linear{
        .select = [](const std::string& path, Module<float>&) { return !path.empty(); }};
    const diag::GradientMonitor<float>::Options watch_norms{
        .select = diag::GradientMonitor<float>::linear_or_layer_norm};
}
