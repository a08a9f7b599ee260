// Module: the base of every layer and network. A module owns named parameters (trainable
// leaves), named buffers (state that is saved but not trained, such as running statistics)
// and named children, so that every tensor in a network has a stable dotted name
// ("layers.3.linear.weight") for checkpoints and for diagnostics.
//
// Modules are also where the library's observability hooks attach:
//  - forward hooks see each call's input and output;
//  - output-gradient hooks see, during backward, dL/d(output) of the module;
//  - parameter-gradient hooks run once backward has finished, with the module's parameter
//    gradients in place.
// Hooks cost nothing when none are registered.
#pragma once

#include "../core/autograd.hpp"
#include "../core/elementwise.hpp"
#include "../core/activations.hpp"
#include "../core/errors.hpp"
#include "../core/grad_mode.hpp"
#include "../core/tensor.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

template <class T>
class Module;

// Removes a module hook. Dropping the handle keeps the hook.
class ModuleHookHandle {
public:
    ModuleHookHandle() = default;
    explicit ModuleHookHandle(std::function<bool()> remover) : remover_(std::move(remover)) {}
    bool remove() {
        if (!remover_) return false;
        const bool removed = remover_();
        remover_ = nullptr;
        return removed;
    }

private:
    std::function<bool()> remover_;
};

template <class T>
class Module {
public:
    using ForwardHook = std::function<void(Module& module, const Tensor<T>& input, const Tensor<T>& output)>;
    using OutputGradHook = std::function<void(Module& module, MatrixView<T> grad_output)>;
    using ParamGradHook = std::function<void(Module& module)>;

    template <class P>
    using Named = std::vector<std::pair<std::string, P>>;

    Module() = default;
    // Copying a module would share its parameters by handle, which is never what a copy
    // means: build a new module instead.
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    virtual ~Module() {
        if (after_backward_scheduled_) detail::unschedule_after_backward<T>(this);
    }

    // Runs forward and the hooks. Errors name the module: "in layers.3.linear (Linear): ...".
    Tensor<T> operator()(const Tensor<T>& input) {
        Tensor<T> output = call_forward(input);
        if (!forward_hooks_.empty()) {
            for (const auto& [id, hook] : forward_hooks_) hook(*this, input, output);
        }
        if (output_grad_hooks_ && !output_grad_hooks_->empty() && output.requires_grad()) {
            // The output node may already carry an inner module's hooks (a Sequential returns
            // its last layer's output): then hook a copy, so that both see their gradient.
            if (output.node().shared_hooks) output = elementwise(output, Identity{});
            output.node().shared_hooks = output_grad_hooks_;
        }
        if (!param_grad_hooks_.empty() && output.requires_grad() && !after_backward_scheduled_) {
            detail::schedule_after_backward<T>(this, &Module::run_param_grad_hooks);
            after_backward_scheduled_ = true;
        }
        return output;
    }

    virtual Tensor<T> forward(const Tensor<T>& input) = 0;

    // "Linear", "BatchNorm1d", ... for summaries and error messages.
    [[nodiscard]] virtual std::string type_name() const = 0;

    // This module's dotted path in the tree it belongs to ("" for a root).
    [[nodiscard]] const std::string& path() const noexcept { return *path_; }

    [[nodiscard]] const Named<std::shared_ptr<Module>>& children() const noexcept { return children_; }

    // This module and every descendant, depth first, with their paths ("" for this one).
    [[nodiscard]] Named<Module*> named_modules() {
        Named<Module*> out;
        collect_modules("", out);
        return out;
    }

    [[nodiscard]] Named<Tensor<T>> named_parameters() const {
        Named<Tensor<T>> out;
        collect(&Module::parameters_, "", out);
        return out;
    }
    [[nodiscard]] Named<Tensor<T>> named_buffers() const {
        Named<Tensor<T>> out;
        collect(&Module::buffers_, "", out);
        return out;
    }
    // The same tensors as named_parameters(), in the same order, without building names.
    [[nodiscard]] std::vector<Tensor<T>> parameters() const {
        std::vector<Tensor<T>> out;
        collect_parameters(out);
        return out;
    }
    // Parameters registered on this module itself, without descendants'.
    [[nodiscard]] const Named<Tensor<T>>& own_parameters() const noexcept { return parameters_; }

    [[nodiscard]] Index parameter_count() const {
        Index count = 0;
        for (const auto& p : parameters()) count += p.shape().size();
        return count;
    }

    void train(bool on = true) {
        training_ = on;
        for (auto& [name, child] : children_) child->train(on);
    }
    void eval() { train(false); }
    [[nodiscard]] bool is_training() const noexcept { return training_; }

    void zero_grad() {
        for (auto& p : parameters()) p.zero_grad();
    }

