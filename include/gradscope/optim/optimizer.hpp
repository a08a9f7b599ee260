// The optimiser base: the parameter list, per-parameter state buffers, the step counter and a
// checkpoint format for all of it.
//
// Semantics follow torch.optim: a parameter whose gradient has never been computed
// (has_grad() is false, PyTorch's `grad is None`) is skipped by step() and gets no state; its
// buffers are made on the first step in which it has a gradient, and its own step count
// (which Adam's bias correction uses) counts only the steps that updated it.
//
// Checkpoint names. state() lists
//   tensors: "<buffer>.<i>" for parameter i, e.g. "exp_avg.3", "momentum_buffer.0";
//   scalars: every hyper-parameter by its PyTorch name ("lr", "momentum", "beta1", ...;
//            flags such as "nesterov" are 0 or 1), then "step.<i>", the number of steps that
//            updated parameter i, for each parameter that has state.
// load_state accepts any subset of the hyper-parameters (the rest keep their values) and, per
// parameter, either nothing or "step.<i>" together with every buffer the options call for.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope {

template <class T>
struct OptimizerState {
    std::int64_t step = 0;  // how many times step() was called
    std::vector<std::pair<std::string, Matrix<T>>> tensors;
    std::vector<std::pair<std::string, double>> scalars;
};

// Hyper-parameters by name, in a fixed order per optimiser.
using HyperParameters = std::vector<std::pair<std::string, double>>;

namespace detail {

inline std::string format_number(double value) {
    std::ostringstream out;
    out << value;
    return out.str();
}

inline double hyper_parameter(const HyperParameters& all, std::string_view name) {
    for (const auto& [key, value] : all) {
        if (key == name) return value;
    }
    throw value_error("optimizer: no hyper-parameter named '" + std::string(name) + "'");
}

// A flag travels through a checkpoint as 0 or 1; anything else is a corrupt checkpoint.
inline bool hyper_flag(const char* optimizer, const HyperParameters& all, std::string_view name) {
    const double value = hyper_parameter(all, name);
    if (value != 0.0 && value != 1.0) {
        throw value_error(std::string(optimizer) + ": the flag '" + std::string(name) +
                          "' must be 0 or 1 (got " + format_number(value) + ")");
    }
    return value == 1.0;
}

inline void require_finite_at_least(const char* optimizer, const char* name, double value,
                                    double low) {
    if (!(std::isfinite(value) && value >= low)) {
        throw value_error(std::string(optimizer) + ": " + name + " must be a finite number >= " +
                          format_number(low) + " (got " + format_number(value) + ")");
    }
}

inline void require_non_negative(const char* optimizer, const char* name, double value) {
    require_finite_at_least(optimizer, name, value, 0.0);
}

// A decay factor or momentum: 1 would never forget, above 1 would diverge.
inline void require_unit_interval_open(const char* optimizer, const char* name, double value) {
    if (!(value >= 0.0 && value < 1.0)) {
        throw value_error(std::string(optimizer) + ": " + name + " must be in [0, 1) (got " +
                          format_number(value) + ")");
    }
}

inline void require_unit_interval_closed(const char* optimizer, const char* name, double value) {
    if (!(value >= 0.0 && value <= 1.0)) {
        throw value_error(std::string(optimizer) + ": " + name + " must be in [0, 1] (got " +
                          format_number(value) + ")");
    }
}

// Splits "exp_avg.12" into ("exp_avg", 12); nullopt when the name has no numeric suffix.
inline std::optional<std::pair<std::string_view, std::size_t>> split_indexed_name(
    std::string_view name) {
    const std::size_t dot = name.rfind('.');
    if (dot == std::string_view::npos || dot + 1 == name.size()) return std::nullopt;
    const std::string_view digits = name.substr(dot + 1);
    std::size_t index = 0;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
    return std::pair{name.substr(0, dot), index};
}

}  // namespace detail

template <class T>
class Optimizer {
public:
    virtual ~Optimizer() = default;

    // Updates every parameter that has a gradient, from that gradient and the state.
    virtual void step() = 0;

    // Sets every parameter's gradient to zero, keeping its buffer for the next backward.
    void zero_grad() {
        for (Tensor<T>& param : params_) param.zero_grad();
    }

    [[nodiscard]] const std::vector<Tensor<T>>& params() const noexcept { return params_; }

    // How many times step() has been called (including calls that found no gradient).
    [[nodiscard]] std::int64_t step_count() const noexcept { return step_count_; }

    // The learning rate, readable and settable so that a schedule can drive it.
    [[nodiscard]] virtual double lr() const = 0;
    virtual void set_lr(double lr) = 0;

