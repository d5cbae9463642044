#pragma once
// Plotting primitives: scales (linear or log10), axes with ticks, grid and
// titles, markers and lines, written as SVG text. Every plot of the report is
// built from these; the browser only adds hover and sorting (report/page_script.cpp).
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace livs::report {

// Text for HTML and SVG: & < > " ' escaped.
std::string escape(std::string_view text);

// A coordinate as written into SVG: one decimal, no exponent.
std::string coordinate(double value);

// A tick or table value, short: 3 significant digits, k/M/G above 10^4
// ("4.19M", "526k", "3.95", "0.00123").
std::string short_number(double value);

// Maps data values to pixels along one axis.
struct Scale {
  double lo = 0.0, hi = 1.0;          // data range (positive for log)
  double from_px = 0.0, to_px = 1.0;  // pixels of lo and hi
  bool log = false;
  bool labelled = true;  // false: axes() draws no ticks for it (a category axis)
  double operator()(double value) const;
  // Round values inside [lo, hi]: 1-2-5 steps (linear) or powers of ten and
  // their 2x and 5x (log, when the range spans few decades).
  std::vector<double> ticks() const;
};

// A scale that holds every finite value (positive ones for log) with a little
// margin. Log when `may_be_log`, every value is positive and they span at
// least two decades (max/min >= 100). No finite value: the range [0, 1].
Scale fit_scale(const std::vector<double>& values, double from_px, double to_px, bool may_be_log);

// A plot's outer size and the margins around its data area.
struct Frame {
  double width = 440, height = 330;
  double left = 70, right = 18, top = 14, bottom = 50;
  double x0() const { return left; }
  double x1() const { return width - right; }
  double y0() const { return height - bottom; }  // bottom of the data area
  double y1() const { return top; }
};

// <svg ...> with a viewBox, so the plot scales with the page.
std::string svg_open(const Frame& frame, std::string_view css_class, std::string_view label);

// Grid, ticks with labels, and axis titles (", log scale" appended to a log axis's title).
std::string axes(const Frame& frame, const Scale& x, const Scale& y, const std::string& x_title,
                 const std::string& y_title);

enum class Marker { circle, triangle, square, diamond };

// One marker centred at (x, y) of radius about r; `attributes` are written into the element as is.
std::string marker(Marker shape, double x, double y, double r, std::string_view attributes);

std::string polyline(const std::vector<std::pair<double, double>>& points, std::string_view attributes);

// "perplexity (per token)", "cache_bytes (bytes)": a metric and its unit.
std::string titled(const std::string& metric, const std::string& unit);

}  // namespace livs::report
