// A heat map as SVG: cells over a continuous x and y (each cell spans its edges) or over
// categories, coloured on a continuous scale (viridis between `low` and `high`) or in bands
// (a stepped scale, for values that thresholds divide into verdicts), with a colour bar, each
// cell's text written in it and its hover title, and optional curves drawn over the cells in
// the same coordinates.
//
//     diag::SvgHeatMap map{.x_edges = {...}, .y_edges = {...}, .values = {...},  // rows = y
//                          .low = 0.1, .high = 0.9, .title = "...", .x_label = "sigma_w^2"};
//     std::string svg = diag::svg_heatmap(map);
//
// Categories: give x_labels / y_labels (one per cell column / row) to label the cells instead of
// their centres' values; the edges may then be 0, 1, ..., n. Every cell is a <rect
// class="cell">, so that a test (or a script) can count them.
#pragma once

#include "../core/errors.hpp"
#include "format.hpp"
#include "svg_elements.hpp"
#include "svg_series.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace gradscope::diag {

// One band of a stepped colour scale: values in [from, to) get `colour`.
struct ColourBand {
    double from = 0.0, to = 0.0;
    std::string colour = {};
    std::string label = {};  // the colour bar's text for the band
};

struct SvgHeatMap {
    std::vector<double> x_edges = {};  // nx + 1 increasing edges
    std::vector<double> y_edges = {};  // ny + 1 increasing edges (drawn bottom to top)
    std::vector<double> values = {};   // ny x nx, row j (y) after row j - 1; NaN: no value
    double low = 0.0, high = 1.0;      // the continuous scale's ends (values beyond are clamped)
    std::vector<ColourBand> bands = {};  // non-empty: a stepped scale instead of viridis
    std::string title = {}, x_label = {}, y_label = {}, value_label = {};
    std::vector<std::string> x_labels = {}, y_labels = {};  // category names, one per cell
    NumberFormat cell_format = {Notation::fixed, 2};
    // Per cell (ny x nx, like values), replacing the formatted value; empty: the value.
    std::vector<std::string> cell_texts = {}, cell_titles = {};
    std::vector<SvgSeries> overlays = {};  // curves in (x, y) data coordinates
    double width = 900, height = 560;
};

namespace detail {

// Viridis at five stops, interpolated linearly in RGB: dark for low values, yellow for high.
inline std::string heat_colour(double t) {
    static constexpr std::array<std::array<double, 3>, 5> stops{
        {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}}};
    t = std::clamp(t, 0.0, 1.0) * (stops.size() - 1);
    const auto i = std::min<std::size_t>(static_cast<std::size_t>(t), stops.size() - 2);
    const double f = t - static_cast<double>(i);
    char text[8];
    std::snprintf(text, sizeof text, "#%02x%02x%02x",
                  static_cast<int>(std::lround(stops[i][0] + f * (stops[i + 1][0] - stops[i][0]))),
                  static_cast<int>(std::lround(stops[i][1] + f * (stops[i + 1][1] - stops[i][1]))),
                  static_cast<int>(std::lround(stops[i][2] + f * (stops[i + 1][2] - stops[i][2]))));
    return text;
}

// Whether dark text reads better than light text on a "#rrggbb" colour (by its luminance).
inline bool is_light(const std::string& colour) {
    if (colour.size() != 7 || colour[0] != '#') return true;
    const auto channel = [&](std::size_t at) { return std::stoi(colour.substr(at, 2), nullptr, 16); };
    return 0.299 * channel(1) + 0.587 * channel(3) + 0.114 * channel(5) > 150;
}

// Where a heat map's pieces go, in pixels.
struct HeatLayout {
    double x0, x1, y0, y1;  // the plot area
    double xlo, xhi, ylo, yhi;
    [[nodiscard]] double px(double x) const { return x0 + (x - xlo) / (xhi - xlo) * (x1 - x0); }
    [[nodiscard]] double py(double y) const { return y1 - (y - ylo) / (yhi - ylo) * (y1 - y0); }
    [[nodiscard]] PlotArea area() const { return {x0, y0, x1, y1}; }
};

inline std::string cell_colour(const SvgHeatMap& map, double v) {
    if (!std::isfinite(v)) return "#dddddd";
    if (map.bands.empty()) return heat_colour((v - map.low) / (map.high - map.low));
    for (const auto& band : map.bands) {
        if (v >= band.from && v < band.to) return band.colour;
    }
    return v < map.bands.front().from ? map.bands.front().colour : map.bands.back().colour;
}

