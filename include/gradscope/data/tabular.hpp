// Tabular data: a CSV table's numeric feature columns and one target column, as matrices.
//
//   auto wine = data::read_tabular_csv<double>("wine.csv", {.target = "class"});
//   data::TensorDataset<double> all = wine.dataset();
//   wine.class_names[label]   // what each label stands for
//
// Classes. With Target::classes (the default) the target column's distinct values become the
// labels 0, 1, ..., in sorted order: numerically when every value is a number (so "2" < "10"),
// otherwise as text; numbers with a fraction (2.5) are a value_error that points to
// Target::values. class_names keeps the mapping (label i is class_names[i]), so labels
// written as numbers and as strings are treated alike. Target::values reads the target as a
// number, one [n x 1] target matrix (regression).
//
// Features are the columns named in `features`, in that order, or every column but the target
// when it is empty. A feature value must be a finite number (spaces around it allowed); an
// empty field, "NA", "nan", anything else, or (reading floats) a number beyond a float's range
// is an io_error that names the file, the line and the column, as is a missing target. Choosing a column that does not exist is a value_error
// that lists the columns.
#pragma once

#include "../core/matrix.hpp"
#include "../io/errors.hpp"
#include "csv.hpp"
#include "dataset.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace gradscope::data {

enum class Target { classes, values };

struct TabularOptions {
    std::string target;  // the target column's name (required)
    Target target_kind = Target::classes;
    std::vector<std::string> features = {};  // empty: every column but the target
    CsvOptions csv = {};
};

template <class T>
struct Tabular {
    Matrix<T> features;                      // [rows x features]
    Matrix<T> targets;                       // [rows x 1] with Target::values, else [rows x 0]
    std::vector<int> labels;                 // with Target::classes, else empty
    std::vector<std::string> feature_names;  // the columns of `features`
    std::vector<std::string> class_names;    // label i stands for class_names[i]
    std::string target_name;
    Target target_kind = Target::classes;

    // A copy of the matrices as a dataset: labels with Target::classes, else the targets.
    [[nodiscard]] TensorDataset<T> dataset() const {
        if (target_kind == Target::values) return TensorDataset<T>(features, targets);
        return TensorDataset<T>(features, labels);
    }
};

namespace detail::tabular {

inline std::string_view trimmed(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The field as a finite number, or nothing (empty, "NA", text, an infinity, a NaN).
inline std::optional<double> number(std::string_view field) {
    std::string_view s = trimmed(field);
    if (s.starts_with('+')) s.remove_prefix(1);  // from_chars refuses a leading '+'
    double value = 0.0;
    const auto [end, error] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || error != std::errc() || end != s.data() + s.size() || !std::isfinite(value)) {
        return std::nullopt;
    }
    return value;
}

[[noreturn]] inline void fail(const CsvTable& table, std::size_t row, std::size_t column,
                              const std::string& what) {
    throw io_error(table.source + ", line " + std::to_string(table.lines[row]) + ", column '" +
                   table.header[column] + "': " + what);
}

inline double number_at(const CsvTable& table, std::size_t row, std::size_t column) {
    const std::string& field = table.rows[row][column];
    if (trimmed(field).empty()) fail(table, row, column, "missing value");
    const std::optional<double> value = number(field);
    if (!value) fail(table, row, column, "'" + field + "' is not a finite number");
    return *value;
}

// A numeric target column with a fraction in it is a regression target read as classes by
// mistake (every distinct value would become a class), so it is refused, as scikit-learn's
// classifiers refuse a "continuous" target.
inline void refuse_fractional_labels(const CsvTable& table, std::size_t column) {
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
        const double value = *number(table.rows[r][column]);
        if (value != std::trunc(value)) {
            throw value_error(table.source + ", line " + std::to_string(table.lines[r]) +
                              ", column '" + table.header[column] + "': '" +
                              std::string(trimmed(table.rows[r][column])) +
                              "' is not a class label (classes are text or whole numbers); "
                              "to read the column as a number to predict, pass {.target = \"" +
                              table.header[column] + "\", .target_kind = data::Target::values}");
        }
    }
}

