// The C++ half of the PyTorch interop test (tests/checkpoint_pytorch.py): writes
//   <dir>/mlp.safetensors  mlp<double>({4, 8, 3}, tanh, batch norm) after a few Adam steps, so
//                          that no parameter or running statistic has its initial value;
//   <dir>/io.safetensors   an input batch "input" and the network's eval-mode "output" for it.
//
//   write_checkpoint_fixture <dir>
#include <gradscope/gradscope.hpp>
#include <gradscope/io/safetensors.hpp>

#include <filesystem>
#include <iostream>
#include <string>

namespace {

using namespace gradscope;

// Plain named tensors, so that save_checkpoint can write the input/output pair as well.
class NamedTensors : public Module<double> {
public:
    void add(std::string name, const Matrix<double>& value) {
        this->register_buffer(std::move(name), TensorD::constant(value));
    }
    TensorD forward_impl(const TensorD& x) override { return x; }
    [[nodiscard]] std::string type_name() const override { return "NamedTensors"; }
};

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " <output directory>\n";
        return 2;
    }
    try {
        const std::filesystem::path dir = argv[1];
        std::filesystem::create_directories(dir);

        auto net = mlp<double>(
            {.widths = {4, 8, 3}, .activation = Tanh{}, .norm = Normalization::batch, .seed = 3});
        Adam<double> adam(net->parameters(), {.lr = 0.05});
        Rng rng(11);
        for (int step = 0; step < 5; ++step) {
            const auto batch = TensorD::constant(rng.normal_matrix<double>(16, 4, 0.5, 2.0));
            adam.zero_grad();
            mean(square((*net)(batch)-1.0)).backward();
            adam.step();
        }
        net->eval();
        const Matrix<double> input = rng.normal_matrix<double>(6, 4, 0.0, 1.5);
        const Matrix<double> output = (*net)(TensorD::constant(input)).value();

        NamedTensors io;
        io.add("input", input);
        io.add("output", output);
        save_checkpoint(dir / "mlp.safetensors", *net);
        save_checkpoint(dir / "io.safetensors", io);
        std::cout << "wrote " << (dir / "mlp.safetensors").string() << " and "
                  << (dir / "io.safetensors").string() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "write_checkpoint_fixture: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
