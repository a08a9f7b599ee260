// Feature scaling, fitted on the training split only and then applied to every split:
//
//   data::StandardScaler<double> scaler;
//   scaler.fit(train.features());                  // statistics of the training rows only
//   Matrix<double> v = scaler.transform(validation.features());
//
// Both scalers are the per-column map x' = (x - center) / scale + offset:
//   StandardScaler  center = the column's mean, scale = its standard deviation (population,
//                   divided by n, as scikit-learn's), offset = 0;
//   MinMaxScaler    center = the column's minimum, scale = (max - min) / (high - low),
//                   offset = low, so the training rows land in [low, high] (default [0, 1]).
// A constant column would divide by zero; its scale is 1 instead (scikit-learn does the same),
// so it maps to offset. Other rows are not clipped: a validation value beyond the training
// range maps outside [low, high], which is how a leak would show.
//
// Checkpoints. metadata() gives the fitted map as strings for a checkpoint's metadata, and
// from_metadata() reads it back from a LoadReport, as the schedulers' state travels:
//   save_checkpoint(path, *net, {.metadata = scaler.metadata()});
//   auto scaler = data::StandardScaler<double>::from_metadata(report.metadata);
// Each vector is one entry, "<prefix>center" = "v0,v1,...", every number the shortest text that
// reads back as the same double, so a restored scaler transforms bit for bit as the saved one.
// (The map is what is saved, not MinMaxScaler's [low, high]: a restored one refitted uses the
// range its constructor was given, [0, 1] by default.)
#pragma once

#include "../core/errors.hpp"
#include "../core/matrix.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gradscope::data {

// The fitted per-column map both scalers share; `kind` names the scaler in checkpoints, and
// Derived is the scaler, which from_metadata() returns.
template <class T, class Derived>
class ColumnScaler {
public:
    [[nodiscard]] bool fitted() const { return center_.size() > 0; }
    [[nodiscard]] const Matrix<T>& center() const { return center_; }  // [1 x columns]
    [[nodiscard]] const Matrix<T>& scale() const { return scale_; }    // [1 x columns]
    [[nodiscard]] T offset() const { return offset_; }

    [[nodiscard]] Matrix<T> transform(const Matrix<T>& x) const {
        check_columns("transform", x);
        return ((x.rowwise() - center_.row(0)).array().rowwise() / scale_.row(0).array() + offset_)
            .matrix();
    }

    [[nodiscard]] Matrix<T> inverse_transform(const Matrix<T>& x) const {
        check_columns("inverse_transform", x);
        return (((x.array() - offset_).rowwise() * scale_.row(0).array()).matrix().rowwise() +
                center_.row(0));
    }

    [[nodiscard]] std::map<std::string, std::string> metadata(
        std::string_view prefix = "scaler.") const {
        if (!fitted())
            gradscope::detail::throw_value(kind_, "metadata: the scaler has not been fitted");
        const std::string p(prefix);
        return {{p + "kind", kind_},
                {p + "center", join(center_)},
                {p + "scale", join(scale_)},
                {p + "offset", gradscope::detail::number_text(static_cast<double>(offset_))}};
    }

    // The scaler that metadata(prefix) described; value_error naming the key if the entries
    // are missing, of another kind of scaler, or not numbers.
    static Derived from_metadata(const std::map<std::string, std::string>& metadata,
                                 std::string_view prefix = "scaler.") {
        Derived scaler;
        static_cast<ColumnScaler&>(scaler).read(metadata, prefix);
        return scaler;
    }

protected:
    explicit ColumnScaler(const char* kind) : kind_(kind) {}

    // Column statistics need at least one row of finite numbers.
    void check_fit_input(const Matrix<T>& x) const {
        if (x.rows() == 0 || x.cols() == 0) {
            gradscope::detail::throw_shape(kind_,
                                           "fit needs at least one row and one column, got " +
                                               to_string(Shape{x.rows(), x.cols()}));
        }
        for (Index c = 0; c < x.cols(); ++c) {
            for (Index r = 0; r < x.rows(); ++r) {
                if (!std::isfinite(static_cast<double>(x(r, c)))) {
                    gradscope::detail::throw_value(
                        kind_, "fit: column " + std::to_string(c) + ", row " + std::to_string(r) +
                                   " is " +
                                   gradscope::detail::number_text(static_cast<double>(x(r, c))));
                }
            }
        }
    }

    // scale: a zero (a constant column) becomes 1.
    void set(Matrix<T> center, Matrix<T> scale, T offset) {
        for (Index c = 0; c < scale.cols(); ++c) {
            if (scale(0, c) == T(0)) scale(0, c) = T(1);
        }
        center_ = std::move(center);
        scale_ = std::move(scale);
        offset_ = offset;
    }

