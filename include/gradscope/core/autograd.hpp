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
    // Callbacks that want to run once the current backward pass has finished (a module's
    // parameter-gradient hooks); each is listed at most once by its owner.
    struct AfterBackward {
        void* context;
        void (*callback)(void*);
    };
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

// Where the gradient contributions sent to `node` in this pass are summed. Leaves without
// hooks add straight into their persistent `grad`, which is how gradients accumulate across
// backward calls until zeroed; hooked leaves first gather this pass's gradient in `saved` so
// their hooks see (and may change) exactly what this pass sends.
template <class T>
struct GradSlot {
    MatrixView<T> view;
    bool first;  // nothing has been written yet: assign rather than add
};

template <class T>
GradSlot<T> grad_slot(Node<T>& node) {
    if (node.is_leaf && !node.has_hooks()) {
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
            input.is_leaf && !input.has_hooks() ? input.grad : (input.is_leaf ? input.saved : input.grad);
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
        scratch.to_release.insert(scratch.to_release.end(), node->inputs.begin(),
                                  node->inputs.end());
        node->inputs.clear();
    }
    // Releasing may recycle nodes listed in `order`, so it comes after the loop above.
    for (Node<T>* node : scratch.to_release) {
        if (--node->refcount == 0) NodePool<T>::recycle(node);
    }
    scratch.to_release.clear();
}

// Runs (and forgets) the callbacks scheduled for the end of this pass. A callback may
// schedule again for the next pass, so the list is swapped out before the calls.
template <class T>
void run_after_backward(BackwardScratch<T>& scratch) {
    if (scratch.after_backward.empty()) return;
    thread_local std::vector<typename BackwardScratch<T>::AfterBackward> running;
    running.swap(scratch.after_backward);
    for (const auto& entry : running) entry.callback(entry.context);
    running.clear();
}

template <class T>
void schedule_after_backward(void* context, void (*callback)(void*)) {
    BackwardScratch<T>::local().after_backward.push_back({context, callback});
}

template <class T>
void unschedule_after_backward(void* context) noexcept {
    auto& list = BackwardScratch<T>::local().after_backward;
    std::erase_if(list, [context](const auto& entry) { return entry.context == context; });
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
        bool& flag;
        ~Done() { flag = false; }
    } done{scratch.running};

    collect_graph(root, scratch);
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
    free_graph(scratch, retain_graph);
    run_after_backward(scratch);
}

}  // namespace detail
}  // namespace gradscope
