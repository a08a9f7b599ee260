// Trains an MLP on two interleaved spirals, a problem no linear model can solve: the data is
// generated here, the network comes from the mlp() builder, Adam trains it, and a gradient
// monitor reports how much gradient reaches the first and the last layer as training goes.
#include <gradscope/gradscope.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

using namespace gradscope;

namespace {

struct Spirals {
    Matrix<float> points;     // [2n x 2]
    std::vector<int> labels;  // 0 or 1
};

// Two spirals of n points each, 1.5 turns, with a little noise.
Spirals make_spirals(int n, Rng& rng) {
    Spirals data{Matrix<float>(2 * n, 2), {}};
    for (int i = 0; i < n; ++i) {
        const double t = 0.5 + 3.0 * std::numbers::pi * i / n;  // angle grows with the radius
        const double r = t / (3.0 * std::numbers::pi);
        for (int label = 0; label < 2; ++label) {
            const double sign = label == 0 ? 1.0 : -1.0;  // the second spiral is the first rotated
            const Index row = 2 * i + label;
            data.points(row, 0) =
                static_cast<float>(sign * r * std::cos(t) + rng.normal(0.0, 0.02));
            data.points(row, 1) =
                static_cast<float>(sign * r * std::sin(t) + rng.normal(0.0, 0.02));
            data.labels.push_back(label);
        }
    }
    return data;
}

double accuracy(const Matrix<float>& logits, const std::vector<int>& labels) {
    int correct = 0;
    for (Index r = 0; r < logits.rows(); ++r) {
        Index predicted = 0;
        logits.row(r).maxCoeff(&predicted);
        correct += predicted == labels[static_cast<std::size_t>(r)];
    }
    return static_cast<double>(correct) / static_cast<double>(logits.rows());
}

}  // namespace

int main() {
    Rng rng(7);
    const Spirals data = make_spirals(500, rng);
    const auto x = TensorF::constant(data.points);

    auto net = mlp<float>({.widths = {2, 64, 64, 64, 2},
                           .activation = Tanh{},
                           .init = init::xavier_normal(init::calculate_gain("tanh")),
                           .seed = 1});
    Adam<float> optimizer(net->parameters(), {.lr = 0.01});
    diag::GradientMonitor<float> monitor(*net, {.keep_last = 1});

    std::printf("two spirals, %td points; MLP 2-64-64-64-2 (tanh), Adam lr 0.01\n", x.rows());
    std::printf("%5s  %8s  %8s  %12s  %12s\n", "step", "loss", "accuracy", "|dL/dz_1|",
                "|dL/dz_4|");
    const auto start = std::chrono::steady_clock::now();
    const int steps = 500;
    double final_accuracy = 0.0;
    for (int step = 0; step <= steps; ++step) {
        auto logits = (*net)(x);
        auto loss = cross_entropy(logits, data.labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        final_accuracy = accuracy(logits.value(), data.labels);
        if (step % 100 == 0) {
            const auto& layers = monitor.last().layers();
            std::printf("%5d  %8.4f  %7.1f%%  %12.3e  %12.3e\n", step, loss.item(),
                        100.0 * final_accuracy, layers.front().output_grad_norm,
                        layers.back().output_grad_norm);
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("training accuracy %.1f%% after %d steps in %.2f s\n", 100.0 * final_accuracy,
                steps, seconds);
    return final_accuracy >= 0.95 ? 0 : 1;  // the example is also a test
}