    void read(const std::map<std::string, std::string>& metadata, std::string_view prefix) {
        const std::string p(prefix);
        const std::string kind = entry(metadata, p + "kind");
        if (kind != kind_) {
            gradscope::detail::throw_value(
                kind_, "from_metadata: '" + p + "kind' is '" + kind + "', not '" + kind_ + "'");
        }
        Matrix<T> center = split(metadata, p + "center");
        Matrix<T> scale = split(metadata, p + "scale");
        const Matrix<T> offset = split(metadata, p + "offset");
        if (center.cols() != scale.cols() || offset.cols() != 1) {
            gradscope::detail::throw_value(
                kind_, "from_metadata: " + std::to_string(center.cols()) + " centers, " +
                           std::to_string(scale.cols()) + " scales and " +
                           std::to_string(offset.cols()) + " offsets (one is expected)");
        }
        for (Index c = 0; c < scale.cols(); ++c) {
            if (!(scale(0, c) > T(0))) {
                gradscope::detail::throw_value(
                    kind_, "from_metadata: scale " + std::to_string(c) + " is " +
                               gradscope::detail::number_text(static_cast<double>(scale(0, c))) +
                               "; scales are positive");
            }
        }
        center_ = std::move(center);
        scale_ = std::move(scale);
        offset_ = offset(0, 0);
    }

    const char* kind_;

private:
    void check_columns(const char* what, const Matrix<T>& x) const {
        if (!fitted()) gradscope::detail::throw_value(kind_, std::string(what) + " before fit");
        if (x.cols() != center_.cols()) {
            gradscope::detail::throw_shape(
                kind_, std::string(what) + ": fitted on " + std::to_string(center_.cols()) +
                           " columns, got " + to_string(Shape{x.rows(), x.cols()}));
        }
    }

    static std::string join(const Matrix<T>& row) {
        std::string out;
        for (Index c = 0; c < row.cols(); ++c) {
            if (c > 0) out += ',';
            out += gradscope::detail::number_text(static_cast<double>(row(0, c)));
        }
        return out;
    }

    std::string entry(const std::map<std::string, std::string>& metadata,
                      const std::string& key) const {
        const auto it = metadata.find(key);
        if (it == metadata.end()) {
            gradscope::detail::throw_value(kind_,
                                           "from_metadata: no '" + key + "' in the metadata");
        }
        return it->second;
    }

    // "v0,v1,..." as a [1 x n] row of finite numbers.
    Matrix<T> split(const std::map<std::string, std::string>& metadata,
                    const std::string& key) const {
        const std::string text = entry(metadata, key);
        std::vector<T> values;
        std::size_t begin = 0;
        for (;;) {
            const std::size_t end = std::min(text.find(',', begin), text.size());
            double value = 0.0;
            const auto [ptr, error] =
                std::from_chars(text.data() + begin, text.data() + end, value);
            if (error != std::errc() || ptr != text.data() + end || !std::isfinite(value)) {
                gradscope::detail::throw_value(kind_, "from_metadata: '" + key + "' is '" + text +
                                                          "', not a list of finite numbers");
            }
            values.push_back(static_cast<T>(value));
            if (end == text.size()) break;
            begin = end + 1;
        }
        Matrix<T> row(1, static_cast<Index>(values.size()));
        for (std::size_t i = 0; i < values.size(); ++i) row(0, static_cast<Index>(i)) = values[i];
        return row;
    }

    Matrix<T> center_;
    Matrix<T> scale_;
    T offset_ = T(0);
};

template <class T>
class StandardScaler : public ColumnScaler<T, StandardScaler<T>> {
public:
    StandardScaler() : ColumnScaler<T, StandardScaler<T>>("StandardScaler") {}

    StandardScaler& fit(const Matrix<T>& x) {
        this->check_fit_input(x);
        // In double, whatever T is: a float sum of many rows would lose digits.
        using Wide = DependentDouble<T>;
        const Matrix<Wide> xd = x.template cast<Wide>();
        const Matrix<Wide> mean = xd.colwise().mean();
        const Matrix<Wide> variance =
            (xd.rowwise() - mean.row(0)).array().square().colwise().mean().matrix();
        this->set(mean.template cast<T>(), variance.array().sqrt().matrix().template cast<T>(),
                  T(0));
        return *this;
    }

    [[nodiscard]] const Matrix<T>& mean() const { return this->center(); }
};

template <class T>
class MinMaxScaler : public ColumnScaler<T, MinMaxScaler<T>> {
public:
    explicit MinMaxScaler(double low = 0.0, double high = 1.0)
        : ColumnScaler<T, MinMaxScaler<T>>("MinMaxScaler"), low_(low), high_(high) {
        gradscope::detail::check_finite("MinMaxScaler", "low", low);
        gradscope::detail::check_finite("MinMaxScaler", "high", high);
        if (!(low < high)) {
            gradscope::detail::throw_value("MinMaxScaler",
                                           "the range needs low < high, got [" +
                                               gradscope::detail::number_text(low) + ", " +
                                               gradscope::detail::number_text(high) + "]");
        }
    }

    MinMaxScaler& fit(const Matrix<T>& x) {
        this->check_fit_input(x);
        using Wide = DependentDouble<T>;  // as in StandardScaler::fit
        const Matrix<Wide> xd = x.template cast<Wide>();
        const Matrix<Wide> min = xd.colwise().minCoeff();
        const Matrix<Wide> max = xd.colwise().maxCoeff();
        this->set(min.template cast<T>(), ((max - min) / (high_ - low_)).template cast<T>(),
                  static_cast<T>(low_));
        return *this;
    }

    [[nodiscard]] const Matrix<T>& min() const { return this->center(); }

private:
    double low_;
    double high_;
};

}  // namespace gradscope::data
