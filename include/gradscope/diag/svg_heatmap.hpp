// A heat map as SVG: cells over a continuous x and y (each cell spans its edges), coloured on a
// sequential scale with a colour bar, each cell's value written in it and in its hover title,
// and optional curves drawn over the cells in the same coordinates.
//
//     diag::SvgHeatMap map{.x_edges = {...}, .y_edges = {...}, .values = {...},  // rows = y
//                          .low = 0.1, .high = 0.9, .title = "...", .x_label = "sigma_w^2"};
//     std::string svg = diag::svg_heatmap(map);
#pragma once

#include "format.hpp"
#include "svg.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace gradscope::diag {

struct SvgHeatMap {
    std::vector<double> x_edges = {};  // nx + 1 increasing edges
    std::vector<double> y_edges = {};  // ny + 1 increasing edges (drawn bottom to top)
    std::vector<double> values = {};   // ny x nx, row j (y) after row j - 1; NaN: no value
    double low = 0.0, high = 1.0;      // the colour scale's ends (values beyond are clamped)
    std::string title = {}, x_label = {}, y_label = {}, value_label = {};
    NumberFormat cell_format = {Notation::fixed, 2};
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

}  // namespace detail

inline std::string svg_heatmap(const SvgHeatMap& map) {
    using detail::svg_number;
    const std::size_t nx = map.x_edges.size() < 2 ? 0 : map.x_edges.size() - 1;
    const std::size_t ny = map.y_edges.size() < 2 ? 0 : map.y_edges.size() - 1;
    if (nx == 0 || ny == 0 || map.values.size() != nx * ny) {
        throw value_error("svg_heatmap: " + std::to_string(map.values.size()) + " values for " +
                          std::to_string(nx) + " x " + std::to_string(ny) + " cells");
    }
    const double xlo = map.x_edges.front(), xhi = map.x_edges.back();
    const double ylo = map.y_edges.front(), yhi = map.y_edges.back();
    const double left = 70, top = map.title.empty() ? 24 : 52, bottom = 62, bar = 90;
    const double plot_w = std::max(120.0, map.width - left - bar - 24);
    const double plot_h = std::max(120.0, map.height - top - bottom);
    const double x0 = left, x1 = left + plot_w, y0 = top, y1 = top + plot_h;
    const auto px = [&](double x) { return x0 + (x - xlo) / (xhi - xlo) * plot_w; };
    const auto py = [&](double y) { return y1 - (y - ylo) / (yhi - ylo) * plot_h; };
    const auto scaled = [&](double v) { return (v - map.low) / (map.high - map.low); };

    std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " +
                      svg_number(map.width) + " " + svg_number(map.height) + "\" width=\"" +
                      svg_number(map.width) + "\" height=\"" + svg_number(map.height) +
                      "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    if (!map.title.empty()) {
        out += "<text x=\"" + svg_number((x0 + x1) / 2) +
               "\" y=\"30\" text-anchor=\"middle\" font-size=\"16\">" + xml_escape(map.title) +
               "</text>\n";
    }
    // Cells, each with its value written in it (dark text on light cells, light on dark).
    out += "<g>\n";
    for (std::size_t j = 0; j < ny; ++j) {
        for (std::size_t i = 0; i < nx; ++i) {
            const double v = map.values[j * nx + i];
            const double cx0 = px(map.x_edges[i]), cx1 = px(map.x_edges[i + 1]);
            const double cy0 = py(map.y_edges[j + 1]), cy1 = py(map.y_edges[j]);
            const std::string text = format_number(v, map.cell_format);
            out += "<rect x=\"" + svg_number(cx0) + "\" y=\"" + svg_number(cy0) + "\" width=\"" +
                   svg_number(cx1 - cx0) + "\" height=\"" + svg_number(cy1 - cy0) + "\" fill=\"" +
                   (std::isfinite(v) ? detail::heat_colour(scaled(v)) : std::string("#dddddd")) +
                   "\" stroke=\"white\"><title>" + xml_escape(map.value_label) + " " + text +
                   "</title></rect>\n";
            out += "<text x=\"" + svg_number((cx0 + cx1) / 2) + "\" y=\"" +
                   svg_number((cy0 + cy1) / 2 + 4) + "\" text-anchor=\"middle\" fill=\"" +
                   (std::isfinite(v) && scaled(v) > 0.6 ? "#222" : "#fff") + "\">" + text +
                   "</text>\n";
        }
    }
    out += "</g>\n";
    // Overlays, clipped to the plot.
    out +=
        "<clipPath id=\"heat-plot\"><rect x=\"" + svg_number(x0) + "\" y=\"" + svg_number(y0) +
        "\" width=\"" + svg_number(plot_w) + "\" height=\"" + svg_number(plot_h) +
        "\"/></clipPath>\n<g clip-path=\"url(#heat-plot)\" fill=\"none\" stroke-width=\"2.5\">\n";
    for (const auto& curve : map.overlays) {
        std::string points;
        for (const auto& [x, y] : curve.points) {
            if (!std::isfinite(x) || !std::isfinite(y)) continue;
            points += svg_number(px(x)) + "," + svg_number(py(std::min(y, yhi * 10))) + " ";
        }
        out += "<polyline stroke=\"" +
               (curve.color.empty() ? std::string("#d62728") : curve.color) +
               "\" stroke-dasharray=\"" + (curve.dash.empty() ? std::string("none") : curve.dash) +
               "\" points=\"" + points + "\"><title>" + xml_escape(curve.name) +
               "</title></polyline>\n";
    }
    out += "</g>\n";
    // Axes: ticks at the cell centres, labelled with the centres' values.
    out += "<rect x=\"" + svg_number(x0) + "\" y=\"" + svg_number(y0) + "\" width=\"" +
           svg_number(plot_w) + "\" height=\"" + svg_number(plot_h) +
           "\" fill=\"none\" stroke=\"#333\"/>\n<g fill=\"#333\">\n";
    for (std::size_t i = 0; i < nx; ++i) {
        const double c = (map.x_edges[i] + map.x_edges[i + 1]) / 2;
        out += "<text x=\"" + svg_number(px(c)) + "\" y=\"" + svg_number(y1 + 18) +
               "\" text-anchor=\"middle\">" + format_number(c, {Notation::general, 3}) +
               "</text>\n";
    }
    for (std::size_t j = 0; j < ny; ++j) {
        const double c = (map.y_edges[j] + map.y_edges[j + 1]) / 2;
        out += "<text x=\"" + svg_number(x0 - 8) + "\" y=\"" + svg_number(py(c) + 4) +
               "\" text-anchor=\"end\">" + format_number(c, {Notation::general, 3}) + "</text>\n";
    }
    out += "</g>\n<text x=\"" + svg_number((x0 + x1) / 2) + "\" y=\"" + svg_number(y1 + 44) +
           "\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(map.x_label) + "</text>\n";
    out += "<text transform=\"translate(20 " + svg_number((y0 + y1) / 2) +
           ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(map.y_label) +
           "</text>\n";
    // Colour bar, low at the bottom, and the overlays' legend under it.
    const double bx = x1 + 24, bw = 18;
    for (int k = 0; k < 50; ++k) {
        const double t0 = k / 50.0, t1 = (k + 1) / 50.0;
        out += "<rect x=\"" + svg_number(bx) + "\" y=\"" + svg_number(y1 - t1 * plot_h * 0.6) +
               "\" width=\"" + svg_number(bw) + "\" height=\"" +
               svg_number(plot_h * 0.6 / 50 + 0.5) + "\" fill=\"" +
               detail::heat_colour((t0 + t1) / 2) + "\"/>\n";
    }
    out += "<text x=\"" + svg_number(bx + bw + 4) + "\" y=\"" + svg_number(y1) + "\">" +
           format_number(map.low, map.cell_format) + "</text>\n";
    out += "<text x=\"" + svg_number(bx + bw + 4) + "\" y=\"" + svg_number(y1 - plot_h * 0.6 + 8) +
           "\">" + format_number(map.high, map.cell_format) + "</text>\n";
    out += "<text x=\"" + svg_number(bx) + "\" y=\"" + svg_number(y1 - plot_h * 0.6 - 10) + "\">" +
           xml_escape(map.value_label) + "</text>\n";
    double ly = y0 + 12;
    for (const auto& curve : map.overlays) {
        out += "<line x1=\"" + svg_number(bx) + "\" y1=\"" + svg_number(ly - 4) + "\" x2=\"" +
               svg_number(bx + 20) + "\" y2=\"" + svg_number(ly - 4) + "\" stroke=\"" +
               (curve.color.empty() ? std::string("#d62728") : curve.color) +
               "\" stroke-width=\"2.5\"/>\n<text x=\"" + svg_number(bx + 24) + "\" y=\"" +
               svg_number(ly) + "\">" + xml_escape(curve.name) + "</text>\n";
        ly += 18;
    }
    return out + "</svg>\n";
}

}  // namespace gradscope::diag
