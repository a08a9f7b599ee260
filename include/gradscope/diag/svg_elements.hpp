// The SVG vocabulary shared by gradscope's plots (svg.hpp) and heat maps (svg_heatmap.hpp):
// escaping, numbers as coordinates, the document element, text, lines, rectangles, the plot
// area's frame and its axis labels. Each function returns markup; the plots are strings of it.
#pragma once

#include "format.hpp"

#include <string>
#include <string_view>

namespace gradscope::diag {

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

// `name="value"` with a leading space, the value a coordinate.
inline std::string svg_attr(const char* name, double value) {
    return std::string(" ") + name + "=\"" + svg_number(value) + "\"";
}

// The opening <svg> element, sized in pixels and scalable (viewBox), on a white background.
inline std::string svg_begin(double width, double height) {
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 " + svg_number(width) + " " +
           svg_number(height) + "\"" + svg_attr("width", width) + svg_attr("height", height) +
           " font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
           "fill=\"white\"/>\n";
}

// <text> at (x, y) with extra attributes (e.g. text-anchor="middle"); the text is escaped.
inline std::string svg_text(double x, double y, std::string_view text, std::string_view attrs = {}) {
    std::string out = "<text" + svg_attr("x", x) + svg_attr("y", y);
    if (!attrs.empty()) out += " " + std::string(attrs);
    return out + ">" + xml_escape(text) + "</text>\n";
}

inline std::string svg_line(double x1, double y1, double x2, double y2, std::string_view attrs = {}) {
    std::string out = "<line" + svg_attr("x1", x1) + svg_attr("y1", y1) + svg_attr("x2", x2) +
                      svg_attr("y2", y2);
    if (!attrs.empty()) out += " " + std::string(attrs);
    return out + "/>";
}

// <rect>, self-closing, or holding `inner` (e.g. a <title>) when that is not empty.
inline std::string svg_rect(double x, double y, double width, double height,
                            std::string_view attrs, std::string_view inner = {}) {
    std::string out = "<rect" + svg_attr("x", x) + svg_attr("y", y) + svg_attr("width", width) +
                      svg_attr("height", height) + " " + std::string(attrs);
    return inner.empty() ? out + "/>" : out + ">" + std::string(inner) + "</rect>";
}

// A hover tooltip: the browser shows it over its parent element.
inline std::string svg_tooltip(std::string_view text) {
    return "<title>" + xml_escape(text) + "</title>";
}

// The rectangle data are drawn in, in pixels (y grows downwards, as in SVG).
struct PlotArea {
    double x0 = 0, y0 = 0, x1 = 1, y1 = 1;
    [[nodiscard]] double width() const { return x1 - x0; }
    [[nodiscard]] double height() const { return y1 - y0; }
    [[nodiscard]] double centre_x() const { return (x0 + x1) / 2; }
    [[nodiscard]] double centre_y() const { return (y0 + y1) / 2; }
};

// The title centred above the area (nothing when empty).
inline std::string svg_plot_title(const PlotArea& area, std::string_view title) {
    return title.empty() ? std::string()
                         : svg_text(area.centre_x(), 30, title,
                                    "text-anchor=\"middle\" font-size=\"16\"");
}

// The area's outline, the x label under it and the y label turned along its left side at
// `y_label_x`.
inline std::string svg_frame(const PlotArea& area, std::string_view x_label,
                             std::string_view y_label, double y_label_x) {
    return svg_rect(area.x0, area.y0, area.width(), area.height(), "fill=\"none\" stroke=\"#333\"") +
           "\n" +
           svg_text(area.centre_x(), area.y1 + 44, x_label,
                    "text-anchor=\"middle\" font-size=\"13\"") +
           "<text transform=\"translate(" + svg_number(y_label_x) + " " +
           svg_number(area.centre_y()) +
           ") rotate(-90)\" text-anchor=\"middle\" font-size=\"13\">" + xml_escape(y_label) +
           "</text>\n";
}

}  // namespace detail
}  // namespace gradscope::diag