inline std::string heat_cells(const SvgHeatMap& map, const HeatLayout& at) {
    const std::size_t nx = map.x_edges.size() - 1, ny = map.y_edges.size() - 1;
    std::string out = "<g>\n";
    for (std::size_t j = 0; j < ny; ++j) {
        for (std::size_t i = 0; i < nx; ++i) {
            const std::size_t k = j * nx + i;
            const double cx0 = at.px(map.x_edges[i]), cx1 = at.px(map.x_edges[i + 1]);
            const double cy0 = at.py(map.y_edges[j + 1]), cy1 = at.py(map.y_edges[j]);
            const std::string text = map.cell_texts.empty()
                                         ? format_number(map.values[k], map.cell_format)
                                         : map.cell_texts[k];
            const std::string title =
                map.cell_titles.empty() ? map.value_label + " " + text : map.cell_titles[k];
            const std::string fill = cell_colour(map, map.values[k]);
            out += svg_rect(cx0, cy0, cx1 - cx0, cy1 - cy0,
                            "class=\"cell\" stroke=\"white\" fill=\"" + fill + "\"",
                            svg_tooltip(title)) +
                   "\n";
            if (text.empty()) continue;  // many small cells: the hover title is enough
            out += svg_text((cx0 + cx1) / 2, (cy0 + cy1) / 2 + 4, text,
                            std::string("text-anchor=\"middle\" fill=\"") +
                                (is_light(fill) ? "#222" : "#fff") +
                                "\" pointer-events=\"none\"");
        }
    }
    return out + "</g>\n";
}

inline std::string overlay_colour(const SvgSeries& curve) {
    return curve.color.empty() ? std::string("#d62728") : xml_escape(curve.color);
}

// The curves over the cells, clipped to the plot.
inline std::string heat_overlays(const SvgHeatMap& map, const HeatLayout& at) {
    std::string out =
        "<clipPath id=\"heat-plot\">" +
        svg_rect(at.x0, at.y0, at.x1 - at.x0, at.y1 - at.y0, "") +
        "</clipPath>\n<g clip-path=\"url(#heat-plot)\" fill=\"none\" stroke-width=\"2.5\">\n";
    for (const auto& curve : map.overlays) {
        std::string points;
        for (const auto& [x, y] : curve.points) {
            if (!std::isfinite(x) || !std::isfinite(y)) continue;
            points += svg_number(at.px(x)) + "," + svg_number(at.py(std::min(y, at.yhi * 10))) + " ";
        }
        out += "<polyline stroke=\"" + overlay_colour(curve) + "\" stroke-dasharray=\"" +
               (curve.dash.empty() ? std::string("none") : xml_escape(curve.dash)) +
               "\" points=\"" + points + "\">" + svg_tooltip(curve.name) + "</polyline>\n";
    }
    return out + "</g>\n";
}

// Ticks at the cell centres (their values, or the category names), the frame and the labels.
inline std::string heat_axes(const SvgHeatMap& map, const HeatLayout& at) {
    const auto centre = [](const std::vector<double>& edges, std::size_t i) {
        return (edges[i] + edges[i + 1]) / 2;
    };
    const auto tick = [&](const std::vector<std::string>& labels,
                          const std::vector<double>& edges, std::size_t i) {
        return labels.empty() ? format_number(centre(edges, i), {Notation::general, 3}) : labels[i];
    };
    std::string out = "<g fill=\"#333\">\n";
    for (std::size_t i = 0; i + 1 < map.x_edges.size(); ++i) {
        out += svg_text(at.px(centre(map.x_edges, i)), at.y1 + 18,
                        tick(map.x_labels, map.x_edges, i), "text-anchor=\"middle\"");
    }
    for (std::size_t j = 0; j + 1 < map.y_edges.size(); ++j) {
        out += svg_text(at.x0 - 8, at.py(centre(map.y_edges, j)) + 4,
                        tick(map.y_labels, map.y_edges, j), "text-anchor=\"end\"");
    }
    return out + "</g>\n" + svg_frame(at.area(), map.x_label, map.y_label, 16);
}

