// Compile-time probe, the Eigen-only twin of gradscope_mlp.cpp: the same MLP (32-64-64-8, ReLU,
// He init, MSE, SGD) trained with hand-written forward and backward formulas.
#include <Eigen/Dense>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Row = Eigen::Matrix<float, 1, Eigen::Dynamic>;

namespace {

Mat normal(std::mt19937& gen, int rows, int cols, float stddev) {
    std::normal_distribution<float> dist(0.0f, stddev);
    Mat m(rows, cols);
    for (Eigen::Index i = 0; i < m.size(); ++i) m.data()[i] = dist(gen);
    return m;
}

struct Layer {
    Mat weight, weight_grad;
    Row bias, bias_grad;
};

}  // namespace

int main() {
    std::mt19937 gen(1);
    const Mat x = normal(gen, 64, 32, 1.0f);
    const Mat y = normal(gen, 64, 8, 1.0f);
    const std::vector<int> widths = {32, 64, 64, 8};
    std::vector<Layer> layers;
    for (std::size_t l = 0; l + 1 < widths.size(); ++l) {
        const float he = std::sqrt(2.0f / static_cast<float>(widths[l]));
        layers.push_back(
            {normal(gen, widths[l + 1], widths[l], he), Mat(), Row::Zero(widths[l + 1]), Row()});
    }
    std::vector<Mat> inputs(layers.size());
    float loss_value = 0;
    for (int step = 0; step < 100; ++step) {
        Mat h = x;
        for (std::size_t l = 0; l < layers.size(); ++l) {
            inputs[l] = h;
            h = (h * layers[l].weight.transpose()).rowwise() + layers[l].bias;
            if (l + 1 < layers.size()) h = h.cwiseMax(0.0f);
        }
        Mat grad = h - y;
        loss_value = grad.squaredNorm() / static_cast<float>(grad.size());
        grad *= 2.0f / static_cast<float>(grad.size());
        for (std::size_t l = layers.size(); l-- > 0;) {
            layers[l].weight_grad = grad.transpose() * inputs[l];
            layers[l].bias_grad = grad.colwise().sum();
            if (l > 0)
                grad =
                    ((grad * layers[l].weight).array() * (inputs[l].array() > 0.0f).cast<float>())
                        .matrix();
        }
        for (Layer& layer : layers) {
            layer.weight -= 0.01f * layer.weight_grad;
            layer.bias -= 0.01f * layer.bias_grad;
        }
    }
    std::printf("final loss %g\n", static_cast<double>(loss_value));
}
