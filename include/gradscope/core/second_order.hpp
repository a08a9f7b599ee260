// Exact Hessian-vector products by forward-over-reverse differentiation.
//
// Pearlmutter (1994, "Fast exact multiplication by the Hessian") observed that H v is the
// derivative of the gradient along v, and that it can be had by differentiating the backward
// pass itself in forward mode: carry, next to every value and every gradient of one recorded
// graph, its derivative along v (its tangent, the R-operator), and the tangent that arrives
// at the parameters is H v, exact to rounding. Each op contributes two rules
// (core/second_order/*_rules.hpp): how its output moves when its inputs move, and how what its
// backward sends moves. The pass runs the graph's ops in creation order for the first and in
// reverse for the second, together with the ordinary backward; see docs/DESIGN.md, "Second
// order", for why this and not a differentiable backward (double backward).
//
// A pass is a pure function of the recorded graph: it neither adds to the parameters'
// gradients nor runs hooks or after-backward work, so a monitor never sees it, and with
// retain_graph one recorded forward serves any number of directions (nn/hessian.hpp).
#pragma once

#include "autograd.hpp"
#include "elementwise.hpp"
#include "errors.hpp"
#include "activations.hpp"
#include "second_order/arithmetic_rules.hpp"
#include "second_order/linalg_rules.hpp"
#include "second_order/normalization_rules.hpp"
#include "second_order/softmax_rules.hpp"

#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

