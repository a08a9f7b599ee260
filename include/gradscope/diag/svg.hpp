// A self-contained SVG plot: series of (x, y) points as lines or dots, linear or log10 axes,
// a legend, a title and axis labels, and nothing else to install. The result opens in any
// browser and scales with the window (viewBox).
//
//     const std::string svg = diag::svg_plot(
//         {{.name = "train", .points = {{1, 0.9}, {2, 0.5}, {3, 0.31}}}},
//         {.title = "loss per epoch", .x_label = "epoch", .y_label = "loss", .log_y = true});
//
// Each line series is one <path> element (svg_series.hpp says how points that cannot be drawn
// break it); a series with `markers` is a scatter of dots instead. With `hover_values`, hovering
// a point of a line shows its exact values; a scatter's dots always do.
//
// The pieces, each in its own header: svg_elements.hpp (markup), svg_axes.hpp (ticks and the
// data-to-pixel mapping), svg_series.hpp (lines, dots, legend); heat maps are svg_heatmap.hpp.
#pragma once

#include "svg_axes.hpp"
#include "svg_elements.hpp"
#include "svg_series.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <string>
#include <vector>

namespace gradscope::diag {

struct SvgOptions {
    std::string title = {};
    std::string x_label = "x";
    std::string y_label = "y";
    bool log_x = false;
    bool log_y = false;
    double width = 900;  // of the plot, legend not included (the legend widens the image)
    double height = 560;
    bool hover_values = false;  // every point of a line shows its exact values on hover
};

namespace detail {

// The axes that hold every drawable point (decades on a log axis, whole steps on a linear
// y axis, the data's own range on a linear x axis); a unit range when nothing is drawable.
inline PlotScale plot_scale(const std::vector<SvgSeries>& series, const SvgOptions& o,
                            const PlotArea& area, bool& any_drawn) {
    const SvgAxis probe_x{0, 1, {}, o.log_x}, probe_y{0, 1, {}, o.log_y};
    double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
    bool integral_x = true;
    any_drawn = false;
    for (const auto& s : series) {
        for (const auto& point : s.points) {
            if (!probe_x.admits(point.first) || !probe_y.admits(point.second)) continue;
            any_drawn = true;
            xmin = std::min(xmin, point.first);
            xmax = std::max(xmax, point.first);
            ymin = std::min(ymin, point.second);
            ymax = std::max(ymax, point.second);
            integral_x = integral_x && point.first == std::round(point.first);
        }
    }
    if (!any_drawn) {
        xmin = o.log_x ? 1.0 : 0.0, xmax = o.log_x ? 10.0 : 1.0;
        ymin = o.log_y ? 1.0 : 0.0, ymax = o.log_y ? 10.0 : 1.0;
        integral_x = false;
    }
    return {area, o.log_x ? log_axis(xmin, xmax) : linear_axis(xmin, xmax, integral_x, false),
            o.log_y ? log_axis(ymin, ymax) : linear_axis(ymin, ymax, false, true)};
}

}  // namespace detail

inline std::string svg_plot(const std::vector<SvgSeries>& series, const SvgOptions& options = {}) {
    // Layout: title on top, y labels on the left, x labels below, legend on the right (outside
    // the plot, so that it never hides a line).
    constexpr double left = 86, right = 24, bottom = 62;
    const double top = options.title.empty() ? 24 : 52;
    const double plot_w = std::max(120.0, options.width - left - right);
    const double plot_h = std::max(120.0, options.height - top - bottom);
    const detail::PlotArea area{left, top, left + plot_w, top + plot_h};
    const detail::LegendLayout legend = detail::legend_layout(series, plot_h);

    bool any_drawn = false;
    const detail::PlotScale scale = detail::plot_scale(series, options, area, any_drawn);

    std::string out = detail::svg_begin(area.x1 + right + legend.width(), area.y1 + bottom);
    out += detail::svg_plot_title(area, options.title);
    out += detail::svg_grid_and_ticks(scale);
    out += detail::svg_frame(area, options.x_label, options.y_label, 22);
    if (!any_drawn) {
        out += detail::svg_text(area.centre_x(), area.centre_y(), "no data",
                                "text-anchor=\"middle\" fill=\"#999\" font-size=\"14\"");
    }
    for (std::size_t i = 0; i < series.size(); ++i) {
        const detail::SeriesStyle style = detail::series_style(i, series[i]);
        if (series[i].markers) {
            out += detail::svg_marker_series(scale, series[i], style);
            continue;
        }
        out += detail::svg_line_series(scale, series[i], style);
        if (options.hover_values) out += detail::svg_hover_points(scale, series[i]);
    }
    out += detail::svg_legend(series, legend, area.x1 + right + 8, area.y0 + 10);
    return out + "</svg>\n";
}

}  // namespace gradscope::diag
