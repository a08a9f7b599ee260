// The mlp() builder: a whole multilayer perceptron from one options aggregate.
//
//   auto net = mlp<float>({.widths = {784, 256, 256, 10}, .activation = ReLU{},
//                          .init = init::he_normal(), .norm = Normalization::batch});
//
// Layout (names are stable, for checkpoints and diagnostics):
//   plain hidden layer l:     layers.l = Sequential{linear, [bn|ln], act, [dropout]}
//   residual hidden layer l:  layers.l = Residual{branch = Sequential{[bn|ln], act, [dropout], linear}}
//   output layer:             layers.L = Sequential{linear} (no activation)
// so that every layer's Linear is named the same way (layers.l.linear, layers.L.linear) in the
// monitor's reports and in checkpoints.
// Residual blocks are pre-activation (He et al. 2016, "Identity Mappings in Deep Residual
// Networks"): the branch ends in its Linear, so a zero-initialised or scaled branch really is
// a zero or scaled contribution. A hidden layer that changes width stays plain.
#pragma once

#include "../core/concepts.hpp"
#include "activation.hpp"
#include "init.hpp"
#include "linear.hpp"
#include "mlp_choices.hpp"
#include "module.hpp"
#include "sequential.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gradscope {

template <class T>
struct MlpOptions {
    std::vector<Index> widths;  // input, hidden..., output: at least two entries
    ActivationChoice<T> activation = ReLU{};
    init::Initializer<T> init = {};       // every Linear's weight; empty: PyTorch's default
    init::Initializer<T> bias_init = {};  // every Linear's bias; empty: PyTorch's default
    // Default-constructed (none, false, 0) rather than from a value: see mlp_choices.hpp.
    NormChoice<T> norm = {};          // Normalization::none, batch or layer
    ResidualChoice<T> residual = {};  // true: hidden layers that keep their width are residual
    double residual_scale = 1.0;      // s in y = x + s * F(x)
    bool zero_init_residual = false;
    DropoutChoice<T> dropout = {};  // a probability in [0, 1)
    bool bias = true;
    std::uint64_t seed = 0;
};

template <class T>
class MLP : public Module<T> {
public:
    explicit MLP(const MlpOptions<T>& options) : options_(options) {
        const auto& w = options.widths;
        if (w.size() < 2) {
            throw value_error("mlp: widths needs at least an input and an output width, got " +
                              std::to_string(w.size()) + " entries");
        }
        for (std::size_t i = 0; i < w.size(); ++i) {
            if (w[i] <= 0) {
                throw value_error("mlp: widths[" + std::to_string(i) +
                                  "] = " + std::to_string(w[i]) + " is not positive");
            }
        }
        const double dropout = options.dropout.probability();
        if (!(dropout >= 0.0 && dropout < 1.0)) {
            throw value_error("mlp: dropout must be in [0, 1), got " +
                              detail::number_text(dropout));
        }
        detail::check_finite("mlp", "residual_scale", options.residual_scale);
        Rng rng(options.seed);
        layers_ = this->register_module("layers", std::make_shared<Sequential<T>>());
        const std::size_t depth = w.size() - 1;
        for (std::size_t l = 0; l + 1 < depth; ++l) {
            if (options.residual && w[l] == w[l + 1]) {
                layers_->add(options.residual.make(
                    residual_branch(w[l], rng, l),
                    ResidualOptions{.branch_scale = options.residual_scale,
                                    .zero_init_last = options.zero_init_residual}));
            } else {
                layers_->add(plain_block(w[l], w[l + 1], rng, l));
            }
        }
        auto output = std::make_shared<Sequential<T>>();
        output->add("linear", make_linear(w[depth - 1], w[depth], rng));
        layers_->add(output);
    }

    Tensor<T> forward_impl(const Tensor<T>& x) override { return (*layers_)(x); }

    [[nodiscard]] std::string type_name() const override { return "MLP"; }
    [[nodiscard]] const MlpOptions<T>& options() const noexcept { return options_; }
    [[nodiscard]] Sequential<T>& layers() noexcept { return *layers_; }

    // Files that name the output layer's tensors layers.L.weight and layers.L.bias, as the
    // layout without the output's `linear` child did, still load.
    [[nodiscard]] typename Module<T>::template Named<std::string> earlier_tensor_names()
        const override {
        const std::string output = "layers." + std::to_string(layers_->size() - 1);
        return {{output + ".weight", output + ".linear.weight"},
                {output + ".bias", output + ".linear.bias"}};
    }

    // Every Linear, input side first, with its path: the layers whose gradients a depth
    // study follows.
    [[nodiscard]] std::vector<std::pair<std::string, Linear<T>*>> linear_layers() {
        std::vector<std::pair<std::string, Linear<T>*>> out;
        for (auto& [path, module] : this->named_modules()) {
            if (auto* lin = dynamic_cast<Linear<T>*>(module)) out.emplace_back(path, lin);
        }
        return out;
    }

private:
    std::shared_ptr<Linear<T>> make_linear(Index in, Index out, Rng& rng) const {
        return std::make_shared<Linear<T>>(in, out, rng,
                                           LinearOptions<T>{.bias = options_.bias,
                                                            .weight_init = options_.init,
                                                            .bias_init = options_.bias_init});
    }

    void add_norm(Sequential<T>& block, Index width) const {
        if (auto norm = options_.norm.make(width)) block.add(options_.norm.layer_name(), norm);
    }

    void add_dropout(Sequential<T>& block, std::size_t layer) const {
        if (auto dropout = options_.dropout.make(options_.seed + 7919 * (layer + 1))) {
            block.add("dropout", dropout);
        }
    }

    std::shared_ptr<Sequential<T>> plain_block(Index in, Index out, Rng& rng,
                                               std::size_t layer) const {
        auto block = std::make_shared<Sequential<T>>();
        block->add("linear", make_linear(in, out, rng));
        add_norm(*block, out);
        block->add("act", options_.activation.make());
        add_dropout(*block, layer);
        return block;
    }

    std::shared_ptr<Sequential<T>> residual_branch(Index width, Rng& rng, std::size_t layer) const {
        auto branch = std::make_shared<Sequential<T>>();
        add_norm(*branch, width);
        branch->add("act", options_.activation.make());
        add_dropout(*branch, layer);
        branch->add("linear", make_linear(width, width, rng));
        return branch;
    }

    MlpOptions<T> options_;
    std::shared_ptr<Sequential<T>> layers_;
};

// mlp({...}) with a braced list cannot deduce T from it, and builds an MLP<float>, PyTorch's
// default dtype; mlp<double>({...}) for double. Constrained, so that mlp<int> is refused at the
// call rather than deep inside the layers it would build.
template <TensorScalar T = float>
std::shared_ptr<MLP<T>> mlp(const MlpOptions<T>& options) {
    return std::make_shared<MLP<T>>(options);
}

}  // namespace gradscope
