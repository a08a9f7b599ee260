// Class labels of any integer type. gradscope keeps class labels as int; PyTorch's are int64 and
// a label file's are often uint8, so the functions that take class labels (cross_entropy,
// TensorDataset, split_indices, class_balancing_weights, the classification metrics) also take a
// std::vector of another integer type and convert it here, refusing a label that int cannot hold
// instead of wrapping it to a different class.
#pragma once

#include "errors.hpp"

#include <concepts>
#include <cstddef>
#include <span>
#include <string>
#include <utility>
#include <vector>

namespace gradscope {

// An integer type other than int that class labels may arrive in: std::int64_t, long,
// std::size_t, std::uint8_t, ... Not bool, nor char, wchar_t, char8_t, char16_t or char32_t,
// which hold text; and only a type std::to_string can name in an error (no __int128).
template <class L>
concept ConvertibleLabel =
    std::integral<L> && !std::same_as<L, int> && !std::same_as<L, bool> && !std::same_as<L, char> &&
    !std::same_as<L, wchar_t> && !std::same_as<L, char8_t> && !std::same_as<L, char16_t> &&
    !std::same_as<L, char32_t> && requires(L label) {
    std::to_string(label);
};

// int itself, or a type converted to it.
template <class L>
concept LabelInteger = std::same_as<L, int> || ConvertibleLabel<L>;

namespace detail {

// `labels` as ints; a value out of int's range is a value_error naming it and its row. `what`
// names the values in that message ("label", "prediction").
template <LabelInteger L>
std::vector<int> labels_as_int(const char* who, std::span<const L> labels,
                               const char* what = "label") {
    std::vector<int> out;
    out.reserve(labels.size());
    for (std::size_t row = 0; row < labels.size(); ++row) {
        if (!std::in_range<int>(labels[row])) {
            throw_value(who, std::string(what) + " " + std::to_string(labels[row]) + " at row " +
                                 std::to_string(row) +
                                 " does not fit in an int (labels are class indices)");
        }
        out.push_back(static_cast<int>(labels[row]));
    }
    return out;
}

}  // namespace detail
}  // namespace gradscope
