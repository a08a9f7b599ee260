// The optimiser base: the parameter list, per-parameter state buffers, the step counter and a
// checkpoint format for all of it.
//
// Semantics follow torch.optim: a parameter whose gradient has never been computed
// (has_grad() is false, PyTorch's `grad is None`) is skipped by step() and gets no state; its
// buffers are made on the first step in which it has a gradient, and its own step count
// (which Adam's bias correction uses) counts only the steps that updated it.
//
// Note [Optimiser state by name]. Each parameter has a key that its state is saved under: its
// name when the optimiser was given names (Module::named_parameters(): "layers.0.linear.weight"),
// else its position ("0", "1", ...). state() lists
//   tensors: "<buffer>.<key>", e.g. "exp_avg.layers.0.linear.weight", "momentum_buffer.0";
//   scalars: every hyper-parameter by its PyTorch name ("lr", "momentum", "beta1", ...;
//            flags such as "nesterov" are 0 or 1), then "step.<key>" for every parameter: the
//            number of steps that updated it, 0 for one never updated (so that a state for
//            other parameters is told apart from a state for parameters never updated).
//   With parameter groups (param_group.hpp), group 0's hyper-parameters keep their plain names
//   and group g > 0's are "group<g>.<name>" ("group1.lr"), so a state saved before groups
//   existed is a state for group 0 and loads as one; a state naming a group the optimiser
//   does not have is a value_error. Which group a parameter is in is the optimiser's own
//   construction: its buffers are matched by key as ever, and must be the ones its group's
//   options keep.
// Buffer and hyper-parameter names have no '.', so a key is everything after the first '.'.
// load_state matches keys, not positions: a state saved from a network whose parameters were
// registered in another order restores each parameter's own state, and a key this optimiser
// does not have, or a parameter the state has no "step.<key>" for, is a value_error naming it.
// A state whose keys are all positions and none of them a name of a named optimiser (as
// written before names were kept) is read by position. load_state accepts any subset of the
// hyper-parameters (the rest keep their values); a state with no per-parameter entries at all
// leaves every parameter fresh.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"
#include "checks.hpp"
#include "param_group.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <span>
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

namespace detail {

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
                          "' must be 0 or 1, got " + number_text(value));
    }
    return value == 1.0;
}

inline bool is_position(std::string_view key) {
    std::size_t index = 0;
    const auto [end, error] = std::from_chars(key.data(), key.data() + key.size(), index);
    return error == std::errc() && end == key.data() + key.size();
}

