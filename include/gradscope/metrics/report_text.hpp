// format_report: a ClassificationReport as the text scikit-learn's classification_report prints:
// a row per class (precision, recall, F1, support), then accuracy and the macro and
// support-weighted means, in columns of width 9 under a header, names right-aligned. It is the
// text of classification_report(y_true, y_pred, labels=range(classes), digits=digits,
// zero_division=0) in scikit-learn 1.2, character for character (tests/test_metrics.cpp holds
// its output): where a class is neither in the truth nor predicted, scikit-learn's accuracy row
// becomes "micro avg", and so it does here.
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
    int digits = 2;                          // after the decimal point, >= 0
};

namespace detail::report_text {

// Characters, as Python's len counts them: the UTF-8 bytes that start a code point.
inline std::size_t code_points(const std::string& text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char byte) {
        return (static_cast<unsigned char>(byte) & 0xC0U) != 0x80U;
    }));
}

inline std::string right_aligned(const std::string& text, std::size_t width) {
    const std::size_t length = code_points(text);
    return length >= width ? text : std::string(width - length, ' ') + text;
}

// Python's "{:.{digits}f}": both print the exact decimal expansion, correctly rounded.
inline std::string fixed(double value, int digits) {
    const int length = std::snprintf(nullptr, 0, "%.*f", digits, value);
    std::string out(static_cast<std::size_t>(length) + 1, '\0');
    std::snprintf(out.data(), out.size(), "%.*f", digits, value);
    out.pop_back();
    return out;
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
        report.support.size() != classes || report.predicted.size() != classes) {
        gradscope::detail::throw_value(
            who, "the report's per-class lists differ in length (precision " +
                     std::to_string(classes) + ", recall " + std::to_string(report.recall.size()) +
                     ", f1 " + std::to_string(report.f1.size()) + ", support " +
                     std::to_string(report.support.size()) + ", predicted " +
                     std::to_string(report.predicted.size()) + ")");
    }
    if (classes == 0) gradscope::detail::throw_value(who, "the report has no classes");
    if (!options.class_names.empty() && options.class_names.size() != classes) {
        gradscope::detail::throw_value(who, std::to_string(options.class_names.size()) +
                                                " class names for " + std::to_string(classes) +
                                                " classes");
    }
    if (options.digits < 0) {
        gradscope::detail::throw_value(
            who, "digits must be >= 0, got " + std::to_string(options.digits));
    }
    std::vector<std::string> names = options.class_names;
    if (names.empty()) {
        for (std::size_t c = 0; c < classes; ++c) names.push_back(std::to_string(c));
    }
    std::size_t width = std::string("weighted avg").size();
    for (const auto& name : names) width = std::max(width, text::code_points(name));
    width = std::max(width, static_cast<std::size_t>(options.digits));

    const auto number = [&](double value) { return text::fixed(value, options.digits); };
    std::int64_t total = 0;
    bool every_class_seen = true;  // in the truth or among the predictions
    for (std::size_t c = 0; c < classes; ++c) {
        total += report.support[c];
        every_class_seen = every_class_seen && (report.support[c] > 0 || report.predicted[c] > 0);
    }
    std::string out = text::row("", width, {"precision", "recall", "f1-score", "support"}) + "\n";
    for (std::size_t c = 0; c < classes; ++c) {
        out += text::row(names[c], width,
                         {number(report.precision[c]), number(report.recall[c]),
                          number(report.f1[c]), std::to_string(report.support[c])});
    }
    out += "\n";
    // scikit-learn's accuracy row is its micro average, whose precision and recall both equal the
    // accuracy, and whose F1 it prints, computed from them (which can differ in the last bit).
    const double micro = report.accuracy;
    const double micro_f1 = gradscope::metrics::detail::f1_of(micro, micro);
    if (every_class_seen) {
        out += text::row("accuracy", width, {"", "", number(micro_f1), std::to_string(total)});
    } else {
        out += text::row("micro avg", width,
                         {number(micro), number(micro), number(micro_f1), std::to_string(total)});
    }
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
