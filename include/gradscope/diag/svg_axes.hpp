// Axes for gradscope's plots: a linear axis with ticks at 1, 2 or 5 times a power of ten, a
// log10 axis with ticks at whole decades, and the mapping of data values to pixels that
// both give, with the grid lines and tick labels drawn from them.
#pragma once

#include "format.hpp"
#include "svg_elements.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace gradscope::diag::detail {

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
    bool log = false;

    // A data value in plotted units.
    [[nodiscard]] double plotted(double value) const { return log ? std::log10(value) : value; }
    // Whether a data value can be drawn on this axis.
    [[nodiscard]] bool admits(double value) const {
        return std::isfinite(value) && (!log || value > 0.0);
    }
    // A value in plotted units as a fraction of the axis, 0 at lo and 1 at hi.
    [[nodiscard]] double fraction(double plotted_value) const {
        return (plotted_value - lo) / (hi - lo);
    }
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
    SvgAxis axis{static_cast<double>(a), static_cast<double>(b), {}, true};
    for (int k = a; k <= b; k += every)
        axis.ticks.emplace_back(static_cast<double>(k), "1e" + std::to_string(k));
    return axis;
}

// Two axes over a plot area: where a data point lands in pixels.
struct PlotScale {
    PlotArea area;
    SvgAxis x, y;

    [[nodiscard]] bool admits(double vx, double vy) const { return x.admits(vx) && y.admits(vy); }
    [[nodiscard]] double px(double value) const { return px_plotted(x.plotted(value)); }
    [[nodiscard]] double py(double value) const { return py_plotted(y.plotted(value)); }
    [[nodiscard]] double px_plotted(double v) const { return area.x0 + x.fraction(v) * area.width(); }
    [[nodiscard]] double py_plotted(double v) const { return area.y1 - y.fraction(v) * area.height(); }
};

// Light grid lines at every tick, then the tick labels left of and under the area.
inline std::string svg_grid_and_ticks(const PlotScale& s) {
    const PlotArea& a = s.area;
    std::string out = "<g stroke=\"#e4e4e4\" stroke-width=\"1\">\n";
    for (const auto& tick : s.y.ticks) {
        out += svg_line(a.x0, s.py_plotted(tick.first), a.x1, s.py_plotted(tick.first)) + "\n";
    }
    for (const auto& tick : s.x.ticks) {
        out += svg_line(s.px_plotted(tick.first), a.y0, s.px_plotted(tick.first), a.y1) + "\n";
    }
    out += "</g>\n<g fill=\"#333\">\n";
    for (const auto& tick : s.y.ticks) {
        out += svg_text(a.x0 - 8, s.py_plotted(tick.first) + 4, tick.second, "text-anchor=\"end\"");
    }
    for (const auto& tick : s.x.ticks) {
        out += svg_text(s.px_plotted(tick.first), a.y1 + 18, tick.second,
                        "text-anchor=\"middle\"");
    }
    return out + "</g>\n";
}

}  // namespace gradscope::diag::detail
