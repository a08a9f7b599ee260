// Numbers as text, for every report gradscope writes (table, CSV, JSON, SVG) and for the
// examples' output: one place that decides how a double looks, so that the same value reads the
// same everywhere and a missing one is spelled the same way everywhere.
//
// The styles (NumberFormat):
//   shortest     the shortest text that reads back as the same double ("0.1", "3.3e-07");
//                what CSV and JSON write, so that a file loses nothing
//   fixed N      N decimals ("%.Nf"): coordinates in an SVG
//   scientific N N decimals after the point, with an exponent ("%.Ne"): ratios in a table
//   significant N  N significant digits, trailing zeros kept ("%#.Ng"): gains in a table
//   general N    at most N significant digits, trailing zeros dropped ("%.Ng"): labels
// All of them are locale independent (std::to_chars): a decimal comma never enters a CSV.
//
// Note [Missing numbers]: a value that is not applicable (std::nullopt: no prediction where
// the theory does not apply, no sigma_w2 for a named initialiser) and a NaN (a quantity that
// could not be measured) are both "no number":
//   table "-"      CSV an empty field      JSON null
// An infinity is a number that overflowed, which a reader should see: "inf" / "-inf" in a
// table and in CSV (pandas and numpy read both back); JSON has no infinity, so it is null there
// too (json_report.hpp).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace gradscope::diag {

enum class Notation { shortest, fixed, scientific, significant, general };

struct NumberFormat {
    Notation notation = Notation::shortest;
    int digits = 0;  // decimals (fixed, scientific) or significant digits (significant, general)
};

// The named styles the reports use, so that a change of mind is one line.
inline constexpr NumberFormat round_trip{Notation::shortest, 0};
inline constexpr NumberFormat svg_coordinate{Notation::fixed, 2};
inline constexpr NumberFormat table_ratio{Notation::scientific, 2};
inline constexpr NumberFormat table_gain{Notation::significant, 4};

// What a table shows where a number is missing (Note [Missing numbers]).
inline constexpr std::string_view not_applicable = "-";

namespace detail {

inline std::string chars(double value, std::chars_format format, int precision) {
    char buffer[400];  // %.2f of 1e308 is 312 characters
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, format, precision);
    if (result.ec != std::errc())
        return std::to_string(value);  // unreachable with the precisions used
    return std::string(buffer, result.ptr);
}

// "%#.Ng": the exponent of the value rounded to N digits picks fixed or scientific, as printf does.
inline std::string significant(double value, int digits) {
    digits = digits < 1 ? 1 : digits;
    const std::string sci = chars(value, std::chars_format::scientific, digits - 1);
    const int exponent = std::atoi(sci.c_str() + sci.find('e') + 1);
    if (exponent < -4 || exponent >= digits) return sci;
    return chars(value, std::chars_format::fixed, digits - 1 - exponent);
}

}  // namespace detail

// The value in the given style; a non-finite one is "nan", "inf" or "-inf" in every style.
inline std::string format_number(double value, NumberFormat format = round_trip) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
    switch (format.notation) {
        case Notation::fixed:
            return detail::chars(value, std::chars_format::fixed, format.digits);
        case Notation::scientific:
            return detail::chars(value, std::chars_format::scientific, format.digits);
        case Notation::significant:
            return detail::significant(value, format.digits);
        case Notation::general:
            return detail::chars(value, std::chars_format::general, format.digits);
        case Notation::shortest:
            break;
    }
    char buffer[40];
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value);
    return std::string(buffer, result.ptr);
}

// A table cell: "-" for NaN or no value, "inf" / "-inf", else the value in the given style.
inline std::string table_number(double value, NumberFormat format) {
    return std::isnan(value) ? std::string(not_applicable) : format_number(value, format);
}

inline std::string table_number(const std::optional<double>& value, NumberFormat format) {
    return value ? table_number(*value, format) : std::string(not_applicable);
}

// A CSV field: empty for NaN or no value, "inf" / "-inf", else the shortest round-trip text.
inline std::string csv_number(double value) {
    return std::isnan(value) ? std::string() : format_number(value);
}

inline std::string csv_number(const std::optional<double>& value) {
    return value ? csv_number(*value) : std::string();
}

}  // namespace gradscope::diag
