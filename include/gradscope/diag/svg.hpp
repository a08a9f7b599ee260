// A self-contained SVG line plot: series of (x, y) points, optional log10 y axis, a legend, a
// title and axis labels, and nothing else to install. The result opens in any browser and
// scales with the window (viewBox).
//
//     const std::string svg = diag::svg_plot(
//         {{.name = "train", .points = {{1, 0.9}, {2, 0.5}, {3, 0.31}}}},
//         {.title = "loss per epoch", .x_label = "epoch", .y_label = "loss", .log_y = true});
//
// Points whose x or y is not finite, or (on a log axis) whose y is not positive, are skipped and
// break the line there; a point left with no neighbour on either side is drawn as a dot. Each
// series is one <path> element. Colours come from a fixed palette of ten, cycling; from the
// eleventh series on, dash patterns tell the cycles apart. A series may choose its own colour
// and dash pattern instead.
#pragma once

#include "format.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gradscope::diag {

struct SvgSeries {
    std::string name = {};                               // legend text
    std::vector<std::pair<double, double>> points = {};  // (x, y), drawn in this order
    std::string color = {};  // any SVG colour ("#1f77b4", "red"); empty: the palette's
    std::string dash = {};   // stroke-dasharray ("6 3", or "none" for solid); empty: the palette's
};

