// The printable module summary (nn/summary.hpp): `std::cout << net` shows the tree, what each
// layer is, its parameters' shapes and counts, and the totals, as PyTorch's print(model) does.
#include "support/testing.hpp"

#include <gradscope/nn.hpp>

#include <sstream>
#include <string>
#include <vector>

using namespace gradscope;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

// The line whose path column is `path` (the root's is empty: the first line after the header).
std::string line_at(const std::vector<std::string>& lines, const std::string& path) {
    if (path.empty()) return lines.at(1);
    for (const auto& line : lines) {
        if (line.rfind(path + " ", 0) == 0) return line;
    }
    return {};
}

}  // namespace

// Modules of one's own that do not override type_name(), in a namespace and as a template
// (outside the anonymous namespace, whose name the class name would carry).
namespace app {

struct Cell {};

class Block : public Module<double> {
public:
    Block() { register_parameter("scale", TensorD::parameter(Matrix<double>::Ones(1, 1))); }
    Tensor<double> forward_impl(const Tensor<double>& x) override { return x; }
    void register_twice() {
        register_parameter("scale", TensorD::parameter(Matrix<double>::Ones(1, 1)));
    }
};

template <class Tag>
class Gated : public Module<double> {
public:
    Gated() { register_module("block", std::make_shared<Block>()); }
    Tensor<double> forward_impl(const Tensor<double>& x) override { return x; }
};

}  // namespace app

TEST_CASE("printing an MLP shows every module, each Linear's sizes and the parameter count",
          "[summary]") {
    auto net = mlp<float>({.widths = {784, 256, 10}, .norm = Normalization::batch});
    std::ostringstream out;
    out << *net;
    const std::string text = out.str();
    INFO(text);
    CHECK(text == summary(*net));
    const auto lines = lines_of(text);

    // A header, one line per module (depth first, as named_modules), the totals.
    REQUIRE(lines.size() == 1 + net->named_modules().size() + 1);
    CHECK(lines[0].rfind("path", 0) == 0);
    CHECK(line_at(lines, "").find("MLP") != std::string::npos);
    for (const auto& [path, module] : net->named_modules()) {
        if (!path.empty()) CHECK(!line_at(lines, path).empty());
    }

    const std::string first = line_at(lines, "layers.0.linear");  // block 0: linear, bn, act
    CHECK(first.find("Linear(in=784, out=256, bias=true)") != std::string::npos);
    CHECK(first.find("weight [256x784], bias [1x256]") != std::string::npos);
    CHECK(first.find(std::to_string(784 * 256 + 256)) != std::string::npos);

    // The children are indented below their parent, so the tree shows.
    const std::string block = line_at(lines, "layers.0");
    CHECK(first.find("Linear") > block.find("Sequential"));
    CHECK(block.find("Sequential") > line_at(lines, "layers").find("Sequential"));

    CHECK(text.find("BatchNorm1d(features=256, eps=1e-05, momentum=0.1, affine=true)") !=
          std::string::npos);
    CHECK(text.find("Activation(relu)") != std::string::npos);
    CHECK(text.find("Linear(in=256, out=10, bias=true)") != std::string::npos);
    const auto total = std::to_string(net->parameter_count());
    CHECK(lines.back() == "parameters: " + total + ", of which trainable: " + total);
}

TEST_CASE("the summary tells frozen parameters, bias-free and non-affine layers apart",
          "[summary]") {
    Rng rng(1);
    auto net = std::make_shared<Sequential<double>>();
    auto linear =
        net->add(std::make_shared<Linear<double>>(3, 4, rng, LinearOptions<double>{.bias = false}));
    net->add(std::make_shared<BatchNorm1d<double>>(4, BatchNormOptions{.affine = false}));
    net->add(std::make_shared<Linear<double>>(4, 2, rng));
    linear->named_parameters().front().second.set_requires_grad(false);

    const std::string text = summary(*net);
    CHECK(text.find("Linear(in=3, out=4, bias=false)") != std::string::npos);
    CHECK(text.find("BatchNorm1d(features=4, eps=1e-05, momentum=0.1, affine=false)") !=
          std::string::npos);
    // 12 frozen weights, then 4 x 2 + 2 trainable.
    CHECK(lines_of(text).back() == "parameters: 22, of which trainable: 10");
}

TEST_CASE("a recurrent cell shows its sizes after its activation", "[summary]") {
    Rng rng(2);
    RNN<double, Tanh> rnn(3, 16, rng);
    const std::string text = summary(rnn);
    CHECK(text.find("ElmanCell(tanh, input=3, hidden=16)") != std::string::npos);
    CHECK(text.find("weight_ih [16x3]") != std::string::npos);
}

TEST_CASE("options no shape shows are printed too: dropout, layer norm, residual scale",
          "[summary]") {
    auto net = mlp<double>({.widths = {6, 8, 8, 2},
                            .norm = Normalization::layer,
                            .residual = true,
                            .residual_scale = 0.5,
                            .dropout = 0.25});
    const std::string text = summary(*net);
    INFO(text);
    CHECK(text.find("Dropout(p=0.25)") != std::string::npos);
    CHECK(text.find("LayerNorm(features=8, eps=1e-05, affine=true)") != std::string::npos);
    CHECK(text.find("Residual(scale=0.5)") != std::string::npos);
}

TEST_CASE("a module of one's own is named by its class unless it names itself", "[summary]") {
    app::Gated<app::Cell> gated;
    const auto lines = lines_of(summary(gated));
    INFO(summary(gated));
    // Its namespaces dropped, its template arguments kept, as the source spells them.
    CHECK(line_at(lines, "").find("Gated<app::Cell>") != std::string::npos);
    CHECK(line_at(lines, "block").find("Block") != std::string::npos);
    CHECK(line_at(lines, "block").find("app::Block") == std::string::npos);
    // Error messages name it the same way.
    app::Block block;
    CHECK_THROWS_WITH(block.register_twice(),
                      Catch::Contains("Block: register_parameter('scale')"));
    // A class in a function's scope, as a test or a small program writes one.
    struct Local : Module<double> {
        Tensor<double> forward_impl(const Tensor<double>& x) override { return x; }
    };
    CHECK(Local().type_name() == "Local");
}
