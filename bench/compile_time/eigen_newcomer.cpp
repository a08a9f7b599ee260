// Compile-time probe, the Eigen-only twin of gradscope_newcomer.cpp: the same classifier (20-64-
// 64-4, tanh, Xavier init, softmax cross-entropy, Adam, in double), each layer's gradient norm
// kept as a monitor would, with hand-written forward and backward formulas.
#include <Eigen/Dense>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using Mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Row = Eigen::Matrix<double, 1, Eigen::Dynamic>;

namespace {

Mat normal(std::mt19937& gen, int rows, int cols, double stddev) {
    std::normal_distribution<double> dist(0.0, stddev);
    Mat m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(gen);
    return m;
}

// A parameter with its gradient and Adam's two moments.
template <class M>
struct Parameter {
    M value, grad, m, v;
    explicit Parameter(M initial)
        : value(std::move(initial)), grad(M::Zero(value.rows(), value.cols())), m(grad), v(grad) {}
    void adam_step(double lr, int t) {
        m = 0.9 * m + 0.1 * grad;
        v = 0.999 * v + 0.001 * grad.cwiseAbs2();
        const double c1 = 1.0 - std::pow(0.9, t), c2 = 1.0 - std::pow(0.999, t);
        value.array() -= lr * (m.array() / c1) / ((v.array() / c2).sqrt() + 1e-8);
    }
};

struct Layer {
    Parameter<Mat> weight;
    Parameter<Row> bias;
};

}  // namespace

int main() {
    std::mt19937 gen(1);
    const Mat x = normal(gen, 64, 20, 1.0);
    std::vector<int> y(64);
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int>(i % 4);
    const std::vector<int> widths = {20, 64, 64, 4};
    std::vector<Layer> layers;
    for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
        const double xavier = std::sqrt(2.0 / (widths[l] + widths[l + 1]));
        layers.push_back({Parameter<Mat>(normal(gen, widths[l + 1], widths[l], xavier)),
                          Parameter<Row>(Row::Zero(widths[l + 1]))});
    }
    const auto forward = [&](std::vector<Mat>* inputs) {
        Mat h = x;
        for (std::size_t l = 0; l < layers.size(); ++l) {
            if (inputs) (*inputs)[l] = h;
            h = (h * layers[l].weight.value.transpose()).rowwise() + layers[l].bias.value;
            if (l + 1 < layers.size()) h = h.array().tanh().matrix();
        }
        return h;
    };
    std::vector<Mat> inputs(layers.size());
    std::vector<double> weight_grad_norms(layers.size());
    for (int step = 1; step <= 100; ++step) {
        const Mat logits = forward(&inputs);
        // Softmax cross-entropy, mean over the batch: dL/dz = (softmax - onehot) / B.
        Mat grad = (logits.colwise() - logits.rowwise().maxCoeff()).array().exp().matrix();
        grad.array().colwise() /= grad.rowwise().sum().array();
        for (Eigen::Index i = 0; i < grad.rows(); ++i)
            grad(i, y[static_cast<std::size_t>(i)]) -= 1.0;
        grad /= static_cast<double>(grad.rows());
        for (std::size_t l = layers.size(); l-- > 0;) {
            layers[l].weight.grad = grad.transpose() * inputs[l];
            layers[l].bias.grad = grad.colwise().sum();
            weight_grad_norms[l] = layers[l].weight.grad.norm();
            if (l > 0) {
                // inputs[l] = tanh(z_{l-1}): tanh' = 1 - tanh^2.
                grad =
                    ((grad * layers[l].weight.value).array() * (1.0 - inputs[l].array().square()))
                        .matrix();
            }
        }
        for (Layer& layer : layers) {
            layer.weight.adam_step(1e-3, step);
            layer.bias.adam_step(1e-3, step);
        }
    }
    const Mat logits = forward(nullptr);
    int correct = 0;
    for (Eigen::Index i = 0; i < logits.rows(); ++i) {
        Eigen::Index predicted = 0;
        logits.row(i).maxCoeff(&predicted);
        correct += predicted == y[static_cast<std::size_t>(i)] ? 1 : 0;
    }
    std::printf("accuracy %d/64, first layer |dL/dW| %g\n", correct, weight_grad_norms.front());
}
