// The reverse pass: given a root node and the gradient of some scalar with respect to it,
// visit every node that the root depends on and that requires a gradient, in reverse
// creation order, and let each op send its gradient on to its inputs.
#pragma once

#include "errors.hpp"
#include "grad_mode.hpp"
#include "node.hpp"

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

namespace gradscope {

namespace detail {

// Scratch lists reused from pass to pass, so backward does not allocate in steady state.
template <class T>
struct BackwardScratch {
    std::vector<Node<T>*> order;
    std::vector<Node<T>*> stack;
    std::vector<Node<T>*> to_release;
    // Leaves this pass marked as busy (Node::backward_thread), to unmark when it ends.
    std::vector<Node<T>*> claimed;
    // What the reached nodes asked to run once the pass has finished, each owner once.
    std::vector<AfterBackward> after_backward;
    bool running = false;

    static BackwardScratch& local() {
        thread_local BackwardScratch scratch;
        return scratch;
    }
};

inline std::uint64_t next_visit_mark() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

inline std::string where(const char* op, const std::shared_ptr<const std::string>& label) {
    std::string text = "'" + std::string(op) + "'";
    if (label && !label->empty()) text += " in " + *label;
    return text;
}

// "the parameter 'layers.0.linear.weight' [4x3]", "a leaf [4x3]",
// "the output of 'tanh' in layers.1 [4x3]".
template <class T>
std::string describe_node(const Node<T>& node) {
    const std::string shape = to_string(node.shape());
    if (node.is_leaf) {
        if (node.label && !node.label->empty()) return "the tensor '" + *node.label + "' " + shape;
        return std::string(node.requires_grad ? "a leaf that requires grad " : "a constant leaf ") +
               shape;
    }
    return "the output of " + where(node.op, node.label) + " " + shape;
}

// Where the gradient contributions sent to `node` in this pass are summed. Leaves without
// hooks add straight into their persistent `grad`, which is how gradients accumulate across
// backward calls until zeroed; hooked leaves first gather this pass's gradient in `saved` so
// their hooks see (and may change) exactly what this pass sends.
template <class T>
struct GradSlot {
    MatrixView<T> view;
    bool first;  // nothing has been written yet: assign rather than add
};

// A leaf of a second-order pass (Node::pass_local) gathers its gradient in `saved` as well:
// that pass computes a gradient without adding it to the parameter's.
template <class T>
bool accumulates_in_place(const Node<T>& node) noexcept {
    return node.is_leaf && !node.has_hooks() && !node.pass_local;
}

template <class T>
GradSlot<T> grad_slot(Node<T>& node) {
    if (accumulates_in_place(node)) {
        const bool first = !node.has_grad;
        if (first) {
            node.grad.resize(node.shape());
            node.has_grad = true;
        }
        return {node.grad.view(), first};
    }
    PooledMatrix<T>& target = node.is_leaf ? node.saved : node.grad;
    const bool first = !node.written;
    if (first) {
        target.resize(node.shape());
        node.written = true;
    }
    return {target.view(), first};
}

inline void add_once(std::vector<AfterBackward>& list, const AfterBackward& entry) {
    for (const AfterBackward& e : list) {
        if (!e.owner.owner_before(entry.owner) && !entry.owner.owner_before(e.owner)) return;
    }
    list.push_back(entry);
}

template <class T>
void collect_graph(Node<T>& root, BackwardScratch<T>& scratch) {
    const std::uint64_t mark = next_visit_mark();
    scratch.order.clear();
    scratch.stack.clear();
    scratch.stack.push_back(&root);
    root.visit = mark;
    while (!scratch.stack.empty()) {
        Node<T>* node = scratch.stack.back();
        scratch.stack.pop_back();
        if (node->graph_freed) {
            throw graph_error("backward: the graph through " + where(node->op, node->label) +
                              " was already freed by an earlier backward; call the first "
                              "backward with {.retain_graph = true} to backpropagate twice");
        }
        node->written = false;
        scratch.order.push_back(node);
        for (const AfterBackward& entry : node->after_backward)
            add_once(scratch.after_backward, entry);
        for (Node<T>* input : node->inputs) {
            if (input->requires_grad && input->visit != mark) {
                input->visit = mark;
                scratch.stack.push_back(input);
            }
        }
    }
    // Creation order is a topological order: every node was made after its inputs.
    std::sort(scratch.order.begin(), scratch.order.end(),
              [](const Node<T>* a, const Node<T>* b) { return a->sequence > b->sequence; });
}

template <class T>
void check_input_grads_finite(const Node<T>& node) {
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        const Node<T>& input = *node.inputs[i];
        if (!input.requires_grad) continue;
        const PooledMatrix<T>& slot =
            accumulates_in_place(input) ? input.grad : (input.is_leaf ? input.saved : input.grad);
        if (!slot.view().allFinite()) {
            throw numeric_error("anomaly: the backward of " + where(node.op, node.label) +
                                " produced a non-finite gradient for its input #" +
                                std::to_string(i) + " (" + input.op + " " +
                                to_string(input.shape()) + ")");
        }
    }
}

// Finishes a leaf that gathered its gradient in `saved`: run its hooks, then accumulate.
template <class T>
void deliver_leaf_gradient(Node<T>& leaf) {
    if (!leaf.written) return;
    leaf.run_hooks(leaf.saved.view());
    if (leaf.has_grad) {
        leaf.grad.view() += leaf.saved.view();
    } else {
        std::swap(leaf.grad, leaf.saved);
        leaf.has_grad = true;
    }
    leaf.saved.reset();
}

// After a pass without retain_graph, each interior node lets go of its saved data and its
// inputs, so that intermediate buffers return to the pool for the next step. Values stay:
// a tensor the caller still holds (the logits, say) remains readable.
template <class T>
void free_graph(BackwardScratch<T>& scratch, bool retain_graph) {
    scratch.to_release.clear();
    for (Node<T>* node : scratch.order) {
        if (node->is_leaf) continue;
        if (!node->retain_grad) {
            node->grad.reset();
            node->has_grad = false;
        } else {
            node->has_grad = node->written;
        }
        if (retain_graph) continue;
        node->graph_freed = true;
        node->saved.reset();
        node->aux.reset();
        node->after_backward.clear();
        scratch.to_release.insert(scratch.to_release.end(), node->inputs.begin(),
                                  node->inputs.end());
        node->inputs.clear();
        node->input_versions.clear();
    }
    // Releasing may recycle nodes listed in `order`, so it comes after the loop above.
    for (Node<T>* node : scratch.to_release) {
        if (--node->refcount == 0) NodePool<T>::recycle(node);
    }
    scratch.to_release.clear();
}

// Runs the callbacks that the reached nodes asked for, skipping those whose owner is gone.
inline void run_after_backward(std::vector<AfterBackward>& callbacks) {
    for (const AfterBackward& entry : callbacks) {
        if (std::shared_ptr<void> owner = entry.owner.lock()) entry.callback(owner.get());
    }
    callbacks.clear();
}

// Marks the pass's leaves as busy, so that another thread touching them meanwhile gets an
// error instead of a data race (docs/DESIGN.md, "Threads").
template <class T>
void claim_leaves(BackwardScratch<T>& scratch) {
    const void* me = this_thread_tag();
    for (Node<T>* node : scratch.order) {
        if (!node->is_leaf) continue;
        const void* expected = nullptr;
        if (!node->backward_thread.compare_exchange_strong(expected, me,
                                                           std::memory_order_acq_rel)) {
            throw graph_error(
                "backward: " + describe_node(*node) +
                " is being backpropagated into by another thread at the same "
                "time; a network (and any tensor) may be used by one thread at a time");
        }
        scratch.claimed.push_back(node);
    }
}

template <class T>
void release_leaves(BackwardScratch<T>& scratch) noexcept {
    for (Node<T>* node : scratch.claimed)
        node->backward_thread.store(nullptr, std::memory_order_release);
    scratch.claimed.clear();
}

// Refuses to run a backward that reads an input whose value was written after the op
// recorded it (see Node::version).
template <class T>
void check_input_versions(const Node<T>& node) {
    for (std::size_t i = 0; i < node.inputs.size(); ++i) {
        const Node<T>& input = *node.inputs[i];
        const bool read = i >= 32 || ((node.reads_inputs >> i) & 1u) != 0;
        if (!read || input.version == node.input_versions[i]) continue;
        throw graph_error("backward: " + describe_node(input) + ", input #" + std::to_string(i) +
                          " of " + where(node.op, node.label) +
                          ", was modified in place after the op recorded it (version " +
                          std::to_string(node.input_versions[i]) + ", now " +
                          std::to_string(input.version) +
                          "); its gradient would be computed from a value the forward pass "
                          "never saw. Change values after backward, or under NoGradGuard "
                          "before the next forward");
    }
}

template <class T>
void run_backward(Node<T>& root, ConstMatrixView<T> seed, bool retain_graph) {
    if (!root.requires_grad) {
        throw graph_error("backward: the tensor (" + std::string(root.op) + " " +
                          to_string(root.shape()) +
                          ") does not require grad: it was computed from constants only, or "
                          "under NoGradGuard");
    }
    if (Shape{seed.rows(), seed.cols()} != root.shape()) {
        detail::throw_shapes("backward", "the seed gradient must have the tensor's shape",
                             Shape{seed.rows(), seed.cols()}, root.shape());
    }
    if (!seed.allFinite()) {
        throw numeric_error("backward: the seed gradient holds a NaN or an infinity");
    }
    BackwardScratch<T>& scratch = BackwardScratch<T>::local();
    if (scratch.running) {
        throw graph_error("backward: called from inside a hook while a backward pass is running");
    }
    scratch.running = true;
    struct Done {
        BackwardScratch<T>& scratch;
        ~Done() {
            release_leaves(scratch);
            scratch.after_backward.clear();
            scratch.running = false;
        }
    } done{scratch};

    scratch.after_backward.clear();
    collect_graph(root, scratch);
    claim_leaves(scratch);
    GradSlot<T> root_slot = grad_slot(root);
    if (root_slot.first) {
        root_slot.view = seed;
    } else {
        root_slot.view += seed;
    }

    const bool check = is_anomaly_enabled();
    for (Node<T>* node : scratch.order) {
        if (node->is_leaf) {
            if (node->has_hooks()) deliver_leaf_gradient(*node);
            continue;
        }
        if (!node->written) continue;  // reached, but nothing flowed into it
        node->run_hooks(node->grad.view());
        check_input_versions(*node);
        node->backward(*node);
        if (check) check_input_grads_finite(*node);
        // Hand this node's buffers back now, not at the end of the pass: the next node asks
        // the pool for the same sizes and gets them back still in cache. On the deep
        // benchmarks that keeps the backward pass's working set the size of one layer's
        // buffers rather than of the whole network's.
        if (!node->retain_grad) node->grad.reset();
        if (!retain_graph) {
            node->saved.reset();
            node->aux.reset();
        }
    }
    // Unmark the leaves before freeing: freeing may recycle a leaf nothing else holds.
    release_leaves(scratch);
    free_graph(scratch, retain_graph);
    run_after_backward(scratch.after_backward);
}

}  // namespace detail
}  // namespace gradscope