struct SvgOptions {
    std::string title = {};
    std::string x_label = "x";
    std::string y_label = "y";
    bool log_y = false;
    double width = 900;  // of the plot, legend not included (the legend widens the image)
    double height = 560;
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

// Text and attribute values: & < > " ' become entities.
inline std::string xml_escape(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&apos;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

namespace detail {

inline std::string svg_number(double v) { return format_number(v, svg_coordinate); }

// A tick label for k * step: as many decimals as the step needs, 6 significant digits for
// extreme magnitudes (which also hides the rounding error of k * step).
inline std::string svg_tick_label(double value, double step) {
    if (value == 0.0) return "0";
    if (std::abs(value) >= 1e6 || step < 1e-4) return format_number(value, {Notation::general, 6});
    const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
    return format_number(value, {Notation::fixed, decimals});
}

// 1, 2 or 5 times a power of ten, close to `rough`.
inline double nice_step(double rough) {
    if (!(rough > 0.0) || !std::isfinite(rough)) return 1.0;
    const double power = std::pow(10.0, std::floor(std::log10(rough)));
    const double f = rough / power;
    const double nice = f < 1.5 ? 1.0 : f < 3.5 ? 2.0 : f < 7.5 ? 5.0 : 10.0;
    return nice * power;
}

struct SvgAxis {
    double lo = 0.0, hi = 1.0;  // in plotted units (log10 of the value on a log axis)
    std::vector<std::pair<double, std::string>> ticks;  // position in plotted units, label
};

// A linear axis over [lo, hi]; `pad` extends the range to whole steps (y) or keeps it (x).
inline SvgAxis linear_axis(double lo, double hi, bool integral, bool pad) {
    if (!(lo <= hi)) lo = 0.0, hi = 1.0;
    if (lo == hi) {
        const double half = integral ? 1.0 : (lo == 0.0 ? 1.0 : std::abs(lo) * 0.1);
        lo -= half;
        hi += half;
    }
    double step = nice_step((hi - lo) / 6.0);
    if (integral) step = std::max(step, 1.0);
    SvgAxis axis;
    if (pad) {
        lo = std::floor(lo / step) * step;
        hi = std::ceil(hi / step) * step;
    }
    axis.lo = lo;
    axis.hi = hi;
    const long long first = static_cast<long long>(std::ceil(lo / step - 1e-9));
    const long long last = static_cast<long long>(std::floor(hi / step + 1e-9));
    for (long long k = first; k <= last; ++k) {
        const double v = static_cast<double>(k) * step;
        axis.ticks.emplace_back(v, svg_tick_label(v, step));
    }
    return axis;
}

// A log10 axis over whole decades covering [lo, hi] (values, both > 0).
inline SvgAxis log_axis(double lo, double hi) {
    int a = static_cast<int>(std::floor(std::log10(lo)));
    int b = static_cast<int>(std::ceil(std::log10(hi)));
    if (b <= a) b = a + 1;
    // Label every decade, or every 2nd, 3rd, 5th, 10th, ... so that at most 17 labels remain.
    int every = 1;
    for (const int candidate : {1, 2, 3, 5, 10, 20, 25, 50, 100}) {
        every = candidate;
        if ((b - a) / candidate <= 16) break;
    }
    a = static_cast<int>(std::floor(static_cast<double>(a) / every)) * every;
    b = static_cast<int>(std::ceil(static_cast<double>(b) / every)) * every;
    SvgAxis axis{static_cast<double>(a), static_cast<double>(b), {}};
    for (int k = a; k <= b; k += every)
        axis.ticks.emplace_back(static_cast<double>(k), "1e" + std::to_string(k));
    return axis;
}

}  // namespace detail

inline std::string svg_plot(const std::vector<SvgSeries>& series, const SvgOptions& options = {}) {
    using detail::svg_number;
    const auto usable = [&](double x, double y) {
        return std::isfinite(x) && std::isfinite(y) && (!options.log_y || y > 0.0);
    };

    // Data ranges over the points that will be drawn.
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    bool integral_x = true;
    std::size_t drawn = 0;
    for (const auto& s : series) {
        for (const auto& [x, y] : s.points) {
            if (!usable(x, y)) continue;
            ++drawn;
            xmin = std::min(xmin, x);
            xmax = std::max(xmax, x);
            ymin = std::min(ymin, y);
            ymax = std::max(ymax, y);
            integral_x = integral_x && x == std::round(x);
        }
    }
    if (drawn == 0) {
        xmin = 0.0, xmax = 1.0;
        ymin = options.log_y ? 1.0 : 0.0;
        ymax = options.log_y ? 10.0 : 1.0;
        integral_x = false;
    }
    const detail::SvgAxis xaxis = detail::linear_axis(xmin, xmax, integral_x, false);
    const detail::SvgAxis yaxis =
        options.log_y ? detail::log_axis(ymin, ymax) : detail::linear_axis(ymin, ymax, false, true);

    // Layout: title on top, y labels on the left, x labels below, legend on the right.
    const double char_w = 7.0, row_h = 18.0;
    const double left = 86, right = 24, top = options.title.empty() ? 24 : 52, bottom = 62;
    const double plot_w = std::max(120.0, options.width - left - right);
    const double plot_h = std::max(120.0, options.height - top - bottom);
    const double x0 = left, y0 = top, x1 = left + plot_w, y1 = top + plot_h;

    std::size_t longest = 0;
    for (const auto& s : series) longest = std::max(longest, s.name.size());
    const std::size_t rows_per_column =
        std::max<std::size_t>(1, static_cast<std::size_t>(plot_h / row_h));
    const std::size_t columns =
        series.empty() ? 0 : (series.size() + rows_per_column - 1) / rows_per_column;
    const double column_w = 40.0 + char_w * static_cast<double>(longest) + 16.0;
    const double legend_w = columns == 0 ? 0.0 : 16.0 + column_w * static_cast<double>(columns);
    const double total_w = x1 + right + legend_w;
    const double total_h = y1 + bottom;

    const auto px = [&](double x) { return x0 + (x - xaxis.lo) / (xaxis.hi - xaxis.lo) * plot_w; };
    const auto py = [&](double y) {
        const double v = options.log_y ? std::log10(y) : y;
        return y1 - (v - yaxis.lo) / (yaxis.hi - yaxis.lo) * plot_h;
    };
    const auto py_plotted = [&](double v) {
        return y1 - (v - yaxis.lo) / (yaxis.hi - yaxis.lo) * plot_h;
    };

    std::string out;
    out += "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + svg_number(total_w) + " " +
           svg_number(total_h) + "\" width=\"" + svg_number(total_w) + "\" height=\"" +
           svg_number(total_h) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    out += "<rect x=\"0\" y=\"0\" width=\"" + svg_number(total_w) + "\" height=\"" +
           svg_number(total_h) + "\" fill=\"white\"/>\n";
    if (!options.title.empty()) {
        out += "<text x=\"" + svg_number((x0 + x1) / 2) +
               "\" y=\"30\" text-anchor=\"middle\" font-size=\"16\">" + xml_escape(options.title) +
               "</text>\n";
    }

    // Grid and ticks.
    out += "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
    for (const auto& [v, label] : yaxis.ticks) {
        const std::string y = svg_number(py_plotted(v));
        out += "<line x1=\"" + svg_number(x0) + "\" y1=\"" + y + "\" x2=\"" + svg_number(x1) +
               "\" y2=\"" + y + "\"/>\n";
    }
    for (const auto& [v, label] : xaxis.ticks) {
        const std::string x = svg_number(px(v));
        out += "<line x1=\"" + x + "\" y1=\"" + svg_number(y0) + "\" x2=\"" + x + "\" y2=\"" +
               svg_number(y1) + "\"/>\n";
    }
    out += "</g>\n<g fill=\"#333\">\n";
    for (const auto& [v, label] : yaxis.ticks) {
        out += "<text x=\"" + svg_number(x0 - 8) + "\" y=\"" + svg_number(py_plotted(v) + 4) +
               "\" text-anchor=\"end\">" + xml_escape(label) + "</text>\n";
    }
    for (const auto& [v, label] : xaxis.ticks) {
        out += "<text x=\"" + svg_number(px(v)) + "\" y=\"" + svg_number(y1 + 18) +
               "\" text-anchor=\"middle\">" + xml_escape(label) + "</text>\n";
    }
    out += "</g>\n";
    out += "<rect x=\"" + svg_number(x0) + "\" y=\"" + svg_number(y0) + "\" width=\"" +
           svg_number(plot_w) + "\" height=\"" + svg_number(plot_h) +
           "\" fill=\"none\" stroke=\"#333\"/>\n";
    out += "<text x=\"" + svg_number((x0 + x1) / 2) + "\" y=\"" + svg_number(y1 + 44) +
           "\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(options.x_label) +
           "</text>\n";
    out += "<text transform=\"translate(22 " + svg_number((y0 + y1) / 2) +
           ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" +
           xml_escape(options.y_label) + "</text>\n";
    if (drawn == 0) {
        out += "<text x=\"" + svg_number((x0 + x1) / 2) + "\" y=\"" + svg_number((y0 + y1) / 2) +
               "\" text-anchor=\"middle\" fill=\"#999\" font-size=\"14\">no data</text>\n";
    }

    const auto style_of = [&](std::size_t i, const SvgSeries& s) {
        const auto& palette = svg_palette();
        const auto& dashes = svg_dash_patterns();
        const std::string color = s.color.empty() ? palette[i % palette.size()] : s.color;
        const std::string dash =
            s.dash.empty() ? dashes[(i / palette.size()) % dashes.size()] : s.dash;
        std::string attrs = "stroke=\"" + xml_escape(color) + "\"";
        if (dash != "none") attrs += " stroke-dasharray=\"" + xml_escape(dash) + "\"";
        return std::make_pair(attrs, color);
    };

    // One path per series; a skipped point ends the current run of segments.
    for (std::size_t i = 0; i < series.size(); ++i) {
        const SvgSeries& s = series[i];
        const auto [attrs, color] = style_of(i, s);
        std::string d, dots;
        const auto& p = s.points;
        for (std::size_t k = 0; k < p.size(); ++k) {
            if (!usable(p[k].first, p[k].second)) continue;
            const bool after = k > 0 && usable(p[k - 1].first, p[k - 1].second);
            const bool before = k + 1 < p.size() && usable(p[k + 1].first, p[k + 1].second);
            const std::string x = svg_number(px(p[k].first)), y = svg_number(py(p[k].second));
            if (!d.empty()) d += ' ';
            d += (after ? "L" : "M") + x + " " + y;
            if (!after && !before) {
                dots += "<circle cx=\"" + x + "\" cy=\"" + y + "\" r=\"2.5\" fill=\"" +
                        xml_escape(color) + "\"/>";
            }
        }
        out += "<path fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\" " + attrs +
               " d=\"" + d + "\"><title>" + xml_escape(s.name) + "</title></path>" + dots + "\n";
    }

    // Legend, outside the plot area so that it never hides a line.
    if (!series.empty()) {
        out += "<g class=\"legend\">\n";
        for (std::size_t i = 0; i < series.size(); ++i) {
            const auto [attrs, color] = style_of(i, series[i]);
            const double lx = x1 + right + 8 + column_w * static_cast<double>(i / rows_per_column);
            const double ly = y0 + 10 + row_h * static_cast<double>(i % rows_per_column);
            out += "<line x1=\"" + svg_number(lx) + "\" y1=\"" + svg_number(ly) + "\" x2=\"" +
                   svg_number(lx + 32) + "\" y2=\"" + svg_number(ly) + "\" stroke-width=\"2\" " +
                   attrs + "/>";
            out += "<text x=\"" + svg_number(lx + 40) + "\" y=\"" + svg_number(ly + 4) + "\">" +
                   xml_escape(series[i].name) + "</text>\n";
        }
        out += "</g>\n";
    }
    out += "</svg>\n";
    return out;
}

}  // namespace gradscope::diag