// The colour bar right of the plot (low at the bottom), then the overlays' legend under it.
inline std::string heat_colour_bar(const SvgHeatMap& map, const HeatLayout& at) {
    const double bx = at.x1 + 24, bw = 18, bar_h = (at.y1 - at.y0) * 0.6;
    const auto swatch = [&](double y, double h, const std::string& fill) {
        return svg_rect(bx, y, bw, h, "fill=\"" + fill + "\"") + "\n";
    };
    const auto label = [&](double y, const std::string& text) {
        return svg_text(bx + bw + 4, y, text);
    };
    std::string out;
    if (map.bands.empty()) {
        for (int k = 0; k < 50; ++k) {
            out += swatch(at.y1 - (k + 1) / 50.0 * bar_h, bar_h / 50 + 0.5,
                          heat_colour((k + 0.5) / 50.0));
        }
        out += label(at.y1, format_number(map.low, map.cell_format));
        out += label(at.y1 - bar_h + 8, format_number(map.high, map.cell_format));
    } else {
        const double h = bar_h / static_cast<double>(map.bands.size());
        for (std::size_t k = 0; k < map.bands.size(); ++k) {
            const double y = at.y1 - (static_cast<double>(k) + 1) * h;
            out += swatch(y, h, map.bands[k].colour) + label(y + h / 2 + 4, map.bands[k].label);
        }
    }
    out += svg_text(bx, at.y1 - bar_h - 10, map.value_label);
    double ly = at.y0 + 12;
    for (const auto& curve : map.overlays) {
        out += svg_line(bx, ly - 4, bx + 20, ly - 4,
                        "stroke=\"" + overlay_colour(curve) + "\" stroke-width=\"2.5\"") +
               "\n" + svg_text(bx + 24, ly, curve.name);
        ly += 18;
    }
    return out;
}

inline void check_heatmap(const SvgHeatMap& map) {
    const std::size_t nx = map.x_edges.size() < 2 ? 0 : map.x_edges.size() - 1;
    const std::size_t ny = map.y_edges.size() < 2 ? 0 : map.y_edges.size() - 1;
    const auto count = [](std::size_t n) { return std::to_string(n); };
    if (nx == 0 || ny == 0 || map.values.size() != nx * ny) {
        throw value_error("svg_heatmap: " + count(map.values.size()) + " values for " + count(nx) +
                          " x " + count(ny) + " cells");
    }
    const auto per_cell = [&](const std::vector<std::string>& v, const char* what) {
        if (!v.empty() && v.size() != nx * ny) {
            throw value_error(std::string("svg_heatmap: ") + count(v.size()) + " " + what +
                              " for " + count(nx * ny) + " cells");
        }
    };
    per_cell(map.cell_texts, "cell_texts");
    per_cell(map.cell_titles, "cell_titles");
    if (!map.x_labels.empty() && map.x_labels.size() != nx) {
        throw value_error("svg_heatmap: " + count(map.x_labels.size()) + " x_labels for " +
                          count(nx) + " columns");
    }
    if (!map.y_labels.empty() && map.y_labels.size() != ny) {
        throw value_error("svg_heatmap: " + count(map.y_labels.size()) + " y_labels for " +
                          count(ny) + " rows");
    }
}

}  // namespace detail

inline std::string svg_heatmap(const SvgHeatMap& map) {
    detail::check_heatmap(map);
    // Room on the left for the longest row label (about 7 px a character at font size 12).
    std::size_t longest = 4;
    for (const auto& label : map.y_labels) longest = std::max(longest, label.size());
    const double left = 36 + 7.0 * static_cast<double>(longest);
    // Room on the right for the colour bar and its longest label.
    std::size_t longest_band = 8;
    for (const auto& band : map.bands) longest_band = std::max(longest_band, band.label.size());
    for (const auto& curve : map.overlays) longest_band = std::max(longest_band, curve.name.size() + 4);
    const double bar = 60 + 7.0 * static_cast<double>(longest_band);
    const double top = map.title.empty() ? 24 : 52, bottom = 62;
    const double plot_w = std::max(120.0, map.width - left - bar);
    const double plot_h = std::max(120.0, map.height - top - bottom);
    const detail::HeatLayout at{left, left + plot_w, top, top + plot_h,
                                map.x_edges.front(), map.x_edges.back(),
                                map.y_edges.front(), map.y_edges.back()};

    std::string out = detail::svg_begin(map.width, map.height) +
                      detail::svg_plot_title(at.area(), map.title);
    out += detail::heat_cells(map, at) + detail::heat_overlays(map, at) +
           detail::heat_axes(map, at) + detail::heat_colour_bar(map, at);
    return out + "</svg>\n";
}

}  // namespace gradscope::diag
