// Regression metrics: mean squared error, mean absolute error and the coefficient of
// determination R², as scikit-learn defines them.
//
// Predictions and targets are rows x outputs, one row per sample, of the same shape (a Matrix,
// a Map or a Tensor's value). With several outputs each metric is computed per output (column)
// and the results averaged with equal weights (scikit-learn's multioutput="uniform_average").
//
// R² = 1 - SS_res / SS_tot per output. For a constant target (SS_tot = 0) it is 1 when the
// predictions are exact and 0 otherwise (scikit-learn's force_finite=True), not ±infinity or NaN.
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"
#include "../core/tensor.hpp"

#include <Eigen/Core>

#include <string>

namespace gradscope::metrics {

namespace detail {

inline void check_regression(const char* who, Shape predicted, Shape target) {
    if (predicted != target) {
        throw shape_error(std::string(who) + ": predictions " + to_string(predicted) +
                          " and targets " + to_string(target) + " differ in shape");
    }
    if (predicted.rows == 0 || predicted.cols == 0) {
        gradscope::detail::throw_value(
            who,
            "there is nothing to score (predictions and targets are " + to_string(predicted) + ")");
    }
}

}  // namespace detail

// mean over outputs of mean over rows of (prediction - target)².
template <class P, class T>
double mean_squared_error(const Eigen::MatrixBase<P>& predicted,
                          const Eigen::MatrixBase<T>& target) {
    detail::check_regression("metrics::mean_squared_error",
                             Shape{predicted.rows(), predicted.cols()},
                             Shape{target.rows(), target.cols()});
    const auto diff = predicted.template cast<double>() - target.template cast<double>();
    return diff.array().square().colwise().mean().mean();
}

// mean over outputs of mean over rows of |prediction - target|.
template <class P, class T>
double mean_absolute_error(const Eigen::MatrixBase<P>& predicted,
                           const Eigen::MatrixBase<T>& target) {
    detail::check_regression("metrics::mean_absolute_error",
                             Shape{predicted.rows(), predicted.cols()},
                             Shape{target.rows(), target.cols()});
    const auto diff = predicted.template cast<double>() - target.template cast<double>();
    return diff.array().abs().colwise().mean().mean();
}

// mean over outputs of 1 - SS_res / SS_tot (see the top of this file for SS_tot = 0).
template <class P, class T>
double r2_score(const Eigen::MatrixBase<P>& predicted, const Eigen::MatrixBase<T>& target) {
    detail::check_regression("metrics::r2_score", Shape{predicted.rows(), predicted.cols()},
                             Shape{target.rows(), target.cols()});
    using Wide = DependentDouble<T>;
    const Eigen::Matrix<Wide, Eigen::Dynamic, Eigen::Dynamic> y = target.template cast<Wide>();
    const Eigen::Matrix<Wide, Eigen::Dynamic, Eigen::Dynamic> residual =
        predicted.template cast<Wide>() - y;
    const Eigen::Matrix<Wide, 1, Eigen::Dynamic> mean = y.colwise().mean();
    double sum = 0.0;
    for (Index c = 0; c < y.cols(); ++c) {
        const double ss_res = residual.col(c).squaredNorm();
        const double ss_tot = (y.col(c).array() - mean(c)).square().sum();
        if (ss_tot == 0.0) {
            sum += ss_res == 0.0 ? 1.0 : 0.0;
        } else {
            sum += 1.0 - ss_res / ss_tot;
        }
    }
    return sum / static_cast<double>(y.cols());
}

// The same for Tensors' values (a network's output and a constant target).
template <class T>
double mean_squared_error(const Tensor<T>& predicted, const Tensor<T>& target) {
    return mean_squared_error(predicted.value(), target.value());
}
template <class T>
double mean_absolute_error(const Tensor<T>& predicted, const Tensor<T>& target) {
    return mean_absolute_error(predicted.value(), target.value());
}
template <class T>
double r2_score(const Tensor<T>& predicted, const Tensor<T>& target) {
    return r2_score(predicted.value(), target.value());
}

}  // namespace gradscope::metrics
