// How the search progressed: the hypervolume of each recorded generation's
// front, against the generation and against the evaluation time spent so far
// (summed over evaluations: device time when each evaluation has a device of
// its own).
#include <algorithm>

#include "report/sections.hpp"

namespace livs::report {

namespace {

std::string line_plot(const std::vector<std::pair<double, double>>& points, const std::string& x_title,
                      const std::string& label) {
  Frame frame;
  std::vector<double> xs, ys;
  for (const auto& [x, y] : points) xs.push_back(x), ys.push_back(y);
  ys.push_back(0.0);  // hypervolume grows from zero; show how far
  Scale x = fit_scale(xs, frame.x0(), frame.x1(), false);
  Scale y = fit_scale(ys, frame.y0(), frame.y1(), false);
  std::string svg = svg_open(frame, "plot line", label) + axes(frame, x, y, x_title, "hypervolume");
  std::vector<std::pair<double, double>> pixels;
  for (const auto& [vx, vy] : points) pixels.emplace_back(x(vx), y(vy));
  svg += polyline(pixels, "class=\"series\"");
  for (std::size_t k = 0; k < points.size(); ++k)
    svg += "<g><title>" + escape(short_number(points[k].first)) + ": hypervolume " +
           escape(short_number(points[k].second)) + "</title>" +
           marker(Marker::circle, pixels[k].first, pixels[k].second, 3, "class=\"series-point\"") + "</g>";
  return "<figure>" + svg + "</svg><figcaption>" + escape(label) + "</figcaption></figure>";
}

}  // namespace

std::string progress_section(const ReportData& data) {
  std::string out = "<section id=\"progress\"><h2>Hypervolume</h2>";
  if (data.hypervolume.empty())
    return out + "<p class=\"empty\">No generation has been recorded yet.</p></section>";
  out +=
      "<p class=\"caption\">The hypervolume of each recorded generation's front (normalised objectives, "
      "as the search computes it; higher is better).</p><div class=\"plots\">";
  std::vector<std::pair<double, double>> by_generation, by_time;
  double most = 0;
  for (const auto& h : data.hypervolume) most = std::max(most, h.evaluation_seconds);
  double divisor = 1;
  std::string unit = "s";
  if (most >= 2 * 3600)
    divisor = 3600, unit = "h";
  else if (most >= 120)
    divisor = 60, unit = "min";
  for (const auto& h : data.hypervolume) {
    by_generation.emplace_back(h.generation, h.hypervolume);
    by_time.emplace_back(h.evaluation_seconds / divisor, h.hypervolume);
  }
  out += line_plot(by_generation, "generation", "hypervolume against generation");
  out += line_plot(by_time, "evaluation time so far (" + unit + ", summed over evaluations)",
                   "hypervolume against GPU (device) time");
  return out + "</div></section>";
}

}  // namespace livs::report