// Splits a per-parameter entry "exp_avg.layers.0.linear.weight" into ("exp_avg",
// "layers.0.linear.weight").
inline std::optional<std::pair<std::string_view, std::string_view>> split_entry(
    std::string_view name) {
    const std::size_t dot = name.find('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size()) return std::nullopt;
    return std::pair{name.substr(0, dot), name.substr(dot + 1)};
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

    // Every parameter, group after group.
    [[nodiscard]] const std::vector<Tensor<T>>& params() const noexcept { return params_; }

    // The key each parameter's state is saved under: its name, or its position in params()
    // ("0", "1", ...) for an optimiser made from lists without names.
    [[nodiscard]] const std::vector<std::string>& param_keys() const noexcept { return keys_; }

    // Parameter groups (param_group.hpp): an optimiser made from one list has one.
    [[nodiscard]] std::size_t group_count() const noexcept { return group_begin_.size() - 1; }
    // The parameters of one group, a part of params().
    [[nodiscard]] std::span<const Tensor<T>> group_params(std::size_t group) const {
        check_group("group_params", group);
        return std::span<const Tensor<T>>(params_).subspan(
            group_begin_[group], group_begin_[group + 1] - group_begin_[group]);
    }
    // One group's options by name, as state() saves them (PyTorch's param_groups[g]).
    [[nodiscard]] HyperParameters group_hyper_parameters(std::size_t group) const {
        check_group("group_hyper_parameters", group);
        return hyper_parameters(group);
    }

    // How many times step() has been called (including calls that found no gradient).
    [[nodiscard]] std::int64_t step_count() const noexcept { return step_count_; }

    // The learning rate of a group (the first by default), readable and settable so that a
    // schedule can drive it.
    [[nodiscard]] double lr(std::size_t group = 0) const {
        check_group("lr", group);
        return detail::hyper_parameter(hyper_parameters(group), "lr");
    }
    // Sets every group's lr; if the lr is refused for any group, none changes.
    void set_lr(double lr) {
        std::vector<HyperParameters> all;
        for (std::size_t g = 0; g < group_count(); ++g) all.push_back(with_lr(g, lr));
        for (std::size_t g = 0; g < group_count(); ++g) set_hyper_parameters(g, all[g]);
    }
    void set_lr(std::size_t group, double lr) {
        check_group("set_lr", group);
        set_hyper_parameters(group, with_lr(group, lr));
    }

    // A group's lr before any scheduler changed it (PyTorch's param_group["initial_lr"]): the
    // first scheduler made for this optimiser records it and every scheduler takes it as its
    // base lr, so that schedulers chained on one optimiser scale the same base
    // (optim/scheduler.hpp).
    [[nodiscard]] std::optional<double> initial_lr(std::size_t group = 0) const {
        check_group("initial_lr", group);
        return initial_lrs_[group];
    }
    void set_initial_lr(std::size_t group, double lr) {
        check_group("set_initial_lr", group);
        initial_lrs_[group] = lr;
    }

    // Everything needed to continue training exactly where this optimiser is: a copy, with
    // each parameter's entries under its key (param_keys()).
    [[nodiscard]] OptimizerState<T> state() const { return state_under(keys_); }

    // The same with each parameter's entries under the given key instead, one per parameter
    // (the checkpoint passes the module's names, so that a file is keyed by name even for an
    // optimiser made from net->parameters()).
    [[nodiscard]] OptimizerState<T> state(const std::vector<std::string>& keys) const {
        check_keys("state", keys);
        return state_under(keys);
    }

    // Restores a state made by state() (of an optimiser of the same kind over parameters with
    // the same keys and shapes; see Note [Optimiser state by name]). Everything is checked
    // before anything changes: on an error (value_error for an unknown, duplicate, missing or
    // out-of-range entry, shape_error for a buffer of the wrong shape) the optimiser is exactly
    // as it was.
    void load_state(const OptimizerState<T>& state) { load_under(state, keys_, named_); }

    // The same, matching the state's entries against the given keys, one per parameter.
    void load_state(const OptimizerState<T>& state, const std::vector<std::string>& keys) {
        check_keys("load_state", keys);
        load_under(state, keys, true);
    }

private:
    // Group 0's hyper-parameters are saved under their own names, as before groups existed;
    // group g > 0's as "group<g>.<name>".
    static std::string group_prefix(std::size_t group) {
        return group == 0 ? std::string() : "group" + std::to_string(group) + ".";
    }

    [[nodiscard]] OptimizerState<T> state_under(const std::vector<std::string>& keys) const {
        OptimizerState<T> out;
        out.step = step_count_;
        std::vector<std::vector<std::string>> buffer_names;
        for (std::size_t g = 0; g < group_count(); ++g) {
            const HyperParameters h = hyper_parameters(g);
            buffer_names.push_back(check_hyper_parameters(h));
            for (const auto& [name, value] : h)
                out.scalars.emplace_back(group_prefix(g) + name, value);
        }
        for (std::size_t i = 0; i < slots_.size(); ++i) {
            const ParamState& slot = slots_[i];
            const std::vector<std::string>& names = buffer_names[group_of_[i]];
            out.scalars.emplace_back("step." + keys[i], static_cast<double>(slot.step));
            for (std::size_t b = 0; b < slot.buffers.size(); ++b) {
                out.tensors.emplace_back(names[b] + "." + keys[i], slot.buffers[b]);
            }
        }
        return out;
    }

    // The group whose hyper-parameter `name` is ("lr": 0, "group2.lr": 2), and the entry in
    // `merged` it sets; nullopt if it is not one. A group this optimiser lacks is an error.
    std::optional<std::pair<std::size_t, std::pair<std::string, double>*>> hyper_entry(
        const std::string& name, std::vector<HyperParameters>& merged,
        const std::string& where) const {
        const auto find = [](HyperParameters& h, std::string_view key) {
            const auto it = std::find_if(h.begin(), h.end(),
                                         [&](const auto& entry) { return entry.first == key; });
            return it == h.end() ? nullptr : &*it;
        };
        if (auto* entry = find(merged[0], name)) return std::pair{std::size_t{0}, entry};
        const auto parts = detail::split_entry(name);
        if (!parts || !parts->first.starts_with("group")) return std::nullopt;
        const std::string_view number = parts->first.substr(5);
        if (!detail::is_position(number)) return std::nullopt;
        const std::size_t g = std::stoul(std::string(number));
        if (g == 0 || g >= group_count()) {
            throw value_error(where + "the scalar '" + name + "' is for parameter group " +
                              std::string(number) + ", but this optimiser has " +
                              std::to_string(group_count()) + " group" +
                              (group_count() == 1 ? "" : "s") + " (0 to " +
                              std::to_string(group_count() - 1) + "; group 0's need no prefix)");
        }
        if (auto* entry = find(merged[g], parts->second)) return std::pair{g, entry};
        return std::nullopt;
    }

    void load_under(const OptimizerState<T>& state, const std::vector<std::string>& keys,
                    bool named) {
        const std::string where = std::string(name_) + ": load_state: ";
        if (state.step < 0) {
            throw value_error(where + "the step count must be >= 0, got " +
                              std::to_string(state.step));
        }

        // Hyper-parameters: start from each group's current ones, overwrite those given. Every
        // other scalar is a per-parameter step count.
        std::vector<HyperParameters> merged;
        std::vector<std::vector<bool>> seen_hyper;
        for (std::size_t g = 0; g < group_count(); ++g) {
            merged.push_back(hyper_parameters(g));
            seen_hyper.emplace_back(merged.back().size(), false);
        }
        std::vector<std::pair<std::string_view, double>> steps;  // (key, value)
        for (const auto& scalar : state.scalars) {
            const std::string& name = scalar.first;
            const double value = scalar.second;
            if (const auto hyper = hyper_entry(name, merged, where)) {
                const auto [g, entry] = *hyper;
                const auto index = static_cast<std::size_t>(entry - merged[g].data());
                if (seen_hyper[g][index]) {
                    throw value_error(where + "the scalar '" + name + "' is given twice");
                }
                seen_hyper[g][index] = true;
                entry->second = value;
                continue;
            }
            const auto parts = detail::split_entry(name);
            if (!parts || parts->first != "step") {
                throw value_error(where + "unknown scalar '" + name +
                                  "' (expected a hyper-parameter" +
                                  hyper_parameter_list(merged[0]) +
                                  (group_count() > 1 ? ", group<g>.<hyper-parameter>" : "") +
                                  " or step.<parameter>)");
            }
            steps.emplace_back(parts->second, value);
        }
        // Throws value_error naming the bad hyper-parameter (e.g. "SGD: momentum must be ...").
        std::vector<std::vector<std::string>> buffer_names;
        for (std::size_t g = 0; g < group_count(); ++g) {
            buffer_names.push_back(checked(g, merged[g]));
        }

        struct BufferEntry {
            std::string_view key;
            std::string_view buffer;
            const std::string* name;
            const Matrix<T>* matrix;
        };
        std::vector<BufferEntry> buffers;
        for (const auto& [name, matrix] : state.tensors) {
            const auto parts = detail::split_entry(name);
            const bool known =
                parts && std::any_of(buffer_names.begin(), buffer_names.end(), [&](const auto& n) {
                    return std::find(n.begin(), n.end(), parts->first) != n.end();
                });
            if (!known) {
                throw value_error(where + "unknown tensor '" + name + "' (with these options " +
                                  name_ + " keeps " + buffer_list(buffer_names) + ")");
            }
            buffers.push_back({parts->second, parts->first, &name, &matrix});
        }

        const KeyResolver resolve(keys, named, where, steps, buffers);

        // Step counts: whole numbers >= 0 (0: never updated), exact in a double, one each.
        std::vector<std::optional<std::int64_t>> param_steps(params_.size());
        for (const auto& [key, value] : steps) {
            const std::string entry = "step." + std::string(key);
            if (!(value >= 0.0 && value <= 9007199254740992.0 && value == std::floor(value))) {
                throw value_error(where + "'" + entry + "' must be a whole number >= 0, got " +
                                  detail::number_text(value));
            }
            std::optional<std::int64_t>& step = param_steps[resolve(key, entry)];
            if (step) throw value_error(where + "the scalar '" + entry + "' is given twice");
            step = static_cast<std::int64_t>(value);
        }

        // Buffers: ones the parameter's group keeps, shapes that fit, no duplicates.
        std::vector<std::vector<const Matrix<T>*>> found(params_.size());
        for (std::size_t i = 0; i < params_.size(); ++i) {
            found[i].assign(buffer_names[group_of_[i]].size(), nullptr);
        }
        for (const BufferEntry& entry : buffers) {
            const std::size_t index = resolve(entry.key, *entry.name);
            const std::vector<std::string>& names = buffer_names[group_of_[index]];
            const auto b = std::find(names.begin(), names.end(), entry.buffer);
            if (b == names.end()) {
                throw value_error(where + "the tensor '" + *entry.name + "' is for " +
                                  describe(index, keys, named) + " of parameter group " +
                                  std::to_string(group_of_[index]) + ", whose options keep " +
                                  buffer_list({names}));
            }
            const Shape expected = params_[index].shape();
            const Shape got{entry.matrix->rows(), entry.matrix->cols()};
            if (got != expected) {
                throw shape_error(where + "the tensor '" + *entry.name + "' is " + to_string(got) +
                                  " but " + describe(index, keys, named) + " is " +
                                  to_string(expected));
            }
            const auto slot = static_cast<std::size_t>(b - names.begin());
            if (found[index][slot] != nullptr) {
                throw value_error(where + "the tensor '" + *entry.name + "' is given twice");
            }
            found[index][slot] = entry.matrix;
        }

        // Every parameter is accounted for (unless the state has no per-parameter entries at
        // all), and has all of its buffers if it was updated, none if it was not.
        const bool per_parameter = !steps.empty() || !buffers.empty();
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const std::string key = resolve.key_of(i);
            if (per_parameter && !param_steps[i]) {
                throw value_error(where + "the state has no 'step." + key + "' for " +
                                  describe(i, keys, named) +
                                  ": it was saved for other parameters (or is incomplete)");
            }
            const std::int64_t step = param_steps[i].value_or(0);
            const std::vector<std::string>& names = buffer_names[group_of_[i]];
            for (std::size_t b = 0; b < names.size(); ++b) {
                const std::string entry = names[b] + "." + key;
                if (step != 0 && found[i][b] == nullptr) {
                    throw value_error(where + "'step." + key + "' is " + std::to_string(step) +
                                      " but '" + entry + "' is missing");
                }
                if (step == 0 && found[i][b] != nullptr) {
                    throw value_error(where + "'" + entry + "' is given but 'step." + key +
                                      "' is " + (param_steps[i] ? "0" : "missing"));
                }
            }
        }

        // All checked: build the new state aside, then commit with operations that cannot fail.
        std::vector<ParamState> slots(params_.size());
        for (std::size_t i = 0; i < params_.size(); ++i) {
            slots[i].step = param_steps[i].value_or(0);
            if (slots[i].step == 0) continue;
            for (const Matrix<T>* buffer : found[i]) slots[i].buffers.push_back(*buffer);
        }
        for (std::size_t g = 0; g < group_count(); ++g) set_hyper_parameters(g, merged[g]);
        slots_.swap(slots);
        step_count_ = state.step;
    }

protected:
    // One parameter's state: its own step count (0 = never updated) and its buffers, in the
    // order check_hyper_parameters names them for its group. Options change only through
    // load_state, which rebuilds every parameter's state, and set_lr, which never changes
    // which buffers a group keeps, so one list of names per group describes its parameters.
    struct ParamState {
        std::int64_t step = 0;
        std::vector<Matrix<T>> buffers;
    };

    // `name` prefixes every error message ("SGD", "Adam", ...). As in torch.optim, the groups
    // together may not be empty (one group may), and every parameter must be a distinct leaf
    // that requires grad, in one group only. The derived constructor then resolves each
    // group's options with group_options().
    Optimizer(const char* name, std::vector<ParamGroup<T>> groups) : name_(name) {
        bool any_named = false, any_unnamed = false;
        group_begin_.push_back(0);
        for (std::size_t g = 0; g < groups.size(); ++g) {
            const ParameterList<T>& list = groups[g].params;
            for (std::size_t i = 0; i < list.tensors().size(); ++i) {
                keys_.push_back(list.named() ? list.keys()[i] : std::to_string(params_.size()));
                params_.push_back(list.tensors()[i]);
                group_of_.push_back(g);
            }
            if (!list.tensors().empty()) (list.named() ? any_named : any_unnamed) = true;
            group_begin_.push_back(params_.size());
            overrides_.push_back(detail::group_overrides(groups[g].options));
        }
        named_ = any_named;
        if (params_.empty()) {
            throw value_error(std::string(name_) + ": optimizer got an empty parameter list");
        }
        if (any_named && any_unnamed) {
            throw value_error(std::string(name_) +
                              ": some parameter groups have names and some do not; give every "
                              "group named parameters (named_parameters()) or none");
        }
        initial_lrs_.resize(group_count());
        slots_.resize(params_.size());
        for (std::size_t i = 0; i < params_.size(); ++i) {
            const std::string which = std::string(name_) + ": " + describe(i, keys_, named_);
            if (named_ && keys_[i].empty()) throw value_error(which + " has an empty name");
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
                    throw value_error(which + " is the same tensor as " +
                                      describe(j, keys_, named_) +
                                      (group_of_[i] == group_of_[j]
                                           ? std::string()
                                           : " (parameter groups " + std::to_string(group_of_[j]) +
                                                 " and " + std::to_string(group_of_[i]) + ")") +
                                      "; it would be updated twice per step");
                }
                if (keys_[j] == keys_[i]) {
                    throw value_error(which + " has the same name as " +
                                      describe(j, keys_, named_) +
                                      "; their states could not be told apart");
                }
            }
        }
    }
    Optimizer(const Optimizer&) = default;
    Optimizer(Optimizer&&) noexcept = default;
    Optimizer& operator=(const Optimizer&) = default;
    Optimizer& operator=(Optimizer&&) noexcept = default;

    // One group's hyper-parameters: the optimiser's defaults with what the group sets, checked.
    // A group that sets an option this optimiser does not have is a value_error naming it.
    [[nodiscard]] HyperParameters group_options(std::size_t group,
                                                const HyperParameters& defaults) const {
        HyperParameters h = defaults;
        for (const auto& setting : overrides_[group]) {
            // Not a structured binding: clang 14 cannot capture one in a lambda.
            const std::string& name = setting.first;
            const double value = setting.second;
            const auto it = std::find_if(h.begin(), h.end(),
                                         [&](const auto& entry) { return entry.first == name; });
            if (it == h.end()) {
                throw value_error(std::string(name_) + ": parameter group " +
                                  std::to_string(group) + " sets " + name + ", which " + name_ +
                                  " does not have (its options are" + hyper_parameter_list(h) +
                                  ")");
            }
            it->second = value;
        }
        (void)checked(group, h);
        return h;
    }

    // A group's hyper-parameters, in a fixed order.
    [[nodiscard]] virtual HyperParameters hyper_parameters(std::size_t group) const = 0;
    // Checks a full set of hyper-parameters (throws value_error naming the bad one) and returns
    // the names of the per-parameter buffers those options need.
    [[nodiscard]] virtual std::vector<std::string> check_hyper_parameters(
        const HyperParameters& candidate) const = 0;
    // Adopts hyper-parameters that check_hyper_parameters accepted for a group.
    virtual void set_hyper_parameters(std::size_t group, const HyperParameters& checked) = 0;

    // Counts a step; step() calls it once, then for_each_param_with_grad for every group.
    void count_step() noexcept { ++step_count_; }

    // Calls update(value, grad, state) for each parameter of the group with a gradient.
    // Buffers are made (zero-filled) the first time a parameter is updated, and reused after,
    // so a steady-state step allocates nothing; update sees state.step == 1 on that first time.
    template <class Update>
    void for_each_param_with_grad(std::size_t group, Update&& update) {
        for (std::size_t i = group_begin_[group]; i < group_begin_[group + 1]; ++i) {
            Tensor<T>& param = params_[i];
            if (!param.has_grad()) continue;
            ParamState& slot = slots_[i];
            if (slot.step == 0) {
                const std::size_t count = check_hyper_parameters(hyper_parameters(group)).size();
                slot.buffers.assign(count, Matrix<T>::Zero(param.rows(), param.cols()));
            }
            ++slot.step;
            update(param.data(), param.grad(), slot);
        }
    }

    [[nodiscard]] const char* name() const noexcept { return name_; }

    void check_group(const char* function, std::size_t group) const {
        if (group >= group_count()) {
            throw value_error(std::string(name_) + ": " + function + ": no parameter group " +
                              std::to_string(group) + " (there are " +
                              std::to_string(group_count()) + ")");
        }
    }