    template <class F>
    ModuleHookHandle register_forward_hook(F&& hook) {
        const std::uint64_t id = next_hook_id_++;
        forward_hooks_.emplace_back(id, ForwardHook(std::forward<F>(hook)));
        return ModuleHookHandle([this, id] { return erase_hook(forward_hooks_, id); });
    }

    template <class F>
    ModuleHookHandle register_output_grad_hook(F&& hook) {
        // Nodes share the list, so it is replaced rather than edited while a graph may use it.
        auto list = output_grad_hooks_ ? std::make_shared<HookList<T>>(*output_grad_hooks_)
                                       : std::make_shared<HookList<T>>();
        const std::uint64_t id = list->add(
            [this, h = OutputGradHook(std::forward<F>(hook))](MatrixView<T> g) { h(*this, g); });
        output_grad_hooks_ = std::move(list);
        return ModuleHookHandle([this, id] {
            if (!output_grad_hooks_) return false;
            auto list = std::make_shared<HookList<T>>(*output_grad_hooks_);
            const bool removed = list->remove(id);
            output_grad_hooks_ = std::move(list);
            return removed;
        });
    }

    template <class F>
    ModuleHookHandle register_param_grad_hook(F&& hook) {
        const std::uint64_t id = next_hook_id_++;
        param_grad_hooks_.emplace_back(id, ParamGradHook(std::forward<F>(hook)));
        return ModuleHookHandle([this, id] { return erase_hook(param_grad_hooks_, id); });
    }

protected:
    Tensor<T> register_parameter(std::string name, Tensor<T> parameter) {
        if (!parameter.requires_grad()) parameter.set_requires_grad(true);
        parameters_.emplace_back(std::move(name), parameter);
        return parameter;
    }

    Tensor<T> register_buffer(std::string name, Tensor<T> buffer) {
        buffers_.emplace_back(std::move(name), buffer);
        return buffer;
    }

    template <class M>
    std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> child) {
        if (!child) throw value_error(type_name() + ": register_module('" + name + "') got null");
        child->set_path(join(path(), name));
        children_.emplace_back(std::move(name), child);
        return child;
    }

private:
    template <class H>
    static bool erase_hook(std::vector<std::pair<std::uint64_t, H>>& hooks, std::uint64_t id) {
        return std::erase_if(hooks, [id](const auto& entry) { return entry.first == id; }) > 0;
    }

    static std::string join(const std::string& prefix, const std::string& name) {
        return prefix.empty() ? name : prefix + "." + name;
    }

    void set_path(const std::string& path) {
        path_ = std::make_shared<const std::string>(path);
        for (auto& [name, child] : children_) child->set_path(join(path, name));
    }

    Tensor<T> call_forward(const Tensor<T>& input) {
        ScopeGuard scope(path_);
        try {
            return forward(input);
        } catch (const shape_error& e) {
            throw shape_error(annotate(e.what()));
        } catch (const value_error& e) {
            throw value_error(annotate(e.what()));
        }
    }

    // The innermost module names itself; outer modules leave the message alone.
    std::string annotate(const std::string& message) const {
        if (message.rfind("in ", 0) == 0) return message;
        const std::string where = path().empty() ? type_name() : path() + " (" + type_name() + ")";
        return "in " + where + ": " + message;
    }

    static void run_param_grad_hooks(void* self) {
        auto* module = static_cast<Module*>(self);
        module->after_backward_scheduled_ = false;
        for (const auto& [id, hook] : module->param_grad_hooks_) hook(*module);
    }

    void collect_modules(const std::string& prefix, Named<Module*>& out) {
        out.emplace_back(prefix, this);
        for (auto& [name, child] : children_) child->collect_modules(join(prefix, name), out);
    }

    void collect_parameters(std::vector<Tensor<T>>& out) const {
        for (const auto& [name, p] : parameters_) out.push_back(p);
        for (const auto& [name, child] : children_) child->collect_parameters(out);
    }

    void collect(Named<Tensor<T>> Module::*member, const std::string& prefix,
                 Named<Tensor<T>>& out) const {
        for (const auto& [name, t] : this->*member) out.emplace_back(join(prefix, name), t);
        for (const auto& [name, child] : children_) child->collect(member, join(prefix, name), out);
    }

    Named<Tensor<T>> parameters_;
    Named<Tensor<T>> buffers_;
    Named<std::shared_ptr<Module>> children_;
    std::shared_ptr<const std::string> path_ = std::make_shared<const std::string>();
    bool training_ = true;

    std::vector<std::pair<std::uint64_t, ForwardHook>> forward_hooks_;
    std::shared_ptr<HookList<T>> output_grad_hooks_;
    std::vector<std::pair<std::uint64_t, ParamGradHook>> param_grad_hooks_;
    std::uint64_t next_hook_id_ = 1;
    bool after_backward_scheduled_ = false;
};

}  // namespace gradscope
