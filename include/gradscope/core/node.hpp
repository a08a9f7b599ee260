// A node of the autodiff graph: a value, its gradient, and how to send that gradient on to
// the node's inputs.
//
// Nodes are reference counted by the Tensor handles that point at them and by the nodes
// that use them as inputs, so a graph lives exactly as long as something can still reach it
// (as in PyTorch). Released nodes and their buffers go back to per-thread pools, which is
// what makes a steady-state training step free of heap allocations.
#pragma once

#include "buffer_pool.hpp"
#include "concepts.hpp"
#include "hook_list.hpp"
#include "matrix.hpp"

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace gradscope {

template <class T>
struct Node;

// Called with the gradient flowing into a tensor once all of it has arrived; the hook may
// read it or overwrite it in place (the shape is fixed), and what it leaves flows on.
template <class T>
using GradHook = std::function<void(MatrixView<T> grad)>;

// What Tensor::register_hook accepts as a GradHook.
template <class F, class T>
concept GradHookFor = CallbackWith<F, MatrixView<T>>;

// Work that waits for the end of a backward pass that reached a node: a module's
// parameter-gradient hooks (see Note [Hook lifetimes] in nn/module.hpp). The owner is held
// weakly, so a graph that outlives the owner calls nothing.
struct AfterBackward {
    std::weak_ptr<void> owner;
    void (*callback)(void* owner);
};

namespace detail {
// Identifies the calling thread without <thread>: the address of a thread-local object is
// unique among the threads alive at the same time, which is all a "busy" marker needs.
inline const void* this_thread_tag() noexcept {
    thread_local const char tag = 0;
    return &tag;
}
}  // namespace detail

template <class T>
using BackwardFn = void (*)(Node<T>&);

// How an op carries a direction through a second-order pass (core/second_order.hpp): the
// derivative of its forward along the direction, and of its backward. An op that cannot says
// why in `missing`, which the pass reports instead of running it.
template <class T>
struct TangentRule {
    void (*forward)(Node<T>&) = nullptr;   // fills node.tangent from the inputs' tangents
    void (*backward)(Node<T>&) = nullptr;  // adds to the inputs' grad_tangent
    const char* missing = nullptr;
};

template <class T>
struct Node {
    // Graph structure.
    int refcount = 0;
    std::uint64_t sequence = 0;  // creation order, which is a topological order of any graph
    std::uint64_t visit = 0;     // last backward traversal that reached this node
    const char* op = "leaf";
    BackwardFn<T> backward = nullptr;  // null for leaves and for graph-less results
    std::vector<Node*> inputs;         // owning references, released with the node

    // Data.
    PooledMatrix<T> value;
    PooledMatrix<T> grad;
    PooledMatrix<T> saved;  // op-specific saved data; for hooked leaves, a pass accumulator
    PooledMatrix<T> aux;    // a second saved buffer for ops that need two (normalisation)

    // Saved-value bookkeeping. A node's value is kept for two kinds of reader: the Tensor
    // handles that point at it (the user, a module, a hook) and the backward functions of the
    // ops that consumed it. Once the last handle is gone, no new consumer can appear; if no
    // recorded consumer's backward reads the value either (an add, a batch norm, a linear's
    // bias), it goes back to the pool there and then, while the forward pass is still running,
    // and the next layer reuses the block while it is still in cache. PyTorch's saved tensors
    // achieve the same: after the forward pass of a batch-norm residual block, two of its
    // B x W buffers remain instead of five (tests/test_tensor.cpp). A leaf's value is never
    // released, nor one whose node nothing else references (the whole node is about to go).
    int handles = 0;              // Tensor handles on this node
    int value_readers = 0;        // recorded consumers whose backward reads this node's value
    bool reads_own_value = true;  // its own backward reads its output (tanh' = 1 - y^2)

    // Second order (core/second_order.hpp): Pearlmutter's R-operator carried through the graph.
    // `tangent` is the derivative of `value` along the pass's direction and `grad_tangent` that
    // of `grad`; the op's own intermediate tangents go to tangent_saved and tangent_aux. Ops
    // with a rule of their own set `tangent_rule` (elementwise functions, which are open-ended);
    // the built-in ops' rules are found by their backward function. Untouched, and empty, in
    // first-order training.
    const TangentRule<T>* tangent_rule = nullptr;
    PooledMatrix<T> tangent;
    PooledMatrix<T> grad_tangent;
    PooledMatrix<T> tangent_saved;
    PooledMatrix<T> tangent_aux;
    bool has_tangent = false;           // this pass gave the node a (possibly zero) tangent
    bool grad_tangent_written = false;  // grad_tangent holds this pass's contributions
    bool pass_local = false;  // a leaf of a second-order pass: its gradient goes to `saved`

    bool requires_grad = false;
    bool is_leaf = true;
    bool has_grad = false;     // a gradient is held in `grad`
    bool retain_grad = false;  // keep a non-leaf's gradient after backward
    bool graph_freed = false;  // backward ran without retain_graph: no second backward
    bool written = false;      // this backward pass has sent it a gradient already

    std::unique_ptr<HookList<GradHook<T>>> hooks;  // registered on this tensor
    // The output-gradient hooks of the module that made this node: one dispatcher per module,
    // shared by every step's output, that runs the module's hooks as they are when called.
    std::shared_ptr<const GradHook<T>> module_hooks;
    // Run once at the end of each backward pass that reaches this node (deduplicated by owner).
    std::vector<AfterBackward> after_backward;

    // In-place modification check, as PyTorch's version counter. A leaf's value can be written
    // (Tensor::data); every such write bumps its version. An op records the versions of its
    // inputs, and backward refuses to read an input whose version moved since: the gradient
    // would be computed from a value the forward pass never saw.
    std::uint32_t version = 0;
    std::vector<std::uint32_t> input_versions;  // parallel to `inputs`
    unsigned reads_inputs = ~0u;                // which inputs' values the backward reads

    // The thread running a backward pass into this leaf, or null: a second thread that
    // records an op on the leaf or backpropagates into it meanwhile is told so, instead of
    // racing on its reference count and gradient (docs/DESIGN.md, "Threads").
    std::atomic<const void*> backward_thread{nullptr};
    // Where the node comes from, for error messages: for an op, the module path where it was
    // made ("layers.7.bn"), recorded only in anomaly mode so the common path pays nothing for
    // it; for a module's parameter or buffer, its full name ("layers.7.bn.weight").
    std::shared_ptr<const std::string> label;

    // Small trivially copyable op attributes (a scalar, an index range, an activation's
    // parameters), stored inline so recording an op never allocates.
    static constexpr std::size_t attr_capacity = 64;
    alignas(16) std::byte attr_storage[attr_capacity];

    template <class A>
    void set_attr(const A& attr) noexcept {
        static_assert(std::is_trivially_copyable_v<A> && std::is_trivially_destructible_v<A>,
                      "op attributes must be trivially copyable");
        static_assert(sizeof(A) <= attr_capacity && alignof(A) <= 16,
                      "op attributes must fit the node's inline storage");
        ::new (static_cast<void*>(attr_storage)) A(attr);
    }
    template <class A>
    [[nodiscard]] const A& attr() const noexcept {
        return *std::launder(reinterpret_cast<const A*>(attr_storage));
    }

    [[nodiscard]] Shape shape() const noexcept { return value.shape(); }
    [[nodiscard]] bool has_hooks() const noexcept {
        return (hooks && !hooks->empty()) || module_hooks != nullptr;
    }
    void run_hooks(MatrixView<T> incoming) {
        if (hooks) hooks->run(incoming);
        if (module_hooks) (*module_hooks)(incoming);
    }
};

namespace detail {

inline std::uint64_t next_sequence() noexcept {
    static std::atomic<std::uint64_t> counter{0};
    return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

// Per-thread free list of nodes. Node objects keep the capacity of their lists, so a reused
// node rarely allocates.
template <class T>
class NodePool {
public:
    NodePool() = default;
    NodePool(const NodePool&) = delete;
    NodePool& operator=(const NodePool&) = delete;
    ~NodePool() {
        for (Node<T>* node : free_) delete node;
    }

    static NodePool* local() noexcept {
        thread_local bool destroyed = false;
        if (destroyed) return nullptr;
        struct Holder {
            NodePool pool;
            bool* destroyed;
            ~Holder() { *destroyed = true; }
        };
        thread_local Holder holder{{}, &destroyed};
        return &holder.pool;
    }

    static Node<T>* make() {
        NodePool* pool = local();
        Node<T>* node = nullptr;
        if (pool != nullptr && !pool->free_.empty()) {
            node = pool->free_.back();
            pool->free_.pop_back();
        } else {
            node = new Node<T>();
            node->inputs.reserve(4);
            // A module with parameter-gradient hooks adds one entry to its output's node
            // (nn/module.hpp): with room for it in every node, a hooked network's step allocates
            // nothing once the pool is warm, whichever pooled node its output lands on.
            node->after_backward.reserve(1);
        }
        node->sequence = next_sequence();
        return node;
    }

    // Releases a node whose count reached zero, and every input that this leaves unreferenced.
    // Iterative, because an unrolled RNN makes chains far deeper than the call stack.
    static void recycle(Node<T>* node) noexcept {
        NodePool* pool = local();
        std::vector<Node<T>*> local_stack;
        std::vector<Node<T>*>& stack = pool != nullptr ? pool->stack_ : local_stack;
        const std::size_t base = stack.size();
        push(stack, node);
        while (stack.size() > base) {
            Node<T>* current = stack.back();
            stack.pop_back();
            for (Node<T>* input : current->inputs) {
                if (--input->refcount == 0) push(stack, input);
            }
            clear(*current);
            if (pool != nullptr && push(pool->free_, current)) continue;
            delete current;
        }
    }

private:
    static bool push(std::vector<Node<T>*>& list, Node<T>* node) noexcept {
        try {
            list.push_back(node);
            return true;
        } catch (...) {
            return false;
        }
    }

    static void clear(Node<T>& node) noexcept {
        node.inputs.clear();
        node.input_versions.clear();
        node.after_backward.clear();
        node.value.reset();
        node.grad.reset();
        node.saved.reset();
        node.aux.reset();
        node.tangent_rule = nullptr;
        node.tangent.reset();
        node.grad_tangent.reset();
        node.tangent_saved.reset();
        node.tangent_aux.reset();
        node.has_tangent = false;
        node.grad_tangent_written = false;
        node.pass_local = false;
        node.hooks.reset();
        node.module_hooks.reset();
        node.label.reset();
        node.op = "leaf";
        node.backward = nullptr;
        node.requires_grad = false;
        node.is_leaf = true;
        node.has_grad = false;
        node.retain_grad = false;
        node.graph_freed = false;
        node.written = false;
        node.visit = 0;
        node.handles = 0;
        node.value_readers = 0;
        node.reads_own_value = true;
        node.version = 0;
        node.reads_inputs = ~0u;
        node.backward_thread.store(nullptr, std::memory_order_relaxed);
    }

    std::vector<Node<T>*> free_;
    std::vector<Node<T>*> stack_;
};

// Called as the last Tensor handle on `node` goes away (see Node::value_readers).
template <class T>
void drop_value_if_unread(Node<T>& node) noexcept {
    if (!node.is_leaf && node.refcount > 1 && node.value_readers == 0 && !node.reads_own_value) {
        node.value.release_storage();
    }
}

}  // namespace detail

// Intrusive shared pointer to a node (the count is not atomic: a graph belongs to one thread
// at a time, as a PyTorch autograd graph does during its forward pass).
template <class T>
class NodePtr {
public:
    NodePtr() = default;
    explicit NodePtr(Node<T>* node) noexcept : node_(node) { acquire(); }
    NodePtr(const NodePtr& other) noexcept : node_(other.node_) { acquire(); }
    NodePtr(NodePtr&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    NodePtr& operator=(NodePtr other) noexcept {
        std::swap(node_, other.node_);
        return *this;
    }
    ~NodePtr() { release(); }

    static NodePtr make() { return NodePtr(detail::NodePool<T>::make()); }

    [[nodiscard]] Node<T>* get() const noexcept { return node_; }
    Node<T>* operator->() const noexcept { return node_; }
    Node<T>& operator*() const noexcept { return *node_; }
    explicit operator bool() const noexcept { return node_ != nullptr; }

private:
    void acquire() noexcept {
        if (node_ != nullptr) ++node_->refcount;
    }
    void release() noexcept {
        if (node_ != nullptr && --node_->refcount == 0) detail::NodePool<T>::recycle(node_);
        node_ = nullptr;
    }

    Node<T>* node_ = nullptr;
};

}  // namespace gradscope
