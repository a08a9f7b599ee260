// The activation layer: applies any elementwise function type (see core/elementwise.hpp and
// activations.hpp) as a module, so it can sit in a Sequential and be found by diagnostics.
#pragma once

#include "../core/elementwise.hpp"
#include "module.hpp"

#include <concepts>
#include <functional>
#include <memory>
#include <string>

namespace gradscope {

// What diagnostics need to know about any activation layer without knowing its type.
template <class T>
class ActivationLayer : public Module<T> {
public:
    [[nodiscard]] virtual const char* activation_name() const = 0;
    // phi'(x) for each element, given x and y = phi(x).
    virtual void derivative(ConstMatrixView<T> x, ConstMatrixView<T> y,
                            MatrixView<T> out) const = 0;
    // phi(x) and phi'(x) at one point, in double where the function type computes in double
    // (else in T): what mean-field theory needs of an activation known only at run time.
    [[nodiscard]] virtual double scalar_value(double x) const = 0;
    [[nodiscard]] virtual double scalar_derivative(double x) const = 0;
};

template <class T, ElementwiseFunction<T> Act>
class Activation : public ActivationLayer<T> {
public:
    explicit Activation(Act act = {}) : act_(act) { detail::validate_function(act); }

    Tensor<T> forward_impl(const Tensor<T>& x) override { return elementwise(x, act_); }

    [[nodiscard]] std::string type_name() const override {
        return std::string("Activation(") + Act::name + ")";
    }
    [[nodiscard]] const char* activation_name() const override { return Act::name; }

    void derivative(ConstMatrixView<T> x, ConstMatrixView<T> y, MatrixView<T> out) const override {
        const Shape xs{x.rows(), x.cols()}, ys{y.rows(), y.cols()}, outs{out.rows(), out.cols()};
        if (ys != xs || outs != xs) {
            throw shape_error(std::string("Activation(") + Act::name + ")::derivative: x " +
                              to_string(xs) + ", y " + to_string(ys) + " and out " +
                              to_string(outs) + " must have one shape");
        }
        const Act act = act_;
        out = x.binaryExpr(y, [act](T xi, T yi) { return static_cast<T>(act.derivative(xi, yi)); });
    }

    [[nodiscard]] double scalar_value(double x) const override {
        if constexpr (ElementwiseFunction<Act, double>) {
            return static_cast<double>(act_.value(x));
        } else {
            return static_cast<double>(act_.value(static_cast<T>(x)));
        }
    }
    [[nodiscard]] double scalar_derivative(double x) const override {
        if constexpr (ElementwiseFunction<Act, double>) {
            return static_cast<double>(act_.derivative(x, act_.value(x)));
        } else {
            const T xt = static_cast<T>(x);
            return static_cast<double>(act_.derivative(xt, act_.value(xt)));
        }
    }

    [[nodiscard]] const Act& function() const noexcept { return act_; }

private:
    Act act_;
};

// Any activation, chosen at run time or by value: `.activation = ReLU{}` in an options
// aggregate converts implicitly from the function type.
template <class T>
class ActivationChoice {
public:
    template <ElementwiseFunction<T> Act>
    ActivationChoice(Act act)  // NOLINT: implicit on purpose, for designated initialisers
        : make_([act] { return std::make_shared<Activation<T, Act>>(act); }), name_(Act::name) {
        detail::validate_function(act);  // fail where the bad parameter is written
    }
    // Anything else is an error that names what is missing. Without this overload a type that
    // is not an ElementwiseFunction inside `{.activation = X{}}` gets only "invalid
    // initialization ... from brace-enclosed initializer list", which never says why. The price:
    // std::is_convertible_v<X, ActivationChoice<T>> is true for every X.
    template <class Act>
    requires(!std::same_as<Act, ActivationChoice> && !ElementwiseFunction<Act, T>)
        ActivationChoice(Act) {  // NOLINT: implicit, as the one above
        static_assert(ElementwiseFunction<Act, T>,
                      "ElementwiseFunction: an activation is a trivially copyable type with "
                      "`static constexpr const char* name`, `value(x)` and `derivative(x, y)`");
    }

    [[nodiscard]] std::shared_ptr<ActivationLayer<T>> make() const { return make_(); }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::function<std::shared_ptr<ActivationLayer<T>>()> make_;
    std::string name_;
};

}  // namespace gradscope
