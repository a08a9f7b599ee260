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
#include "../core/concepts.hpp"
#include "../core/elementwise.hpp"
#include "../core/activations.hpp"
#include "../core/errors.hpp"
#include "../core/grad_mode.hpp"
#include "../core/tensor.hpp"
#include "class_name.hpp"

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope {

template <class T>
class Module;

namespace detail {
// A dotted path one level down: "" and "fc" give "fc", "layers.0" and "fc" "layers.0.fc".
inline std::string join_path(const std::string& prefix, const std::string& name) {
    return prefix.empty() ? name : prefix + "." + name;
}
}  // namespace detail

// How reports and messages name a module: its path, or "(the network)" for the root, whose path
// is "" (a bare Linear watched by a monitor, say).
inline std::string module_label(const std::string& path) {
    return path.empty() ? std::string("(the network)") : path;
}

// Note [Hook lifetimes]
// A module keeps its hooks in a registry that only the module holds strongly; everything else
// that refers to them holds it weakly, so that any destruction order is safe:
//  - a ModuleHookHandle removed after its module is gone does nothing (and returns false);
//  - the outputs a module recorded carry a dispatcher (Node::module_hooks) and an end-of-
//    backward callback (Node::after_backward) that reach the registry weakly: a graph that
//    outlives its module runs none of its hooks, and one backpropagated after a hook was
//    removed does not run that hook;
//  - hooks may add or remove hooks while they run (Note [Hooks that change hooks]).
// Output-gradient and parameter-gradient hooks run as registered when backward reaches the
// module, not as they were at forward time. What a hook captures is its owner's business:
// remove the hook before its captures die, as GradientMonitor does (ScopedHooks helps).
namespace detail {
template <class T>
struct ModuleHooks {
    using Forward =
        std::function<void(Module<T>&, const Tensor<T>& input, const Tensor<T>& output)>;
    using OutputGrad = std::function<void(Module<T>&, MatrixView<T> grad_output)>;
    using ParamGrad = std::function<void(Module<T>&)>;

    Module<T>* owner = nullptr;  // null once the module's destructor has started
    HookList<Forward> forward;
    HookList<OutputGrad> output_grad;
    HookList<ParamGrad> param_grad;
    // Given to every output node while output-gradient hooks exist.
    std::shared_ptr<const GradHook<T>> output_grad_dispatch;
};
}  // namespace detail

// What a module's tensor is, declared when the module registers it. Checkpoints (which shape
// PyTorch expects) and diagnostics (which tensor is a layer's weight) read the role instead of
// guessing from type and tensor names.
enum class TensorRole {
    other,       // anything not below: saved [n] if it is a [1 x n] row, else [rows, cols]
    weight,      // a weight matrix [out x in], even when it has one row (Linear(in, 1))
    bias,        // added per output unit, [1 x out]
    norm_scale,  // a normalisation layer's gamma, [1 x n]
    norm_shift,  // a normalisation layer's beta, [1 x n]
    statistic,   // a running statistic buffer, [1 x n]
    counter,     // a [1 x 1] count, saved as a scalar as PyTorch does (num_batches_tracked)
};

// What Module's register_*_hook functions accept: callables that the hook types
// (ModuleHooks::Forward, OutputGrad, ParamGrad) can hold, so that a wrong signature is one
// error at the call naming the concept, not one inside std::function.
// (clang-format 14 takes the `&,` in these template arguments for an expression.)
// clang-format off
template <class F, class T>
concept ForwardHookFor = CallbackWith<F, Module<T>&, const Tensor<T>&, const Tensor<T>&>;
template <class F, class T>
concept OutputGradHookFor = CallbackWith<F, Module<T>&, MatrixView<T>>;
template <class F, class T>
concept ParamGradHookFor = CallbackWith<F, Module<T>&>;
// clang-format on

// What Module::named_parameters_matching accepts: keep(dotted_name, role), true to keep.
template <class F>
concept ParameterFilter = std::predicate<F&, const std::string&, TensorRole>;

inline const char* to_string(TensorRole role) {
    switch (role) {
        case TensorRole::other:
            return "other";
        case TensorRole::weight:
            return "weight";
        case TensorRole::bias:
            return "bias";
        case TensorRole::norm_scale:
            return "norm_scale";
        case TensorRole::norm_shift:
            return "norm_shift";
        case TensorRole::statistic:
            return "statistic";
        case TensorRole::counter:
            return "counter";
    }
    return "?";
}

// Removes a module hook. Dropping the handle keeps the hook (as PyTorch's RemovableHandle);
// removing it twice, or after the module is gone, does nothing and returns false.
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

// Handles that remove their hooks when the holder is destroyed, for objects whose hooks
// capture `this` (see Note [Hook lifetimes]).
class ScopedHooks {
public:
    ScopedHooks() = default;
    ScopedHooks(const ScopedHooks&) = delete;
    ScopedHooks& operator=(const ScopedHooks&) = delete;
    ~ScopedHooks() { remove_all(); }

    void add(ModuleHookHandle handle) { handles_.push_back(std::move(handle)); }
    void remove_all() noexcept {
        for (auto& h : handles_) h.remove();
        handles_.clear();
    }
    [[nodiscard]] bool empty() const noexcept { return handles_.empty(); }

private:
    std::vector<ModuleHookHandle> handles_;
};

template <class T>
class Module {
public:
    using ForwardHook = typename detail::ModuleHooks<T>::Forward;
    using OutputGradHook = typename detail::ModuleHooks<T>::OutputGrad;
    using ParamGradHook = typename detail::ModuleHooks<T>::ParamGrad;

    template <class P>
    using Named = std::vector<std::pair<std::string, P>>;

    Module() { hooks_->owner = this; }
    // Copying a module would share its parameters by handle, which is never what a copy
    // means: build a new module instead.
    Module(const Module&) = delete;
    Module& operator=(const Module&) = delete;
    virtual ~Module() { hooks_->owner = nullptr; }

    // Runs the module: its forward_impl, then its hooks. `net->forward(x)` and `(*net)(x)` are
    // the same call, so no spelling of it skips the hooks a monitor relies on. Errors name the
    // module: "in layers.3.linear (Linear): ...". A module serves one thread at a time; a call
    // from a second thread while the first is inside throws graph_error (docs/DESIGN.md,
    // "Threads").
    Tensor<T> forward(const Tensor<T>& input) { return (*this)(input); }

    Tensor<T> operator()(const Tensor<T>& input) {
        const OneThreadAtATime in_use(*this);
        Tensor<T> output = call_forward(input);
        // Held for the calls: a hook may destroy the last other reference to the registry.
        const std::shared_ptr<detail::ModuleHooks<T>> hooks = hooks_;
        if (!hooks->forward.empty()) hooks->forward.run(*this, input, output);
        if (!output.requires_grad()) return output;
        if (hooks->output_grad_dispatch) {
            // The output node may already carry an inner module's hooks (a Sequential returns
            // its last layer's output): then hook a copy, so that both see their gradient.
            if (output.node().module_hooks) output = elementwise(output, Identity{});
            output.node().module_hooks = hooks->output_grad_dispatch;
        }
        if (!hooks->param_grad.empty()) {
            output.node().after_backward.push_back(
                AfterBackward{std::weak_ptr<void>(hooks_), &Module::run_param_grad_hooks});
        }
        return output;
    }

    // What the module computes. A module defines it; callers call forward() (or the module
    // itself), which adds the hooks around it.
    virtual Tensor<T> forward_impl(const Tensor<T>& input) = 0;

    // "Linear", "BatchNorm1d", ... for summaries and error messages. A module of your own is
    // named by its class ("Block", "Gated<float>") unless it overrides this.
    [[nodiscard]] virtual std::string type_name() const {
        return detail::class_name(typeid(*this));
    }

    // State that is neither a parameter nor a buffer but that a resumed run needs, as text
    // (PyTorch's get_extra_state/set_extra_state): Dropout's random stream. Checkpoints keep it
    // in their metadata (io/safetensors.hpp). Empty: the module has none.
    [[nodiscard]] virtual std::string extra_state() const { return {}; }
    // Restores what extra_state() returned. Throws value_error, and changes nothing, on text
    // it cannot read.
    virtual void set_extra_state(std::string_view text) {
        if (!text.empty()) {
            throw value_error(describe() + ": set_extra_state: the module keeps no extra state");
        }
    }

    // The options that make this module what it is, for the summary (nn/summary.hpp), as
    // PyTorch's extra_repr: "in=784, out=256, bias=true". Empty when there are none.
    [[nodiscard]] virtual std::string extra_repr() const { return {}; }

    // Names that files may still give this module's tensors, as (earlier, current) pairs of
    // paths relative to this module: loading a checkpoint (io/safetensors.hpp) reads a tensor
    // under its earlier name when the file lacks the current one. Empty unless a module's
    // layout moved a tensor.
    [[nodiscard]] virtual Named<std::string> earlier_tensor_names() const { return {}; }

    // This module's dotted path in the tree it belongs to ("" for a root).
    [[nodiscard]] const std::string& path() const noexcept { return *path_; }

    [[nodiscard]] const Named<std::shared_ptr<Module>>& children() const noexcept {
        return children_;
    }

    // This module and every descendant, depth first, with their paths ("" for this one).
    [[nodiscard]] Named<Module*> named_modules() {
        Named<Module*> out;
        collect_modules(*this, "", out);
        return out;
    }
    [[nodiscard]] Named<const Module*> named_modules() const {
        Named<const Module*> out;
        collect_modules(*this, "", out);
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
    // The parameters, named as named_parameters() names them and in its order, for which
    // keep(dotted_name, role) is true: the lists of an optimiser's parameter groups, e.g.
    //   net->named_parameters_matching([](const std::string&, TensorRole role) {
    //       return role == TensorRole::bias; })
    template <ParameterFilter Keep>
    [[nodiscard]] Named<Tensor<T>> named_parameters_matching(Keep&& keep) const {
        Named<Tensor<T>> out;
        collect_matching(keep, "", out);
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
    [[nodiscard]] const Named<Tensor<T>>& own_buffers() const noexcept { return buffers_; }

    // The role this module registered its own parameter or buffer `local_name` with.
    [[nodiscard]] TensorRole role_of(std::string_view local_name) const {
        for (const auto& [name, role] : roles_) {
            if (name == local_name) return role;
        }
        throw value_error(describe() + ": has no parameter or buffer named '" +
                          std::string(local_name) + "'");
    }

    // This module's own parameter with the given role, or an empty tensor.
    [[nodiscard]] Tensor<T> own_parameter(TensorRole role) const {
        for (const auto& [name, t] : parameters_) {
            if (role_of(name) == role) return t;
        }
        return {};
    }

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

    // Called after each forward with its input and output.
    template <ForwardHookFor<T> F>
    ModuleHookHandle register_forward_hook(F&& hook) {
        const std::uint64_t id = hooks_->forward.add(ForwardHook(std::forward<F>(hook)));
        return make_handle(
            id, [](detail::ModuleHooks<T>& h, std::uint64_t i) { return h.forward.remove(i); });
    }

    // Called during backward with dL/d(output) of each call whose output the pass reaches.
    template <OutputGradHookFor<T> F>
    ModuleHookHandle register_output_grad_hook(F&& hook) {
        const std::uint64_t id = hooks_->output_grad.add(OutputGradHook(std::forward<F>(hook)));
        if (!hooks_->output_grad_dispatch) {
            hooks_->output_grad_dispatch = std::make_shared<const GradHook<T>>(
                [weak = std::weak_ptr<detail::ModuleHooks<T>>(hooks_)](MatrixView<T> g) {
                    const auto hooks = weak.lock();
                    if (hooks && hooks->owner != nullptr) hooks->output_grad.run(*hooks->owner, g);
                });
        }
        return make_handle(id, [](detail::ModuleHooks<T>& h, std::uint64_t i) {
            const bool removed = h.output_grad.remove(i);
            if (h.output_grad.empty()) h.output_grad_dispatch.reset();  // new outputs skip the hop
            return removed;
        });
    }

    // Called once at the end of each backward pass that reaches one of this module's outputs,
    // with the parameters' gradients in place.
    template <ParamGradHookFor<T> F>
    ModuleHookHandle register_param_grad_hook(F&& hook) {
        const std::uint64_t id = hooks_->param_grad.add(ParamGradHook(std::forward<F>(hook)));
        return make_handle(
            id, [](detail::ModuleHooks<T>& h, std::uint64_t i) { return h.param_grad.remove(i); });
    }

protected:
    Tensor<T> register_parameter(std::string name, Tensor<T> parameter,
                                 TensorRole role = TensorRole::other) {
        check_new_name(name, "register_parameter");
        if (!parameter.defined() || !parameter.is_leaf()) {
            throw value_error(
                type_name() + ": register_parameter('" + name + "') needs a leaf tensor" +
                (parameter.defined() ? std::string(", got the output of '") + parameter.op() + "'"
                                     : std::string(", got an empty handle")));
        }
        if (!parameter.requires_grad()) parameter.set_requires_grad(true);
        label(parameter, name);
        roles_.emplace_back(name, role);
        parameters_.emplace_back(std::move(name), parameter);
        return parameter;
    }

    Tensor<T> register_buffer(std::string name, Tensor<T> buffer,
                              TensorRole role = TensorRole::other) {
        check_new_name(name, "register_buffer");
        if (!buffer.defined() || !buffer.is_leaf()) {
            throw value_error(type_name() + ": register_buffer('" + name +
                              "') needs a leaf tensor");
        }
        label(buffer, name);
        roles_.emplace_back(name, role);
        buffers_.emplace_back(std::move(name), buffer);
        return buffer;
    }

    template <class M>
    std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> child) {
        if (!child) throw value_error(type_name() + ": register_module('" + name + "') got null");
        check_new_name(name, "register_module");
        for (const auto& [inner_path, inner] : child->named_modules()) {
            if (inner == this) {
                throw value_error(type_name() + ": register_module('" + name +
                                  "') would make the module a part of itself (a cycle in the "
                                  "module tree)");
            }
        }
        child->set_path(detail::join_path(path(), name));
        children_.emplace_back(std::move(name), child);
        return child;
    }

private:
    // Note [One thread per module at a time]: the thread inside operator() (nested calls
    // count, so a module may call itself, as an RNN cell does through time). Another thread
    // arriving meanwhile is refused: graphs and parameters are not thread-safe, and a clear
    // error beats a corrupted reference count. Handing a module from thread to thread between
    // calls is fine.
    class OneThreadAtATime {
    public:
        explicit OneThreadAtATime(Module& module) : module_(module) {
            const void* me = detail::this_thread_tag();
            const void* expected = nullptr;
            if (!module_.user_.compare_exchange_strong(expected, me, std::memory_order_acq_rel) &&
                expected != me) {
                throw graph_error("in " + module_.describe() +
                                  ": called while another thread is inside the same module; a "
                                  "network may be used by one thread at a time");
            }
            ++module_.depth_;
        }
        OneThreadAtATime(const OneThreadAtATime&) = delete;
        OneThreadAtATime& operator=(const OneThreadAtATime&) = delete;
        ~OneThreadAtATime() {
            if (--module_.depth_ == 0) module_.user_.store(nullptr, std::memory_order_release);
        }

    private:
        Module& module_;
    };

    // Names are the keys of checkpoints and reports: empty, dotted or repeated ones would
    // make two tensors share a key, or one unreachable by its path.
    void check_new_name(const std::string& name, const char* what) const {
        if (name.empty() || name.find('.') != std::string::npos) {
            throw value_error(type_name() + ": " + what + "('" + name +
                              "'): a name must be non-empty and contain no '.'");
        }
        const auto taken = [&name](const auto& list) {
            return std::any_of(list.begin(), list.end(),
                               [&name](const auto& e) { return e.first == name; });
        };
        if (taken(parameters_) || taken(buffers_) || taken(children_)) {
            throw value_error(type_name() + ": " + what + "('" + name +
                              "'): the name is already taken");
        }
    }

    std::string describe() const {
        return path().empty() ? type_name() : path() + " (" + type_name() + ")";
    }

    template <class Remove>
    ModuleHookHandle make_handle(std::uint64_t id, Remove remove) {
        return ModuleHookHandle([weak = std::weak_ptr<detail::ModuleHooks<T>>(hooks_), id, remove] {
            const auto hooks = weak.lock();
            return hooks != nullptr && hooks->owner != nullptr && remove(*hooks, id);
        });
    }

    // Also names the parameters' and buffers' nodes, so that errors about them can say which.
    void set_path(const std::string& path) {
        path_ = std::make_shared<const std::string>(path);
        for (auto* list : {&parameters_, &buffers_}) {
            for (auto& [name, t] : *list) label(t, name);
        }
        for (auto& [name, child] : children_) child->set_path(detail::join_path(path, name));
    }

    void label(const Tensor<T>& t, const std::string& name) const {
        t.node().label = std::make_shared<const std::string>(detail::join_path(path(), name));
    }

    Tensor<T> call_forward(const Tensor<T>& input) {
        ScopeGuard scope(path_);
        try {
            return forward_impl(input);
        } catch (const shape_error& e) {
            throw shape_error(annotate(e.what()));
        } catch (const value_error& e) {
            throw value_error(annotate(e.what()));
        }
    }

    // The innermost module names itself; outer modules leave the message alone.
    std::string annotate(const std::string& message) const {
        if (message.rfind("in ", 0) == 0) return message;
        return "in " + describe() + ": " + message;
    }

    static void run_param_grad_hooks(void* registry) {
        auto& hooks = *static_cast<detail::ModuleHooks<T>*>(registry);
        if (hooks.owner != nullptr) hooks.param_grad.run(*hooks.owner);
    }

    // Self is Module or const Module: one walk for both named_modules().
    template <class Self>
    static void collect_modules(Self& self, const std::string& prefix, Named<Self*>& out) {
        out.emplace_back(prefix, &self);
        for (const auto& [name, child] : self.children_) {
            collect_modules<Self>(*child, detail::join_path(prefix, name), out);
        }
    }

    void collect_parameters(std::vector<Tensor<T>>& out) const {
        for (const auto& [name, p] : parameters_) out.push_back(p);
        for (const auto& [name, child] : children_) child->collect_parameters(out);
    }

    void collect(Named<Tensor<T>> Module::*member, const std::string& prefix,
                 Named<Tensor<T>>& out) const {
        for (const auto& [name, t] : this->*member) {
            out.emplace_back(detail::join_path(prefix, name), t);
        }
        for (const auto& [name, child] : children_) {
            child->collect(member, detail::join_path(prefix, name), out);
        }
    }

    template <class Keep>
    void collect_matching(Keep& keep, const std::string& prefix, Named<Tensor<T>>& out) const {
        for (const auto& [name, t] : parameters_) {
            std::string full = detail::join_path(prefix, name);
            if (keep(std::as_const(full), role_of(name))) out.emplace_back(std::move(full), t);
        }
        for (const auto& [name, child] : children_) {
            child->collect_matching(keep, detail::join_path(prefix, name), out);
        }
    }

    Named<Tensor<T>> parameters_;
    Named<Tensor<T>> buffers_;
    Named<TensorRole> roles_;  // of parameters_ and buffers_, by local name
    Named<std::shared_ptr<Module>> children_;
    std::shared_ptr<const std::string> path_ = std::make_shared<const std::string>();
    bool training_ = true;

    std::shared_ptr<detail::ModuleHooks<T>> hooks_ = std::make_shared<detail::ModuleHooks<T>>();
    std::atomic<const void*> user_{nullptr};  // see Note [One thread per module at a time]
    int depth_ = 0;
};

}  // namespace gradscope
