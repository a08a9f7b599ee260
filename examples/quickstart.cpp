// Trains a small tanh network on two interleaved spirals with nothing but the autodiff core:
// parameters are leaves, the forward pass records a graph, backward fills the gradients and
// a hand-written SGD step with momentum updates the weights.
//
// (The layer library's mlp() builder and optimisers will replace the hand-written parts.)
#include <gradscope/gradscope.hpp>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <vector>

using namespace gradscope;

namespace {

// Two spirals of `per_class` points each, with a little noise; labels 0 and 1.
void make_spirals(Rng& rng, int per_class, Matrix<double>& x, Matrix<double>& onehot) {
    x.resize(2 * per_class, 2);
    onehot = Matrix<double>::Zero(2 * per_class, 2);
    for (int i = 0; i < per_class; ++i) {
        const double t = 0.25 + 3.0 * std::numbers::pi * i / per_class;  // angle
        const double r = t / (3.0 * std::numbers::pi);                   // radius grows with it
        for (int label = 0; label < 2; ++label) {
            const int row = 2 * i + label;
            const double sign = label == 0 ? 1.0 : -1.0;
            x(row, 0) = sign * r * std::cos(t) + rng.normal(0.0, 0.01);
            x(row, 1) = sign * r * std::sin(t) + rng.normal(0.0, 0.01);
            onehot(row, label) = 1.0;
        }
    }
}

}  // namespace

int main() {
    Rng rng(7);
    Matrix<double> x_data, y_data;
    make_spirals(rng, 200, x_data, y_data);
    const auto x = TensorD::constant(x_data);
    const auto y = TensorD::constant(y_data);

    // 2 -> 64 -> 64 -> 2, tanh, Xavier-normal weights (std = sqrt(2 / (fan_in + fan_out))).
    const std::vector<Index> widths{2, 64, 64, 2};
    std::vector<TensorD> params, velocity;
    for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
        const double std = std::sqrt(2.0 / static_cast<double>(widths[l] + widths[l + 1]));
        params.push_back(TensorD::parameter(rng.normal_matrix<double>(widths[l + 1], widths[l], 0.0, std)));
        params.push_back(TensorD::parameter(Matrix<double>::Zero(1, widths[l + 1])));
    }
    for (const auto& p : params) velocity.push_back(TensorD::constant(Matrix<double>::Zero(p.rows(), p.cols())));

    const double lr = 0.2, momentum = 0.9;
    const double n = static_cast<double>(x_data.rows());
    for (int step = 0; step <= 2000; ++step) {
        TensorD h = x;
        for (std::size_t l = 0; l < params.size(); l += 2) {
            h = linear(h, params[l], params[l + 1]);
            if (l + 2 < params.size()) h = tanh(h);
        }
        auto loss = -sum(log_softmax(h) * y) / n;  // cross-entropy
        for (auto& p : params) p.zero_grad();
        loss.backward();
        for (std::size_t i = 0; i < params.size(); ++i) {  // SGD with momentum
            auto v = velocity[i].data();
            v = momentum * v + params[i].grad();
            params[i].data() -= lr * v;
        }
        if (step % 400 == 0) {
            const Matrix<double>& logits = h.value();
            int correct = 0;
            for (Index r = 0; r < logits.rows(); ++r) {
                Index predicted = 0;
                logits.row(r).maxCoeff(&predicted);
                correct += y_data(r, predicted) == 1.0;
            }
            std::printf("step %4d  loss %.4f  accuracy %.1f%%\n", step, loss.item(),
                        100.0 * correct / n);
        }
    }
}
