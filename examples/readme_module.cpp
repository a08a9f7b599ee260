#include <gradscope/gradscope.hpp>
#include <iostream>

using namespace gradscope;

// y = x + scale * tanh(fc(norm(x))): a residual block whose learnt scale starts at 0.
class Block : public Module<float> {
public:
    Block(Index width, Rng& rng)
        : norm_(register_module("norm", std::make_shared<LayerNorm<float>>(width))),
          fc_(register_module("fc", std::make_shared<Linear<float>>(width, width, rng))),
          scale_(register_parameter("scale", TensorF::parameter(Matrix<float>::Zero(1, 1)))) {}

    Tensor<float> forward_impl(const Tensor<float>& x) override {
        return x + scale_ * tanh((*fc_)((*norm_)(x)));
    }

private:
    std::shared_ptr<LayerNorm<float>> norm_;
    std::shared_ptr<Linear<float>> fc_;
    TensorF scale_;
};

int main() {
    Rng rng(1);
    Sequential<float> net;  // layers by hand: Linear, an activation, four blocks, Linear
    net.add(std::make_shared<Linear<float>>(2, 16, rng));
    net.add(std::make_shared<Activation<float, ReLU>>());
    for (int i = 0; i < 4; ++i) net.add(std::make_shared<Block>(16, rng));
    net.add(std::make_shared<Linear<float>>(16, 2, rng));
    std::cout << net;  // each block's line says "Block": its class, unless type_name() is given

    // Two classes: the sign of x0 * x1.
    const Matrix<float> points = rng.normal_matrix<float>(256, 2);
    std::vector<int> labels;
    for (Index i = 0; i < points.rows(); ++i) labels.push_back(points(i, 0) * points(i, 1) > 0);

    Adam<float> adam(net.named_parameters(), {.lr = 0.01});
    for (int step = 0; step <= 300; ++step) {
        auto loss = cross_entropy(net(TensorF::constant(points)), labels);
        adam.zero_grad();
        loss.backward();
        adam.step();
        if (step % 100 == 0) std::cout << "step " << step << "  loss " << loss.item() << "\n";
    }
    NoGradGuard no_grad;
    std::cout << "accuracy " << metrics::accuracy(net(TensorF::constant(points)).value(), labels)
              << "\n";
}