namespace detail {

// The rules of the core's ops, the core's elementwise functions and the built-in activations,
// found by their backward function, so that a program that never asks for second order
// instantiates none of them. A user's elementwise function sets Node::tangent_rule itself; the
// losses' rules are in nn/loss_second_order.hpp.
template <class T>
const TangentRule<T>* builtin_tangent_rule(BackwardFn<T> backward) {
    struct Entry {
        BackwardFn<T> backward;
        TangentRule<T> rule;
    };
    static const Entry table[] = {
        {&linear_backward<T>, {&linear_tangent_forward<T>, &linear_tangent_backward<T>}},
        {&matmul_backward<T>, {&matmul_tangent_forward<T>, &matmul_tangent_backward<T>}},
        {&transpose_backward<T>, {&transpose_tangent_forward<T>, &transpose_tangent_backward<T>}},
        {&binary_backward<T, BinaryKind::add>,
         {&binary_tangent_forward<T, BinaryKind::add>,
          &binary_tangent_backward<T, BinaryKind::add>}},
        {&binary_backward<T, BinaryKind::sub>,
         {&binary_tangent_forward<T, BinaryKind::sub>,
          &binary_tangent_backward<T, BinaryKind::sub>}},
        {&binary_backward<T, BinaryKind::mul>,
         {&binary_tangent_forward<T, BinaryKind::mul>,
          &binary_tangent_backward<T, BinaryKind::mul>}},
        {&binary_backward<T, BinaryKind::div>,
         {&binary_tangent_forward<T, BinaryKind::div>,
          &binary_tangent_backward<T, BinaryKind::div>}},
        {&affine_backward<T>, {&affine_tangent_forward<T>, &affine_tangent_backward<T>}},
        {&scalar_div_backward<T>,
         {&scalar_div_tangent_forward<T>, &scalar_div_tangent_backward<T>}},
        {&reduce_backward<T>, {&reduce_tangent_forward<T>, &reduce_tangent_backward<T>}},
        {&max_backward<T>, {&max_tangent_forward<T>, &max_tangent_backward<T>}},
        {&concat_cols_backward<T>,
         {&concat_cols_tangent_forward<T>, &concat_cols_tangent_backward<T>}},
        {&slice_cols_backward<T>,
         {&slice_cols_tangent_forward<T>, &slice_cols_tangent_backward<T>}},
        {&dropout_backward<T>, {&dropout_tangent_forward<T>, &dropout_tangent_backward<T>}},
        {&softmax_backward<T>, {&softmax_tangent_forward<T>, &softmax_tangent_backward<T>}},
        {&log_softmax_backward<T>,
         {&log_softmax_tangent_forward<T>, &log_softmax_tangent_backward<T>}},
        {&batch_norm_backward<T>,
         {&batch_norm_tangent_forward<T>, &batch_norm_tangent_backward<T>}},
        {&layer_norm_backward<T>,
         {&layer_norm_tangent_forward<T>, &layer_norm_tangent_backward<T>}},
#define GRADSCOPE_ELEMENTWISE_RULE(F) {&elementwise_backward<T, F>, elementwise_tangent_rule<T, F>},
#define GRADSCOPE_CORE_FUNCTION_RULE(F) GRADSCOPE_ELEMENTWISE_RULE(fn::F)
        GRADSCOPE_CORE_ELEMENTWISE(GRADSCOPE_CORE_FUNCTION_RULE)
#define GRADSCOPE_ACTIVATION(Type) GRADSCOPE_ELEMENTWISE_RULE(Type)
#include "../builtin_activations.inc"
#undef GRADSCOPE_CORE_FUNCTION_RULE
#undef GRADSCOPE_ELEMENTWISE_RULE
    };
    for (const Entry& entry : table) {
        if (entry.backward == backward) return &entry.rule;
    }
    return nullptr;
}

// Where a pass finds the rules of ops outside the core (the losses), by backward function.
template <class T>
using TangentRuleLookup = const TangentRule<T>* (*)(BackwardFn<T>);

template <class T>
const TangentRule<T>& tangent_rule_of(const Node<T>& node, TangentRuleLookup<T> more) {
    const TangentRule<T>* rule = node.tangent_rule;
    if (rule == nullptr) rule = builtin_tangent_rule<T>(node.backward);
    if (rule == nullptr && more != nullptr) rule = more(node.backward);
    if (rule == nullptr || rule->missing != nullptr) {
        throw graph_error("second order: the op " + where(node.op, node.label) +
                          " has no second-order rule" +
                          (rule != nullptr ? ": " + std::string(rule->missing)
                                           : std::string(" (it is not a built-in op)")));
    }
    return *rule;
}

// Clears what a pass left on the nodes it reached; safe to call twice.
template <class T>
void clear_second_order_state(BackwardScratch<T>& scratch) noexcept {
    for (Node<T>* node : scratch.order) {
        node->tangent.reset();
        node->grad_tangent.reset();
        node->tangent_saved.reset();
        node->tangent_aux.reset();
        node->has_tangent = false;
        node->grad_tangent_written = false;
        if (node->pass_local) {
            node->saved.reset();
            node->written = false;
            node->pass_local = false;
        }
    }
}

// One second-order pass from the scalar `root`: for each of `leaves` (tensors the root depends
// on), its gradient and the Hessian of the root times the direction (`directions`, one per leaf
// in the leaf's shape, or 0 x 0 for a zero direction on that leaf) go to `gradients` and
// `products`.
template <class T>
void run_second_order(Node<T>& root, std::span<Node<T>* const> leaves,
                      std::span<const Matrix<T>> directions, std::vector<Matrix<T>>& gradients,
                      std::vector<Matrix<T>>& products, bool retain_graph,
                      TangentRuleLookup<T> more_rules) {
    if (!root.requires_grad) {
        throw graph_error("hessian: the loss (" + std::string(root.op) + " " +
                          to_string(root.shape()) +
                          ") does not require grad: it was computed from constants only, or "
                          "under NoGradGuard");
    }
    if (root.shape() != Shape{1, 1}) {
        throw shape_error("hessian: the loss must be a [1x1] tensor, got " +
                          to_string(root.shape()));
    }
    if (directions.size() != leaves.size()) {
        throw shape_error("hessian: " + std::to_string(directions.size()) + " directions for " +
                          std::to_string(leaves.size()) + " tensors");
    }
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        const Node<T>& leaf = *leaves[i];
        if (!leaf.is_leaf || !leaf.requires_grad) {
            throw value_error("hessian: tensor #" + std::to_string(i) + " (" + describe_node(leaf) +
                              ") is not a leaf that requires grad (a parameter)");
        }
        const Shape s{directions[i].rows(), directions[i].cols()};
        if (s != leaf.shape() && s != Shape{0, 0}) {
            throw_shapes("hessian",
                         "direction #" + std::to_string(i) +
                             " must have its tensor's shape (or be empty for zero)",
                         s, leaf.shape());
        }
    }
    BackwardScratch<T>& scratch = BackwardScratch<T>::local();
    if (scratch.running) {
        throw graph_error("hessian: called from inside a hook while a backward pass is running");
    }
    scratch.running = true;
    struct Done {
        BackwardScratch<T>& scratch;
        ~Done() {
            clear_second_order_state(scratch);
            release_leaves(scratch);
            scratch.after_backward.clear();
            scratch.running = false;
        }
    } done{scratch};

