// Data series on a plot (svg_axes.hpp's PlotScale): a line through the points, or the points
// alone as dots (a scatter), each point optionally with its exact values on hover; and the
// legend that names them.
//
// Points whose x or y cannot be drawn (not finite, or not positive on a log axis) are skipped
// and break a line there; a point left with no neighbour on either side is drawn as a dot.
// Colours come from a fixed palette of ten, cycling; from the eleventh series on, dash patterns
// tell the cycles apart. A series may choose its own colour and dash pattern instead.
#pragma once

#include "format.hpp"
#include "svg_axes.hpp"
#include "svg_elements.hpp"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag {

struct SvgSeries {
    std::string name = {};                               // legend text
    std::vector<std::pair<double, double>> points = {};  // (x, y), drawn in this order
    std::string color = {};  // any SVG colour ("#1f77b4", "red"); empty: the palette's
    std::string dash = {};   // stroke-dasharray ("6 3", or "none" for solid); empty: the palette's
    bool markers = false;    // true: a dot per point and no line (a scatter)
    // Hover text per point (as many as points), replacing "name: x = .., y = ..".
    std::vector<std::string> point_titles = {};
};

// The automatic styles: colour i % 10, dash pattern (i / 10) % 5.
inline const std::vector<std::string>& svg_palette() {
    static const std::vector<std::string> colors{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                                 "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                 "#bcbd22", "#17becf"};
    return colors;
}

inline const std::vector<std::string>& svg_dash_patterns() {
    static const std::vector<std::string> dashes{"none", "7 4", "2 3", "9 3 2 3", "4 2 1 2 1 2"};
    return dashes;
}

namespace detail {

struct SeriesStyle {
    std::string color;
    std::string stroke_attrs;  // stroke="..." and, unless solid, stroke-dasharray="..."
};

// Series i's colour and dash: its own, or the palette's.
inline SeriesStyle series_style(std::size_t i, const SvgSeries& s) {
    const auto& palette = svg_palette();
    const auto& dashes = svg_dash_patterns();
    SeriesStyle style{s.color.empty() ? palette[i % palette.size()] : s.color, {}};
    const std::string dash = s.dash.empty() ? dashes[(i / palette.size()) % dashes.size()] : s.dash;
    style.stroke_attrs = "stroke=\"" + xml_escape(style.color) + "\"";
    if (dash != "none") style.stroke_attrs += " stroke-dasharray=\"" + xml_escape(dash) + "\"";
    return style;
}

inline std::string point_title(const SvgSeries& s, std::size_t k) {
    if (k < s.point_titles.size()) return s.point_titles[k];
    const NumberFormat exact{Notation::general, 4};
    return s.name + ": x = " + format_number(s.points[k].first, exact) +
           ", y = " + format_number(s.points[k].second, exact);
}

inline std::string svg_dot(double x, double y, double r, std::string_view attrs,
                           std::string_view inner = {}) {
    std::string out = "<circle" + svg_attr("cx", x) + svg_attr("cy", y) + svg_attr("r", r) + " " +
                      std::string(attrs);
    return inner.empty() ? out + "/>" : out + ">" + std::string(inner) + "</circle>";
}

// A line series as one <path> (a skipped point starts a new run of segments), and a dot for
// each point without a drawable neighbour.
inline std::string svg_line_series(const PlotScale& at, const SvgSeries& s,
                                   const SeriesStyle& style) {
    const auto& p = s.points;
    const auto drawable = [&](std::size_t k) { return at.admits(p[k].first, p[k].second); };
    std::string d, dots;
    for (std::size_t k = 0; k < p.size(); ++k) {
        if (!drawable(k)) continue;
        const bool after = k > 0 && drawable(k - 1);
        const bool before = k + 1 < p.size() && drawable(k + 1);
        const double x = at.px(p[k].first), y = at.py(p[k].second);
        if (!d.empty()) d += ' ';
        d += (after ? "L" : "M") + svg_number(x) + " " + svg_number(y);
        if (!after && !before) dots += svg_dot(x, y, 2.5, "fill=\"" + xml_escape(style.color) + "\"");
    }
    return "<path fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\" " +
           style.stroke_attrs + " d=\"" + d + "\">" + svg_tooltip(s.name) + "</path>" + dots + "\n";
}

// A dot of radius 4 on each drawable point, its values on hover, in a group with `group_attrs`:
// a scatter series (coloured dots) or a line's hover targets (transparent ones).
inline std::string svg_points(const PlotScale& at, const SvgSeries& s, std::string_view group_attrs) {
    std::string out = "<g " + std::string(group_attrs) + ">\n";
    for (std::size_t k = 0; k < s.points.size(); ++k) {
        const auto [x, y] = s.points[k];
        if (!at.admits(x, y)) continue;
        out += svg_dot(at.px(x), at.py(y), 4, "class=\"point\"", svg_tooltip(point_title(s, k))) +
               "\n";
    }
    return out + "</g>\n";
}

inline std::string svg_marker_series(const PlotScale& at, const SvgSeries& s,
                                     const SeriesStyle& style) {
    return svg_points(at, s, "class=\"markers\" fill=\"" + xml_escape(style.color) +
                                 "\" fill-opacity=\"0.75\"");
}

inline std::string svg_hover_points(const PlotScale& at, const SvgSeries& s) {
    return svg_points(at, s, "fill=\"transparent\"");
}

// The legend's columns: how many entries a column holds and how wide a column is.
struct LegendLayout {
    std::size_t rows_per_column = 1, columns = 0;
    double column_width = 0;
    [[nodiscard]] double width() const {
        return columns == 0 ? 0.0 : 16.0 + column_width * static_cast<double>(columns);
    }
};

inline LegendLayout legend_layout(const std::vector<SvgSeries>& series, double plot_height) {
    constexpr double char_width = 7.0, row_height = 18.0;
    std::size_t longest = 0;
    for (const auto& s : series) longest = std::max(longest, s.name.size());
    LegendLayout l;
    l.rows_per_column = std::max<std::size_t>(1, static_cast<std::size_t>(plot_height / row_height));
    l.columns = series.empty() ? 0 : (series.size() + l.rows_per_column - 1) / l.rows_per_column;
    l.column_width = 40.0 + char_width * static_cast<double>(longest) + 16.0;
    return l;
}

// The legend, in columns starting at (left, top): a line sample (or a dot, for a scatter) and
// the series' name.
inline std::string svg_legend(const std::vector<SvgSeries>& series, const LegendLayout& l,
                              double left, double top) {
    if (series.empty()) return {};
    std::string out = "<g class=\"legend\">\n";
    for (std::size_t i = 0; i < series.size(); ++i) {
        const SeriesStyle style = series_style(i, series[i]);
        const double lx = left + l.column_width * static_cast<double>(i / l.rows_per_column);
        const double ly = top + 18.0 * static_cast<double>(i % l.rows_per_column);
        out += series[i].markers
                   ? svg_dot(lx + 16, ly, 4, "fill=\"" + xml_escape(style.color) + "\"")
                   : svg_line(lx, ly, lx + 32, ly, "stroke-width=\"2\" " + style.stroke_attrs);
        out += svg_text(lx + 40, ly + 4, series[i].name);
    }
    return out + "</g>\n";
}

}  // namespace detail
}  // namespace gradscope::diag
