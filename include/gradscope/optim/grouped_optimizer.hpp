// What SGD, Adam, AdamW and RMSprop share beyond Optimizer: one typed options struct per
// parameter group, the three ways to make one (a parameter list, or groups with defaults), and
// the step that runs each group with its own options. Each optimiser then says only what is its
// own (a CRTP base; the optimiser befriends it):
//
//   static constexpr const char* kind;                       its name in messages
//   static HyperParameters to_hyper(const Options&);          options by name, in a fixed order
//   static Options from_hyper(const HyperParameters&);        and back
//   static void validate(const Options&);                     value_error naming a bad option
//   static std::vector<std::string> buffers(const Options&);  the per-parameter buffers needed
//   void step_group(std::size_t group, const Options&);       one group's update
#pragma once

#include "optimizer.hpp"
#include "param_group.hpp"

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::detail {

template <class T, class Derived, class Options>
class GroupedOptimizer : public Optimizer<T> {
public:
    GroupedOptimizer(ParameterList<T> params, Options options = {})
        : GroupedOptimizer(std::vector<ParamGroup<T>>{{std::move(params), {}}}, options) {}

    // Parameter groups (param_group.hpp): an option a group does not set is `defaults`'. (The
    // initializer_list form makes SGD({}, ...) an empty list of groups, not an ambiguity.)
    GroupedOptimizer(std::initializer_list<ParamGroup<T>> groups, Options defaults = {})
        : GroupedOptimizer(std::vector<ParamGroup<T>>(groups), defaults) {}

    GroupedOptimizer(std::vector<ParamGroup<T>> groups, Options defaults = {})
        : Optimizer<T>(Derived::kind, std::move(groups)) {
        Derived::validate(defaults);
        const HyperParameters base = Derived::to_hyper(defaults);
        for (std::size_t g = 0; g < this->group_count(); ++g) {
            groups_.push_back(Derived::from_hyper(this->group_options(g, base)));
        }
    }

    // A group's options (the first by default).
    [[nodiscard]] const Options& options(std::size_t group = 0) const {
        this->check_group("options", group);
        return groups_[group];
    }

    void step() override {
        this->count_step();
        for (std::size_t g = 0; g < groups_.size(); ++g) {
            static_cast<Derived*>(this)->step_group(g, groups_[g]);
        }
    }

protected:
    [[nodiscard]] HyperParameters hyper_parameters(std::size_t group) const override {
        return Derived::to_hyper(groups_[group]);
    }

    [[nodiscard]] std::vector<std::string> check_hyper_parameters(
        const HyperParameters& candidate) const override {
        const Options options = Derived::from_hyper(candidate);
        Derived::validate(options);
        return Derived::buffers(options);
    }

    void set_hyper_parameters(std::size_t group, const HyperParameters& checked) override {
        groups_[group] = Derived::from_hyper(checked);
    }

private:
    std::vector<Options> groups_;  // each group's options
};

}  // namespace gradscope::detail