    scratch.after_backward.clear();
    collect_graph(root, scratch);
    // Every op must have its rules: refuse before anything is changed.
    for (const Node<T>* node : scratch.order) {
        if (!node->is_leaf) (void)tangent_rule_of(*node, more_rules);
    }
    claim_leaves(scratch);
    for (Node<T>* node : scratch.order) {
        if (node->is_leaf) node->pass_local = true;
    }
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        if (directions[i].size() == 0 || leaves[i]->shape().size() == 0) continue;
        leaves[i]->tangent.resize(leaves[i]->shape());
        leaves[i]->tangent.view() = directions[i];
        leaves[i]->has_tangent = true;
    }

    // Forward: every op whose inputs move, in creation order.
    for (auto it = scratch.order.rbegin(); it != scratch.order.rend(); ++it) {
        Node<T>& node = **it;
        if (node.is_leaf) continue;
        bool moves = false;
        for (const Node<T>* input : node.inputs) moves = moves || input->has_tangent;
        if (!moves) continue;
        tangent_rule_of(node, more_rules).forward(node);
        node.has_tangent = true;
    }

    // Backward: gradients and their tangents, in reverse creation order.
    GradSlot<T> root_slot = grad_slot(root);
    root_slot.view.setConstant(T(1));
    for (Node<T>* node : scratch.order) {
        if (node->is_leaf || !node->written) continue;
        check_input_versions(*node);
        if (!node->grad_tangent_written) {
            node->grad_tangent.resize(node->shape());
            node->grad_tangent.view().setZero();
            node->grad_tangent_written = true;
        }
        tangent_rule_of(*node, more_rules)
            .backward(*node);  // before backward, which may hand grad on
        node->backward(*node);
        node->grad.reset();
        node->grad_tangent.reset();
        node->tangent_saved.reset();
        node->tangent_aux.reset();
        if (!retain_graph) {
            node->saved.reset();
            node->aux.reset();
        }
    }

    gradients.resize(leaves.size());
    products.resize(leaves.size());
    for (std::size_t i = 0; i < leaves.size(); ++i) {
        const Node<T>& leaf = *leaves[i];
        const Shape s = leaf.shape();
        const bool reached = leaf.visit == root.visit;  // collect_graph's mark
        // Assigned into the caller's matrices, which keep their storage from call to call.
        gradients[i].resize(s.rows, s.cols);
        products[i].resize(s.rows, s.cols);
        if (reached && leaf.written) {
            gradients[i] = leaf.saved.view();
        } else {
            gradients[i].setZero();
        }
        if (reached && leaf.grad_tangent_written) {
            products[i] = leaf.grad_tangent.view();
        } else {
            products[i].setZero();
        }
    }
    clear_second_order_state(scratch);
    release_leaves(scratch);
    free_graph(scratch, retain_graph);
}

}  // namespace detail
}  // namespace gradscope
