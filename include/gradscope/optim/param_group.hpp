// Parameter groups, as torch.optim's param_groups: each group is a list of parameters with its
// own options, and an option a group does not set takes the optimiser's default.
//
//   Adam<float> adam({{net->named_parameters_matching(is_weight), {}},
//                     {net->named_parameters_matching(is_norm), {.lr = 1e-2, .weight_decay = 0}}},
//                    {.lr = 1e-3, .weight_decay = 1e-4});
//
// GroupOptions holds every optimiser's options, each optional; a group that sets one its
// optimiser does not have (betas for SGD) is a value_error naming it, where PyTorch would
// silently keep the unused key.
#pragma once

#include "../core/tensor.hpp"

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

struct AdamBetas {
    double beta1 = 0.9;    // decay of the running mean of the gradient
    double beta2 = 0.999;  // decay of the running mean of its square
};

// Hyper-parameters by name, in a fixed order per optimiser.
using HyperParameters = std::vector<std::pair<std::string, double>>;

// A group's overrides of the optimiser's options, in the order of torch.optim's keywords (lr
// and weight_decay first, as every optimiser has them).
struct GroupOptions {
    std::optional<double> lr{};
    std::optional<double> weight_decay{};
    std::optional<double> momentum{};   // SGD, RMSprop
    std::optional<double> dampening{};  // SGD
    std::optional<bool> nesterov{};     // SGD
    std::optional<AdamBetas> betas{};   // Adam, AdamW
    std::optional<double> eps{};        // Adam, AdamW, RMSprop
    std::optional<bool> amsgrad{};      // Adam, AdamW
    std::optional<double> alpha{};      // RMSprop
    std::optional<bool> centered{};     // RMSprop
};

namespace detail {

// The options a group sets, under the optimisers' hyper-parameter names (flags as 0 or 1).
inline HyperParameters group_overrides(const GroupOptions& o) {
    HyperParameters out;
    const auto put = [&out](const char* name, const auto& value) {
        if (value) out.emplace_back(name, static_cast<double>(*value));
    };
    put("lr", o.lr);
    put("weight_decay", o.weight_decay);
    put("momentum", o.momentum);
    put("dampening", o.dampening);
    put("nesterov", o.nesterov);
    if (o.betas) {
        out.emplace_back("beta1", o.betas->beta1);
        out.emplace_back("beta2", o.betas->beta2);
    }
    put("eps", o.eps);
    put("amsgrad", o.amsgrad);
    put("alpha", o.alpha);
    put("centered", o.centered);
    return out;
}

}  // namespace detail

// The parameters an optimiser updates: a list of tensors ({w, b}, net->parameters()), whose
// state is then saved by position, or a named list (net->named_parameters()), whose state is
// saved by name. See Note [Optimiser state by name].
template <class T>
class ParameterList {
public:
    ParameterList(std::vector<Tensor<T>> tensors) : tensors_(std::move(tensors)) {
        for (std::size_t i = 0; i < tensors_.size(); ++i) keys_.push_back(std::to_string(i));
    }
    ParameterList(std::initializer_list<Tensor<T>> tensors)
        : ParameterList(std::vector<Tensor<T>>(tensors)) {}
    ParameterList(const std::vector<std::pair<std::string, Tensor<T>>>& named) : named_(true) {
        for (const auto& [name, tensor] : named) {
            keys_.push_back(name);
            tensors_.push_back(tensor);
        }
    }

    [[nodiscard]] const std::vector<Tensor<T>>& tensors() const noexcept { return tensors_; }
    [[nodiscard]] const std::vector<std::string>& keys() const noexcept { return keys_; }
    [[nodiscard]] bool named() const noexcept { return named_; }

private:
    std::vector<Tensor<T>> tensors_;
    std::vector<std::string> keys_;
    bool named_ = false;
};

// One parameter group: its parameters and the options it sets.
template <class T>
struct ParamGroup {
    ParameterList<T> params;
    GroupOptions options = {};
};

}  // namespace gradscope
