// gradcheck: compares the gradients backward computes with central finite differences.
//
// For an output of any shape, the check differentiates the scalar L = sum(R * f(inputs)) for
// a fixed random R: if the analytic Jacobian J differs from the true one, R^T (J - J') is
// nonzero for almost every R, so a random projection catches what a full Jacobian would, at
// the cost of one backward pass instead of one per output element.
#pragma once

#include "grad_mode.hpp"
#include "ops/arithmetic.hpp"
#include "random.hpp"
#include "tensor.hpp"

#include <cmath>
#include <concepts>
#include <cstdint>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace gradscope {

// How the checked function sees its inputs. An op's backward may read its inputs' values,
// and it must declare which (BackwardReads): values nobody declared are released during the
// forward pass, but only an interior node's value is ever released. A check on leaves alone
// would pass an op that reads a value it did not declare; so check all three ways.
enum class GradcheckInputs {
    leaves,           // f(x): the inputs themselves
    interior,         // f(i(x)): each input through a pass-through op that keeps no handle
    shared_interior,  // f(i(x)) + f(i(x)): the same interior values read by two consumers
};

// What gradcheck checks: a function of the inputs, f(const std::vector<Tensor<double>>&),
// whose result is a Tensor<double>. (clang-format 14 takes the `&` in these template arguments
// for an expression.)
// clang-format off
template <class F>
concept GradcheckFunction =
    std::invocable<F&, const std::vector<Tensor<double>>&> &&
    std::convertible_to<std::invoke_result_t<F&, const std::vector<Tensor<double>>&>,
                        Tensor<double>>;
// clang-format on

struct GradcheckOptions {
    double step = 1e-6;  // central-difference step h (error O(h^2) + rounding/h)
    double atol = 1e-5;  // an element passes when |a - n| <= atol + rtol * |n|
    double rtol = 1e-3;
    int projections = 2;         // random projections R tried
    std::uint64_t seed = 20260;  // for R
    GradcheckInputs inputs_as = GradcheckInputs::leaves;
};

struct GradcheckReport {
    bool passed = false;
    bool all_zero = false;    // every analytic and numeric entry was zero: proves nothing
    bool non_finite = false;  // some gradient or difference was NaN or infinite
    double max_abs_error = 0.0;
    double max_rel_error = 0.0;  // |a - n| / max(|a|, |n|), over elements where either is nonzero
    // The element that came closest to failing (or failed worst).
    std::size_t worst_input = 0;
    Index worst_row = 0;
    Index worst_col = 0;
    double worst_analytic = 0.0;
    double worst_numeric = 0.0;
    std::size_t elements_checked = 0;
    std::string message;

    explicit operator bool() const noexcept { return passed; }
};

namespace detail {

template <class T>
void clear_grads(const std::vector<Tensor<T>>& tensors) {
    for (Tensor<T> t : tensors) t.clear_grad();  // a copy is a handle to the same node
}

inline void validate(const GradcheckOptions& o) {
    check_positive("gradcheck", "step", o.step);
    check_non_negative("gradcheck", "atol", o.atol);
    check_non_negative("gradcheck", "rtol", o.rtol);
    if (o.projections < 1) {
        throw_value("gradcheck", "projections must be >= 1, got " + std::to_string(o.projections));
    }
}

// Calls f on the inputs as `how` asks (see GradcheckInputs).
template <class F>
Tensor<double> call_as(F& f, const std::vector<Tensor<double>>& inputs, GradcheckInputs how) {
    using T = DependentDouble<F>;  // double; see gradcheck()
    if (how == GradcheckInputs::leaves) return f(inputs);
    std::vector<Tensor<T>> routed;
    routed.reserve(inputs.size());
    for (const Tensor<T>& x : inputs) {
        routed.push_back(x.requires_grad() ? detail::affine(x, 1.0, 0.0, "gradcheck_interior") : x);
    }
    if (how == GradcheckInputs::interior) return f(routed);  // routed's handles go on return
    const Tensor<T> first = f(routed);
    return first + f(routed);
}

inline std::string describe(const GradcheckReport& r) {
    std::ostringstream out;
    out.precision(6);
    if (r.elements_checked == 0) return "gradcheck: no input requires grad, nothing was checked";
    if (r.non_finite) {
        return "gradcheck FAILED: a gradient or a finite difference is NaN or infinite";
    }
    if (r.all_zero) {
        return "gradcheck: analytic and numeric gradients are zero everywhere; a check that "
               "compares zero with zero proves nothing";
    }
    out << "gradcheck " << (r.passed ? "passed" : "FAILED") << ": " << r.elements_checked
        << " elements, max abs error " << r.max_abs_error << ", max rel error " << r.max_rel_error
        << "; worst at input " << r.worst_input << " (" << r.worst_row << ", " << r.worst_col
        << "): analytic " << r.worst_analytic << " vs numeric " << r.worst_numeric;
    return out.str();
}

}  // namespace detail