    // Everything needed to continue training exactly where this optimiser is: a copy.
    [[nodiscard]] OptimizerState<T> state() const {
        OptimizerState<T> out;
        out.step = step_count_;
        out.scalars = hyper_parameters();
        const std::vector<std::string> buffer_names = check_hyper_parameters(out.scalars);
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            const ParamState& slot = slots_[i];
            if (slot.step == 0) continue;
            out.scalars.emplace_back("step." + std::to_string(i), static_cast<double>(slot.step));
            for (std::size_t b = 0; b < slot.buffers.size(); ++b) {
                out.tensors.emplace_back(buffer_names[b] + "." + std::to_string(i),
                                         slot.buffers[b]);
            }
        }
        return out;
    }

    // Restores a state made by state() (of an optimiser of the same kind over parameters of the
    // same shapes). Everything is checked before anything changes: on an error (value_error for
    // an unknown, duplicate, missing or out-of-range entry, shape_error for a buffer of the
    // wrong shape) the optimiser is exactly as it was.
    void load_state(const OptimizerState<T>& state) {
        const std::string where = std::string(name_) + ": load_state: ";
        if (state.step < 0) {
            throw value_error(where + "the step count must be >= 0 (got " +
                              std::to_string(state.step) + ")");
        }

        // Hyper-parameters: start from the current ones, overwrite those given.
        HyperParameters merged = hyper_parameters();
        std::vector<bool> seen_hyper(merged.size(), false);
        std::vector<std::int64_t> param_steps(params_.size(), 0);
        for (const auto& [key, value] : state.scalars) {
            bool matched = false;
            for (std::size_t h = 0; h < merged.size(); ++h) {
                if (merged[h].first != key) continue;
                if (seen_hyper[h]) {
                    throw value_error(where + "the scalar '" + key + "' is given twice");
                }
                seen_hyper[h] = true;
                merged[h].second = value;
                matched = true;
            }
            if (matched) continue;
            const auto indexed = detail::split_indexed_name(key);
            if (!indexed || indexed->first != "step") {
                throw value_error(where + "unknown scalar '" + key +
                                  "' (expected a hyper-parameter" + hyper_parameter_list(merged) +
                                  " or step.<parameter index>)");
            }
            const std::size_t index = check_index(where, key, indexed->second);
            // Integral, at least 1 (a parameter never updated has no entry), exact in a double.
            if (!(value >= 1.0 && value <= 9007199254740992.0 && value == std::floor(value))) {
                throw value_error(where + "'" + key + "' must be a whole number >= 1 (got " +
                                  detail::format_number(value) + ")");
            }
            if (param_steps[index] != 0) {
                throw value_error(where + "the scalar '" + key + "' is given twice");
            }
            param_steps[index] = static_cast<std::int64_t>(value);
        }
        // Throws value_error naming the bad hyper-parameter (e.g. "SGD: momentum must be ...").
        const std::vector<std::string> buffer_names = check_hyper_parameters(merged);

        // Buffers: known names, indices in range, shapes that fit, no duplicates.
        std::vector<std::vector<const Matrix<T>*>> found(
            params_.size(), std::vector<const Matrix<T>*>(buffer_names.size(), nullptr));
        for (const auto& [key, matrix] : state.tensors) {
            const auto indexed = detail::split_indexed_name(key);
            std::size_t b = buffer_names.size();
            if (indexed) {
                for (std::size_t k = 0; k < buffer_names.size(); ++k) {
                    if (buffer_names[k] == indexed->first) b = k;
                }
            }
            if (b == buffer_names.size()) {
                throw value_error(where + "unknown tensor '" + key + "' (with these options " +
                                  name_ + " keeps " + buffer_list(buffer_names) + ")");
            }
            const std::size_t index = check_index(where, key, indexed->second);
            const Shape expected = params_[index].shape();
            const Shape got{matrix.rows(), matrix.cols()};
            if (got != expected) {
                throw shape_error(where + "the tensor '" + key + "' is " + to_string(got) +
                                  " but parameter " + std::to_string(index) + " is " +
                                  to_string(expected));
            }
            if (found[index][b] != nullptr) {
                throw value_error(where + "the tensor '" + key + "' is given twice");
            }
            found[index][b] = &matrix;
        }

        // A parameter has all of its state or none of it.
        for (std::size_t i = 0; i < params_.size(); ++i) {
            for (std::size_t b = 0; b < buffer_names.size(); ++b) {
                const std::string entry = buffer_names[b] + "." + std::to_string(i);
                if (param_steps[i] != 0 && found[i][b] == nullptr) {
                    throw value_error(where + "'step." + std::to_string(i) + "' is given but '" +
                                      entry + "' is missing");
                }
                if (param_steps[i] == 0 && found[i][b] != nullptr) {
                    throw value_error(where + "'" + entry + "' is given but 'step." +
                                      std::to_string(i) + "' is missing");
                }
            }
        }

        // All checked: build the new state aside, then commit with operations that cannot fail.
        std::vector<ParamState> slots(params_.size());
        for (std::size_t i = 0; i < params_.size(); ++i) {
            if (param_steps[i] == 0) continue;
            slots[i].step = param_steps[i];
            for (std::size_t b = 0; b < buffer_names.size(); ++b) {
                slots[i].buffers.push_back(*found[i][b]);
            }
        }
        set_hyper_parameters(merged);
        slots_.swap(slots);
        step_count_ = state.step;
    }

