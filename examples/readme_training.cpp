#include <gradscope/gradscope.hpp>
#include <gradscope/io/safetensors.hpp>  // needs nlohmann_json: see "Use it in your project"
#include <iostream>

int main() {
    using namespace gradscope;
    // XOR: four points, two classes, which no linear model separates.
    const auto x = TensorF::constant((Matrix<float>(4, 2) << 0, 0, 0, 1, 1, 0, 1, 1).finished());
    const std::vector<int> y{0, 1, 1, 0};

    auto net = mlp({.widths = {2, 16, 16, 2}, .activation = Tanh{}, .seed = 1});  // float
    Adam<float> optimizer(net->parameters(), {.lr = 0.05});
    diag::GradientMonitor<float> monitor(*net, {.keep_last = 1});  // watches every Linear

    for (int step = 0; step <= 200; ++step) {
        auto loss = cross_entropy((*net)(x), y);
        optimizer.zero_grad();
        loss.backward();  // the monitor records this step's gradients
        optimizer.step();
        if (step % 50 == 0) std::cout << "step " << step << "  loss " << loss.item() << "\n";
    }
    std::cout << diag::format_profile(monitor.last());  // per layer: |dL/dz|, |dL/dW|, ...
    save_checkpoint("xor.safetensors", *net, optimizer);  // load_checkpoint reads it back
}