// `f` maps the inputs (a const std::vector<Tensor<double>>&) to a tensor of any fixed shape.
// Inputs that require grad must be leaves; they are perturbed in place and restored, and their
// gradients are cleared. Double precision only: in float, rounding swamps the differences.
template <GradcheckFunction F>
GradcheckReport gradcheck(F&& f, const std::vector<Tensor<double>>& inputs,
                          const GradcheckOptions& options = {}) {
    // double, spelled to depend on F so that a program that never calls gradcheck does not
    // compile its body (core/matrix.hpp, DependentDouble).
    using T = DependentDouble<F>;
    detail::validate(options);
    GradcheckReport report;
    Rng rng(options.seed);
    double max_magnitude = 0.0;
    double worst_excess = -1.0;

    auto evaluate = [&](const Matrix<T>& projection) {
        NoGradGuard no_grad;
        const Tensor<T> out = detail::call_as(f, inputs, options.inputs_as);
        if (out.rows() != projection.rows() || out.cols() != projection.cols()) {
            throw shape_error("gradcheck: the function's output changed shape from " +
                              to_string(Shape{projection.rows(), projection.cols()}) + " to " +
                              to_string(out.shape()));
        }
        return (out.value().array() * projection.array()).sum();
    };

    bool any_requires_grad = false;
    for (const Tensor<T>& input : inputs) {
        any_requires_grad = any_requires_grad || input.requires_grad();
        if (input.requires_grad() && !input.is_leaf()) {
            throw graph_error("gradcheck: inputs that require grad must be leaves (made by '" +
                              std::string(input.op()) + "')");
        }
    }

    if (!any_requires_grad) {
        report.message = detail::describe(report);
        return report;
    }

    for (int p = 0; p < options.projections; ++p) {
        detail::clear_grads(inputs);
        Tensor<T> out = detail::call_as(f, inputs, options.inputs_as);
        const Matrix<T> projection = rng.normal_matrix<T>(out.rows(), out.cols());
        out.backward(projection);

        for (std::size_t i = 0; i < inputs.size(); ++i) {
            Tensor<T> input = inputs[i];
            if (!input.requires_grad()) continue;
            const Matrix<T> analytic = input.has_grad()
                                           ? Matrix<T>(input.grad())
                                           : Matrix<T>::Zero(input.rows(), input.cols());
            MatrixView<T> x = input.data();
            for (Index r = 0; r < x.rows(); ++r) {
                for (Index c = 0; c < x.cols(); ++c) {
                    const T saved = x(r, c);
                    x(r, c) = saved + options.step;
                    const double plus = evaluate(projection);
                    x(r, c) = saved - options.step;
                    const double minus = evaluate(projection);
                    x(r, c) = saved;
                    const double numeric = (plus - minus) / (2.0 * options.step);
                    const double a = analytic(r, c);
                    const double err = std::abs(a - numeric);
                    if (!std::isfinite(err)) report.non_finite = true;  // NaN would escape max()
                    const double scale = std::max(std::abs(a), std::abs(numeric));
                    max_magnitude = std::max(max_magnitude, scale);
                    report.max_abs_error = std::max(report.max_abs_error, err);
                    if (scale > 0.0)
                        report.max_rel_error = std::max(report.max_rel_error, err / scale);
                    const double excess = err / (options.atol + options.rtol * std::abs(numeric));
                    if (excess > worst_excess) {
                        worst_excess = excess;
                        report.worst_input = i;
                        report.worst_row = r;
                        report.worst_col = c;
                        report.worst_analytic = a;
                        report.worst_numeric = numeric;
                    }
                    ++report.elements_checked;
                }
            }
        }
    }
    detail::clear_grads(inputs);

    report.all_zero = report.elements_checked > 0 && max_magnitude == 0.0;
    report.passed = report.elements_checked > 0 && !report.all_zero && worst_excess <= 1.0 &&
                    !report.non_finite;
    report.message = detail::describe(report);
    return report;
}

}  // namespace gradscope
