// What every loss shares: the reduction (none, mean, sum) and how the gradient arriving at a
// loss's output reaches each of its elements.
#pragma once

#include "../core/ops/support.hpp"

#include <string>

namespace gradscope {

// none keeps one loss per element (per row for cross_entropy), as PyTorch's reduction="none";
// mean and sum give a 1x1 tensor.
enum class Reduction { none, mean, sum };

inline const char* to_string(Reduction reduction) {
    switch (reduction) {
        case Reduction::none:
            return "none";
        case Reduction::mean:
            return "mean";
        case Reduction::sum:
            return "sum";
    }
    return "?";
}

namespace detail {

struct LossAttr {
    double scale;      // 1/N for a mean, 1 for a sum or none
    bool per_element;  // Reduction::none: the output has one entry per element (or row)
    double parameter;  // the loss's own number (Huber's delta, smooth L1's beta), or 0
    double extra;      // a second one (cross_entropy: the label smoothing)
    double total;      // a third (cross_entropy: the sum of the class weights)
};

inline double reduction_scale(Reduction reduction, Index count) {
    return reduction == Reduction::mean && count > 0 ? 1.0 / static_cast<double>(count) : 1.0;
}

inline Shape loss_output_shape(Reduction reduction, Shape per_element) {
    return reduction == Reduction::none ? per_element : Shape{1, 1};
}

// A loss's elements are computed into `out` when it is per element; otherwise `out` is 1x1 and
// receives the sum of the elements times the scale. The sum runs in double, so a float mean
// over a large batch does not lose the small terms.
template <class T, class Elements>
void reduce_into(MatrixView<T> out, const Elements& elements, const LossAttr& attr) {
    if (attr.per_element) {
        out = elements.matrix().template cast<T>();
    } else {
        out(0, 0) = static_cast<T>(elements.template cast<double>().sum() * attr.scale);
    }
}

// Sends `sign * upstream * local` to `input`, where local is d(element)/d(input) (an array
// expression of the input's shape) and upstream is what reaches each element: the seed times
// the scale after a reduction, the seed's own entries for Reduction::none.
template <class T, class Local>
void accumulate_loss_grad(const Node<T>& loss, Node<T>& input, const Local& local, T sign) {
    if (!input.requires_grad) return;
    const LossAttr& attr = loss.template attr<LossAttr>();
    const auto g = grad_of(loss);
    if (attr.per_element) {
        accumulate(input, (sign * g.array() * local).matrix());
    } else {
        accumulate(input, (sign * g(0, 0) * static_cast<T>(attr.scale) * local).matrix());
    }
}

}  // namespace detail
}  // namespace gradscope