// The distinct class names, sorted as numbers if all are numbers, else as text.
inline std::vector<std::string> class_names(const CsvTable& table, std::size_t column) {
    std::vector<std::string> names;
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
        const std::string_view name = trimmed(table.rows[r][column]);
        if (name.empty()) fail(table, r, column, "missing class label");
        names.emplace_back(name);
    }
    std::sort(names.begin(), names.end());
    names.erase(std::unique(names.begin(), names.end()), names.end());
    const bool numeric = std::all_of(names.begin(), names.end(),
                                     [](const std::string& n) { return number(n).has_value(); });
    if (numeric) {
        refuse_fractional_labels(table, column);
        std::stable_sort(
            names.begin(), names.end(),
            [](const std::string& a, const std::string& b) { return *number(a) < *number(b); });
    }
    return names;
}

// The number as a T: a double beyond a float's range is an error, not an infinity.
template <class T>
T value_at(const CsvTable& table, std::size_t row, std::size_t column) {
    const double value = number_at(table, row, column);
    if (!std::isfinite(static_cast<T>(value))) {
        fail(table, row, column, "'" + table.rows[row][column] + "' does not fit a float");
    }
    return static_cast<T>(value);
}

}  // namespace detail::tabular

template <class T>
Tabular<T> tabular_from_csv(const CsvTable& table, const TabularOptions& options) {
    namespace tab = detail::tabular;
    if (options.target.empty()) {
        throw value_error(table.source + ": TabularOptions::target must name the target column");
    }
    const std::size_t target = table.column(options.target);
    std::vector<std::size_t> columns;
    if (options.features.empty()) {
        for (std::size_t c = 0; c < table.header.size(); ++c) {
            if (c != target) columns.push_back(c);
        }
    } else {
        for (const std::string& name : options.features) {
            const std::size_t c = table.column(name);
            if (c == target) {
                throw value_error(table.source + ": '" + name +
                                  "' is the target column and cannot also be a feature");
            }
            if (std::find(columns.begin(), columns.end(), c) != columns.end()) {
                throw value_error(table.source + ": the feature '" + name + "' is chosen twice");
            }
            columns.push_back(c);
        }
    }

    Tabular<T> out;
    out.target_name = options.target;
    out.target_kind = options.target_kind;
    const auto rows = static_cast<Index>(table.rows.size());
    out.features.resize(rows, static_cast<Index>(columns.size()));
    for (const std::size_t c : columns) out.feature_names.push_back(table.header[c]);
    for (std::size_t r = 0; r < table.rows.size(); ++r) {
        for (std::size_t j = 0; j < columns.size(); ++j) {
            out.features(static_cast<Index>(r), static_cast<Index>(j)) =
                tab::value_at<T>(table, r, columns[j]);
        }
    }
    if (options.target_kind == Target::values) {
        out.targets.resize(rows, 1);
        for (std::size_t r = 0; r < table.rows.size(); ++r) {
            out.targets(static_cast<Index>(r), 0) = tab::value_at<T>(table, r, target);
        }
        return out;
    }
    out.targets.resize(rows, 0);
    out.class_names = tab::class_names(table, target);
    std::map<std::string, int, std::less<>> index;
    for (std::size_t i = 0; i < out.class_names.size(); ++i) {
        index.emplace(out.class_names[i], static_cast<int>(i));
    }
    for (const auto& row : table.rows) {
        out.labels.push_back(index.find(tab::trimmed(row[target]))->second);
    }
    return out;
}

template <class T>
Tabular<T> read_tabular_csv(const std::filesystem::path& path, const TabularOptions& options) {
    return tabular_from_csv<T>(read_csv(path, options.csv), options);
}

}  // namespace gradscope::data