protected:
    // One parameter's state: its own step count (0 = never updated) and its buffers, in the
    // order check_hyper_parameters names them. Options change only through load_state, which
    // rebuilds every parameter's state, so one list of names describes all of them.
    struct ParamState {
        std::int64_t step = 0;
        std::vector<Matrix<T>> buffers;
    };

    // `name` prefixes every error message ("SGD", "Adam", ...).
    Optimizer(const char* name, std::vector<Tensor<T>> params)
        : name_(name), params_(std::move(params)), slots_(params_.size()) {
        if (params_.empty()) {
            throw value_error(std::string(name_) + ": the parameter list is empty");
        }
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const std::string which = std::string(name_) + ": parameter " + std::to_string(i);
            if (!params_[i].defined()) throw value_error(which + " is an empty Tensor handle");
            if (!params_[i].is_leaf()) {
                throw value_error(which + " is not a leaf (it was made by '" +
                                  std::string(params_[i].op()) +
                                  "'); only leaves can be optimised");
            }
            if (!params_[i].requires_grad()) {
                throw value_error(which + " does not require grad, so it would never be updated");
            }
            for (std::size_t j = 0; j < i; ++j) {
                if (&params_[j].node() == &params_[i].node()) {
                    throw value_error(which + " is the same tensor as parameter " +
                                      std::to_string(j) + "; it would be updated twice per step");
                }
            }
        }
    }
    Optimizer(const Optimizer&) = default;
    Optimizer(Optimizer&&) noexcept = default;
    Optimizer& operator=(const Optimizer&) = default;
    Optimizer& operator=(Optimizer&&) noexcept = default;

    // The derived optimiser's hyper-parameters, in a fixed order.
    [[nodiscard]] virtual HyperParameters hyper_parameters() const = 0;
    // Checks a full set of hyper-parameters (throws value_error naming the bad one) and returns
    // the names of the per-parameter buffers those options need.
    [[nodiscard]] virtual std::vector<std::string> check_hyper_parameters(
        const HyperParameters& candidate) const = 0;
    // Adopts hyper-parameters that check_hyper_parameters accepted.
    virtual void set_hyper_parameters(const HyperParameters& checked) = 0;

    // Counts a step and calls update(value, grad, state) for each parameter with a gradient.
    // Buffers are made (zero-filled) the first time a parameter is updated, and reused after,
    // so a steady-state step allocates nothing; update sees state.step == 1 on that first time.
    template <class Update>
    void for_each_param_with_grad(Update&& update) {
        ++step_count_;
        for (std::size_t i = 0; i < params_.size(); ++i) {
            Tensor<T>& param = params_[i];
            if (!param.has_grad()) continue;
            ParamState& slot = slots_[i];
            if (slot.step == 0) {
                const std::size_t count = check_hyper_parameters(hyper_parameters()).size();
                slot.buffers.assign(count, Matrix<T>::Zero(param.rows(), param.cols()));
            }
            ++slot.step;
            update(param.data(), param.grad(), slot);
        }
    }

    [[nodiscard]] const char* name() const noexcept { return name_; }

private:
    std::size_t check_index(const std::string& where, const std::string& key,
                            std::size_t index) const {
        if (index >= params_.size()) {
            throw value_error(where + "'" + key + "' refers to parameter " + std::to_string(index) +
                              " but there are only " + std::to_string(params_.size()));
        }
        return index;
    }

    static std::string hyper_parameter_list(const HyperParameters& all) {
        std::string out;
        for (const auto& entry : all) out += (out.empty() ? " (" : ", ") + entry.first;
        return out.empty() ? out : out + ")";
    }

    static std::string buffer_list(const std::vector<std::string>& names) {
        if (names.empty()) return "no buffers";
        std::string out;
        for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n + ".<i>";
        return out;
    }

    const char* name_;
    std::vector<Tensor<T>> params_;
    std::vector<ParamState> slots_;
    std::int64_t step_count_ = 0;
};

}  // namespace gradscope
