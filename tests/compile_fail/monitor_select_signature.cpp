// A layer selector takes the module's path and the module; this one takes the module alone.
// expect-error: LayerSelectorFor
#include <gradscope/diag/monitor.hpp>
#include <gradscope/nn/mlp.hpp>

int main() {
    using namespace gradscope;
    auto net = mlp<float>({.widths = {4, 8, 2}});
    diag::GradientMonitor<float> monitor(
        *net, {.select = [](Module<float>& module) { return module.type_name() == "Linear"; }});
}
