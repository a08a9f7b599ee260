// format_report: a ClassificationReport as the text scikit-learn's classification_report prints:
// a row per class (precision, recall, F1, support), then accuracy and the macro and
// support-weighted means, in columns of width 9 under a header, names right-aligned. The same
// report and digits give the same characters as scikit-learn 1.2 (tests/test_metrics.cpp holds
// its output).
#pragma once

#include "../core/errors.hpp"
#include "classification.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace gradscope::metrics {

// In scikit-learn's argument order (target_names, digits).
struct ReportFormat {
    std::vector<std::string> class_names{};  // one per class; empty: the class indices
    int digits = 2;                          // after the decimal point, in [0, 15]
};

namespace detail::report_text {

inline std::string right_aligned(const std::string& text, std::size_t width) {
    return text.size() >= width ? text : std::string(width - text.size(), ' ') + text;
}

inline std::string fixed(double value, int digits) {
    std::vector<char> buffer(32 + static_cast<std::size_t>(digits));
    const int length = std::snprintf(buffer.data(), buffer.size(), "%.*f", digits, value);
    return std::string(buffer.data(), static_cast<std::size_t>(length));
}

// One row: the name, then a column of width 9 per cell (an empty cell is blank).
inline std::string row(const std::string& name, std::size_t width,
                       const std::vector<std::string>& cells) {
    std::string out = right_aligned(name, width) + " ";
    for (const auto& cell : cells) out += " " + right_aligned(cell, 9);
    return out + "\n";
}

}  // namespace detail::report_text

inline std::string format_report(const ClassificationReport& report,
                                 const ReportFormat& options = {}) {
    namespace text = detail::report_text;
    const char* who = "metrics::format_report";
    const std::size_t classes = report.precision.size();
    if (report.recall.size() != classes || report.f1.size() != classes ||
        report.support.size() != classes) {
        gradscope::detail::throw_value(
            who, "the report's per-class lists differ in length (precision " +
                     std::to_string(classes) + ", recall " + std::to_string(report.recall.size()) +
                     ", f1 " + std::to_string(report.f1.size()) + ", support " +
                     std::to_string(report.support.size()) + ")");
    }
    if (!options.class_names.empty() && options.class_names.size() != classes) {
        gradscope::detail::throw_value(who, std::to_string(options.class_names.size()) +
                                                " class names for " + std::to_string(classes) +
                                                " classes");
    }
    if (options.digits < 0 || options.digits > 15) {
        gradscope::detail::throw_value(
            who, "digits must be in [0, 15], got " + std::to_string(options.digits));
    }
    std::vector<std::string> names = options.class_names;
    if (names.empty()) {
        for (std::size_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
    }
    std::size_t width = std::string("weighted avg").size();
    for (const auto& name : names) width = std::max(width, name.size());
    width = std::max(width, static_cast<std::size_t>(options.digits));

    const auto number = [&](double value) { return text::fixed(value, options.digits); };
    std::int64_t total = 0;
    for (const std::int64_t s : report.support) total += s;
    std::string out = text::row("", width, {"precision", "recall", "f1-score", "support"}) + "\n";
    for (std::size_t c = 0; c < classes; ++c) {
        out += text::row(names[c], width,
                         {number(report.precision[c]), number(report.recall[c]),
                          number(report.f1[c]), std::to_string(report.support[c])});
    }
    out += "\n";
    out += text::row("accuracy", width, {"", "", number(report.accuracy), std::to_string(total)});
    out += text::row("macro avg", width,
                     {number(report.macro_precision), number(report.macro_recall),
                      number(report.macro_f1), std::to_string(total)});
    out += text::row("weighted avg", width,
                     {number(report.weighted_precision), number(report.weighted_recall),
                      number(report.weighted_f1), std::to_string(total)});
    return out;
}

inline std::ostream& operator<<(std::ostream& out, const ClassificationReport& report) {
    return out << format_report(report);
}

}  // namespace gradscope::metrics
