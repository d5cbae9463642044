#include "report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace livs::report {

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
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
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string coordinate(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", std::isfinite(value) ? value : 0.0);
  return buffer;
}

std::string short_number(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[32];
  const double magnitude = std::fabs(value);
  const char* suffix = "";
  double shown = value;
  if (magnitude >= 1e9) {
    shown = value / 1e9, suffix = "G";
  } else if (magnitude >= 1e6) {
    shown = value / 1e6, suffix = "M";
  } else if (magnitude >= 1e4) {
    shown = value / 1e3, suffix = "k";
  }
  if (*suffix == '\0' && magnitude < 1e4 && std::round(value) == value) {
    std::snprintf(buffer, sizeof buffer, "%.0f", value + 0.0);
    return buffer;
  }
  std::snprintf(buffer, sizeof buffer, "%.3g%s", shown, suffix);
  return buffer;
}

double Scale::operator()(double value) const {
  double a = lo, b = hi, v = value;
  if (log) {
    a = std::log10(lo), b = std::log10(hi);
    v = value > 0 ? std::log10(value) : a;
  }
  if (b == a) return (from_px + to_px) / 2;
  return from_px + (v - a) / (b - a) * (to_px - from_px);
}

std::vector<double> Scale::ticks() const {
  std::vector<double> out;
  if (!(hi > lo)) return {lo};
  if (log) {
    const int first = static_cast<int>(std::floor(std::log10(lo)));
    const int last = static_cast<int>(std::ceil(std::log10(hi)));
    const bool few_decades = last - first <= 3;
    for (int e = first; e <= last; ++e)
      for (double m : few_decades ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
        const double t = m * std::pow(10.0, e);
        if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) out.push_back(t);
      }
    return out;
  }
  const double raw = (hi - lo) / 5;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    out.push_back(std::fabs(t) < step * 1e-9 ? 0.0 : t);
  return out;
}

Scale fit_scale(const std::vector<double>& values, double from_px, double to_px, bool may_be_log) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  bool all_positive = true;
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    lo = std::min(lo, v), hi = std::max(hi, v);
    all_positive = all_positive && v > 0;
  }
  Scale s;
  s.from_px = from_px, s.to_px = to_px;
  if (!(lo <= hi)) return s;  // no finite value
  if (may_be_log && all_positive && hi / lo >= 100) {
    s.log = true;
    const double margin = std::pow(hi / lo, 0.05);
    s.lo = lo / margin, s.hi = hi * margin;
    return s;
  }
  double margin = (hi - lo) * 0.06;
  if (margin == 0) margin = lo == 0 ? 1 : std::fabs(lo) * 0.1;
  s.lo = lo - margin, s.hi = hi + margin;
  return s;
}

std::string svg_open(const Frame& frame, std::string_view css_class, std::string_view label) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"" + escape(css_class) + "\" viewBox=\"0 0 " +
         coordinate(frame.width) + " " + coordinate(frame.height) + "\" role=\"img\" aria-label=\"" +
         escape(label) + "\">";
}

std::string axes(const Frame& frame, const Scale& x, const Scale& y, const std::string& x_title,
                 const std::string& y_title) {
  std::string out = "<g class=\"axes\">";
  out += "<rect class=\"plot-area\" x=\"" + coordinate(frame.x0()) + "\" y=\"" + coordinate(frame.y1()) +
         "\" width=\"" + coordinate(frame.x1() - frame.x0()) + "\" height=\"" +
         coordinate(frame.y0() - frame.y1()) + "\"/>";
  for (double t : x.labelled ? x.ticks() : std::vector<double>{}) {
    const std::string px = coordinate(x(t));
    out += "<line class=\"grid\" x1=\"" + px + "\" x2=\"" + px + "\" y1=\"" + coordinate(frame.y1()) +
           "\" y2=\"" + coordinate(frame.y0()) + "\"/>";
    out += "<text class=\"tick\" x=\"" + px + "\" y=\"" + coordinate(frame.y0() + 15) +
           "\" text-anchor=\"middle\">" + escape(short_number(t)) + "</text>";
  }
  for (double t : y.labelled ? y.ticks() : std::vector<double>{}) {
    const std::string py = coordinate(y(t));
    out += "<line class=\"grid\" y1=\"" + py + "\" y2=\"" + py + "\" x1=\"" + coordinate(frame.x0()) +
           "\" x2=\"" + coordinate(frame.x1()) + "\"/>";
    out += "<text class=\"tick\" x=\"" + coordinate(frame.x0() - 6) + "\" y=\"" + coordinate(y(t) + 4) +
           "\" text-anchor=\"end\">" + escape(short_number(t)) + "</text>";
  }
  std::string xt = x_title, yt = y_title;
  if (x.log) xt += ", log scale";
  if (y.log) yt += ", log scale";
  out += "<text class=\"axis-title\" x=\"" + coordinate((frame.x0() + frame.x1()) / 2) + "\" y=\"" +
         coordinate(frame.height - 8) + "\" text-anchor=\"middle\">" + escape(xt) + "</text>";
  const std::string cy = coordinate((frame.y0() + frame.y1()) / 2);
  out += "<text class=\"axis-title\" x=\"14\" y=\"" + cy +
         "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " + cy + ")\">" + escape(yt) + "</text>";
  return out + "</g>";
}

std::string marker(Marker shape, double x, double y, double r, std::string_view attributes) {
  std::string attrs;
  if (!attributes.empty()) {
    attrs += ' ';
    attrs += attributes;
  }
  auto path = [&](const std::vector<std::pair<double, double>>& corners) {
    std::string d;
    for (std::size_t i = 0; i < corners.size(); ++i) {
      d += i ? 'L' : 'M';
      d += coordinate(x + corners[i].first);
      d += ' ';
      d += coordinate(y + corners[i].second);
    }
    std::string out = "<path d=\"";
    out += d;
    out += "Z\"";
    out += attrs;
    return out + "/>";
  };
  switch (shape) {
    case Marker::triangle:
      return path({{0, -1.25 * r}, {1.1 * r, 0.75 * r}, {-1.1 * r, 0.75 * r}});
    case Marker::square:
      return path({{-0.9 * r, -0.9 * r}, {0.9 * r, -0.9 * r}, {0.9 * r, 0.9 * r}, {-0.9 * r, 0.9 * r}});
    case Marker::diamond:
      return path({{0, -1.25 * r}, {1.25 * r, 0}, {0, 1.25 * r}, {-1.25 * r, 0}});
    case Marker::circle:
      break;
  }
  return "<circle cx=\"" + coordinate(x) + "\" cy=\"" + coordinate(y) + "\" r=\"" + coordinate(r) + "\"" +
         attrs + "/>";
}

std::string polyline(const std::vector<std::pair<double, double>>& points, std::string_view attributes) {
  std::string list;
  for (const auto& [x, y] : points) {
    if (!list.empty()) list += ' ';
    list += coordinate(x);
    list += ',';
    list += coordinate(y);
  }
  std::string out = "<polyline points=\"";
  out += list;
  out += '"';
  if (!attributes.empty()) {
    out += ' ';
    out += attributes;
  }
  return out + "/>";
}

std::string titled(const std::string& metric, const std::string& unit) {
  if (unit.empty()) return metric;
  return metric + " (" + unit + ")";
}

}  // namespace livs::report
