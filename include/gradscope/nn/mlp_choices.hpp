// What the mlp() builder puts into each hidden layer besides its Linear and activation, as
// MlpOptions names them: the normalisation (`.norm = Normalization::batch`), the dropout
// (`.dropout = 0.1`) and the residual blocks (`.residual = true`).
//
// Each option holds the function that makes its layer, taken where the option is set. A
// program that never asks for batch norm, layer norm, dropout or residual blocks therefore never
// compiles those layers: the builder calls whatever maker the options hold, rather than naming
// every layer type it could build. For a header-only program that trains a plain mlp() that is
// over a third of its compile time (docs/PERFORMANCE.md, "Compile time").
#pragma once

#include "../core/errors.hpp"
#include "batchnorm.hpp"
#include "dropout.hpp"
#include "layernorm.hpp"
#include "module.hpp"
#include "residual.hpp"

#include <cstdint>
#include <memory>
#include <string>

namespace gradscope {

enum class Normalization { none, batch, layer };

// MlpOptions::norm: none, or the normalisation layer after each hidden Linear.
template <class T>
class NormChoice {
public:
    NormChoice() = default;  // Normalization::none

    NormChoice(Normalization kind)
        : kind_(kind) {  // NOLINT: implicit, `.norm = Normalization::batch`
        switch (kind) {
            case Normalization::none:
                break;
            case Normalization::batch:
                make_ = [](Index width) -> std::shared_ptr<Module<T>> {
                    return std::make_shared<BatchNorm1d<T>>(width);
                };
                break;
            case Normalization::layer:
                make_ = [](Index width) -> std::shared_ptr<Module<T>> {
                    return std::make_shared<LayerNorm<T>>(width);
                };
                break;
            default:
                throw value_error("mlp: norm: " + std::to_string(static_cast<int>(kind)) +
                                  " is not a Normalization (none, batch or layer)");
        }
    }

    [[nodiscard]] Normalization kind() const noexcept { return kind_; }
    friend bool operator==(const NormChoice& choice, Normalization kind) noexcept {
        return choice.kind_ == kind;
    }

    // The layer's name inside its block: "bn" or "ln" (names are stable, for checkpoints).
    [[nodiscard]] const char* layer_name() const noexcept {
        return kind_ == Normalization::batch ? "bn" : "ln";
    }
    // The normalisation layer for a block of this width; nullptr for none.
    [[nodiscard]] std::shared_ptr<Module<T>> make(Index width) const {
        return make_ ? make_(width) : nullptr;
    }

private:
    Normalization kind_ = Normalization::none;
    std::shared_ptr<Module<T>> (*make_)(Index width) = nullptr;
};

// MlpOptions::dropout: the probability of zeroing an activation, in [0, 1) (the builder checks);
// 0, the default, adds no Dropout layer.
template <class T>
class DropoutChoice {
public:
    DropoutChoice() = default;  // no dropout

    DropoutChoice(double probability)  // NOLINT: implicit, `.dropout = 0.1`
        : probability_(probability) {
        make_ = [](double p, std::uint64_t seed) -> std::shared_ptr<Module<T>> {
            return std::make_shared<Dropout<T>>(p, seed);
        };
    }

    [[nodiscard]] double probability() const noexcept { return probability_; }

    // The Dropout layer with this seed; nullptr when the probability is 0.
    [[nodiscard]] std::shared_ptr<Module<T>> make(std::uint64_t seed) const {
        return probability_ > 0.0 && make_ ? make_(probability_, seed) : nullptr;
    }

private:
    double probability_ = 0.0;
    std::shared_ptr<Module<T>> (*make_)(double probability, std::uint64_t seed) = nullptr;
};

// MlpOptions::residual: whether each hidden layer that keeps its width is a residual block
// around its branch (false, the default: every hidden layer is plain).
template <class T>
class ResidualChoice {
public:
    ResidualChoice() = default;  // plain hidden layers

    ResidualChoice(bool residual) {  // NOLINT: implicit, `.residual = true`
        if (residual) {
            make_ = [](std::shared_ptr<Module<T>> branch,
                       const ResidualOptions& options) -> std::shared_ptr<Module<T>> {
                return std::make_shared<Residual<T>>(std::move(branch), options);
            };
        }
    }

    explicit operator bool() const noexcept { return make_ != nullptr; }
    friend bool operator==(const ResidualChoice& choice, bool residual) noexcept {
        return static_cast<bool>(choice) == residual;
    }

    // The residual block around this branch; nullptr when the choice is false.
    [[nodiscard]] std::shared_ptr<Module<T>> make(std::shared_ptr<Module<T>> branch,
                                                  const ResidualOptions& options) const {
        return make_ ? make_(std::move(branch), options) : nullptr;
    }

private:
    std::shared_ptr<Module<T>> (*make_)(std::shared_ptr<Module<T>> branch,
                                        const ResidualOptions& options) = nullptr;
};

}  // namespace gradscope
