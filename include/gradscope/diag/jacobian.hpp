// The input-output Jacobian of a network at one input and its singular values: how much the
// network stretches each direction around that input. Backpropagation multiplies a gradient by
// the transposed Jacobian, so a spectrum spread over orders of magnitude means that some
// directions of the gradient vanish while others explode even when the average gain is 1; a
// spectrum concentrated around 1 is dynamical isometry (Saxe et al. 2014; Pennington et al.
// 2017, "Resurrecting the sigmoid in deep learning through dynamical isometry").
//
// The Jacobian is exact, by reverse mode: row i is the gradient of output i with respect to the
// input. In eval mode, where every sample goes through the network on its own, one forward
// pass of m copies of the input and one backward pass seeded with the m x m identity give all m
// rows at once (a matrix product per layer instead of m vector products). In training mode batch
// norm couples the rows of a batch, so the input goes through alone and m backward passes
// read the rows one at a time. The parameters do not require gradients while this runs, so
// their gradients are left as they were; hooks on the network see the passes.
#pragma once

#include "../core/errors.hpp"
#include "../core/grad_mode.hpp"
#include "../nn/module.hpp"

#include <Eigen/SVD>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace gradscope::diag {

namespace detail {

// Parameters stop requiring gradients for a scope, and get their flags back after it.
template <class T>
class ParametersFrozen {
public:
    explicit ParametersFrozen(const Module<T>& net) : parameters_(net.parameters()) {
        for (auto& p : parameters_) {
            flags_.push_back(p.requires_grad());
            p.set_requires_grad(false);
        }
    }
    ParametersFrozen(const ParametersFrozen&) = delete;
    ParametersFrozen& operator=(const ParametersFrozen&) = delete;
    ~ParametersFrozen() {
        for (std::size_t i = 0; i < parameters_.size(); ++i)
            parameters_[i].set_requires_grad(flags_[i]);
    }

private:
    std::vector<Tensor<T>> parameters_;
    std::vector<bool> flags_;
};

}  // namespace detail

// d net(x) / dx at one input row x (1 x n): an m x n matrix for m outputs.
template <class T>
Eigen::MatrixXd input_output_jacobian(Module<T>& net, const std::type_identity_t<Matrix<T>>& x) {
    if (x.rows() != 1 || x.cols() == 0) {
        throw shape_error("input_output_jacobian: x must be one input row (1 x n), got " +
                          to_string(Shape{x.rows(), x.cols()}));
    }
    if (!x.allFinite()) throw value_error("input_output_jacobian: x has a non-finite value");
    const detail::ParametersFrozen<T> frozen(net);
    if (net.is_training()) {
        Tensor<T> input = Tensor<T>::parameter(x);
        Tensor<T> output = net(input);
        const Index m = output.shape().cols;
        if (output.shape().rows != 1) {
            throw shape_error("input_output_jacobian: one input row gave " +
                              to_string(output.shape()) + " outputs; expected one row");
        }
        Eigen::Matrix<DependentDouble<T>, Eigen::Dynamic, Eigen::Dynamic> jacobian(m, x.cols());
        Matrix<T> seed = Matrix<T>::Zero(1, m);
        for (Index i = 0; i < m; ++i) {
            seed(0, i) = T(1);
            output.backward(seed, {.retain_graph = i + 1 < m});
            seed(0, i) = T(0);
            jacobian.row(i) = input.grad().template cast<double>();
            input.zero_grad();
        }
        return jacobian;
    }
    Index m = 0;
    {
        const NoGradGuard probe;
        m = net(Tensor<T>::constant(x)).shape().cols;
    }
    Tensor<T> copies = Tensor<T>::parameter(x.replicate(m, 1));
    Tensor<T> output = net(copies);
    if (output.shape().rows != m || output.shape().cols != m) {
        throw shape_error("input_output_jacobian: " + std::to_string(m) + " copies of x gave " +
                          to_string(output.shape()) + " outputs; expected " + std::to_string(m) +
                          " rows of " + std::to_string(m));
    }
    output.backward(Matrix<T>::Identity(m, m));
    return copies.grad().template cast<double>();
}

struct JacobianSpectrum {
    Eigen::MatrixXd jacobian;         // outputs x inputs
    Eigen::VectorXd singular_values;  // descending; min(outputs, inputs) of them
    double max = 0.0;                 // the largest singular value
    double min = 0.0;                 // the smallest
    double mean_squared = 0.0;        // mean of sigma^2: the average squared gain of a direction
    double condition_number = 0.0;    // max / min (infinite when min is 0)
    // Standard deviation of log10(sigma) over the singular values (those above 0): the spread
    // of the spectrum in decades, 0 for perfect isometry.
    double log10_spread = 0.0;
};

// The Jacobian at x and its singular values (Eigen's BDCSVD, in double).
template <class T>
JacobianSpectrum jacobian_spectrum(Module<T>& net, const std::type_identity_t<Matrix<T>>& x) {
    JacobianSpectrum out;
    out.jacobian = input_output_jacobian(net, x);
    // The solver's type depends on T so that a program that never calls this does not
    // compile the SVD (core/matrix.hpp, DependentDouble).
    const Eigen::BDCSVD<Eigen::Matrix<DependentDouble<T>, Eigen::Dynamic, Eigen::Dynamic>> svd(
        out.jacobian);
    out.singular_values = svd.singularValues();
    const auto& s = out.singular_values;
    out.max = s.maxCoeff();
    out.min = s.minCoeff();
    out.mean_squared = s.squaredNorm() / static_cast<double>(s.size());
    out.condition_number =
        out.min > 0.0 ? out.max / out.min : std::numeric_limits<double>::infinity();
    std::vector<double> logs;
    for (Index i = 0; i < s.size(); ++i) {
        if (s(i) > 0.0) logs.push_back(std::log10(s(i)));
    }
    if (!logs.empty()) {
        double mean = 0.0, square = 0.0;
        for (const double l : logs) mean += l;
        mean /= static_cast<double>(logs.size());
        for (const double l : logs) square += (l - mean) * (l - mean);
        out.log10_spread = std::sqrt(square / static_cast<double>(logs.size()));
    }
    return out;
}

// The same for an input row held as a tensor: its value is x.
template <class T>
JacobianSpectrum jacobian_spectrum(Module<T>& net, const Tensor<T>& x) {
    return jacobian_spectrum(net, Matrix<T>(x.value()));
}

}  // namespace gradscope::diag