private:
    // "parameter 'layers.0.linear.weight'" when the keys are names, else "parameter 3".
    static std::string describe(std::size_t i, const std::vector<std::string>& keys, bool named) {
        return named ? "parameter '" + keys[i] + "'" : "parameter " + std::to_string(i);
    }

    void check_keys(const char* function, const std::vector<std::string>& keys) const {
        const std::string where = std::string(name_) + ": " + function + ": ";
        if (keys.size() != params_.size()) {
            throw value_error(where + std::to_string(keys.size()) + " keys for " +
                              std::to_string(params_.size()) + " parameters");
        }
        for (std::size_t i = 0; i < keys.size(); ++i) {
            if (keys[i].empty())
                throw value_error(where + "the key of parameter " + std::to_string(i) +
                                  " is empty");
            for (std::size_t j = 0; j < i; ++j) {
                if (keys[j] == keys[i]) {
                    throw value_error(where + "parameters " + std::to_string(j) + " and " +
                                      std::to_string(i) + " have the same key '" + keys[i] + "'");
                }
            }
        }
    }

    // Maps a state's parameter keys to this optimiser's parameters: by key, or, for a state in
    // the old positional format given to a named optimiser, by position.
    class KeyResolver {
    public:
        template <class Steps, class Buffers>
        KeyResolver(const std::vector<std::string>& keys, bool named, const std::string& where,
                    const Steps& steps, const Buffers& buffers)
            : keys_(keys), named_(named), where_(where) {
            for (std::size_t i = 0; i < keys.size(); ++i) index_.emplace(keys[i], i);
            if (!named) return;
            bool any_key = false;
            bool all_positions = true;
            const auto look = [&](std::string_view key) {
                any_key = any_key || index_.contains(std::string(key));
                all_positions = all_positions && detail::is_position(key);
            };
            for (const auto& step : steps) look(step.first);
            for (const auto& buffer : buffers) look(buffer.key);
            legacy_ = !any_key && all_positions && !(steps.empty() && buffers.empty());
        }

        // The index of the parameter `key` names; `entry` is the state's entry, for messages.
        std::size_t operator()(std::string_view key, const std::string& entry) const {
            if (legacy_) {
                std::size_t index = 0;
                const auto parsed = std::from_chars(key.data(), key.data() + key.size(), index);
                if (parsed.ec == std::errc() && index < keys_.size()) return index;
            } else if (const auto it = index_.find(std::string(key)); it != index_.end()) {
                return it->second;
            }
            throw value_error(where_ + "'" + entry + "' is for a parameter '" + std::string(key) +
                              "' that this optimiser does not have (" + known() + ")");
        }

        [[nodiscard]] std::string key_of(std::size_t i) const {
            return legacy_ ? std::to_string(i) : keys_[i];
        }

    private:
        [[nodiscard]] std::string known() const {
            const auto& keys = keys_;
            if (!named_ || legacy_) {
                return "it has " + std::to_string(keys.size()) + " parameters, 0 to " +
                       std::to_string(keys.size() - 1);
            }
            std::string out = "its parameters are ";
            const std::size_t shown = std::min<std::size_t>(keys.size(), 8);
            for (std::size_t i = 0; i < shown; ++i) out += (i ? ", '" : "'") + keys[i] + "'";
            if (shown < keys.size()) out += ", ... (" + std::to_string(keys.size()) + " in all)";
            return out;
        }

        const std::vector<std::string>& keys_;
        bool named_;
        const std::string& where_;
        std::map<std::string, std::size_t> index_;
        bool legacy_ = false;
    };

    static std::string hyper_parameter_list(const HyperParameters& all) {
        std::string out;
        for (const auto& entry : all) out += (out.empty() ? " (" : ", ") + entry.first;
        return out.empty() ? out : out + ")";
    }

    // The buffers the groups keep, each name once.
    static std::string buffer_list(const std::vector<std::vector<std::string>>& groups) {
        std::vector<std::string> names;
        for (const auto& group : groups) {
            for (const std::string& n : group) {
                if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
            }
        }
        if (names.empty()) return "no buffers";
        std::string out;
        for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n + ".<parameter>";
        return out;
    }

    // check_hyper_parameters, naming the group when there is more than one.
    std::vector<std::string> checked(std::size_t group, const HyperParameters& h) const {
        if (group_count() <= 1) return check_hyper_parameters(h);
        try {
            return check_hyper_parameters(h);
        } catch (const value_error& e) {
            throw value_error(std::string(e.what()) + " (parameter group " + std::to_string(group) +
                              ")");
        }
    }

    // The group's hyper-parameters with another lr, checked.
    HyperParameters with_lr(std::size_t group, double lr) const {
        HyperParameters h = hyper_parameters(group);
        for (auto& [name, value] : h) {
            if (name == "lr") value = lr;
        }
        (void)checked(group, h);
        return h;
    }

    const char* name_;
    std::vector<Tensor<T>> params_;  // group after group
    std::vector<std::string> keys_;
    std::vector<std::size_t> group_of_;       // each parameter's group
    std::vector<std::size_t> group_begin_;    // group g is params_[group_begin_[g], [g + 1])
    std::vector<HyperParameters> overrides_;  // what each group sets, for group_options()
    bool named_ = false;
    std::vector<ParamState> slots_;
    std::int64_t step_count_ = 0;
    std::vector<std::optional<double>> initial_lrs_;
};

}  // namespace gradscope
