// Parallel coordinates for three or more objectives: one vertical axis per
// objective (log where it spans decades), one line per candidate at the front
// fidelity, the front drawn over the rest.
#include <cmath>

#include "report/sections.hpp"

namespace livs::report {

std::string parallel_section(const ReportData& data) {
  if (data.objectives.size() < 3) return {};
  std::string out =
      "<section id=\"parallel\"><h2>All objectives at once</h2><p class=\"caption\">Parallel coordinates: "
      "one "
      "line per candidate at fidelity " +
      escape(short_number(data.front_fidelity)) +
      " through its mean on each objective; front members in blue. Better values are at the bottom of "
      "each axis.</p>";
  Frame frame;
  frame.width = 200 + 220.0 * static_cast<double>(data.objectives.size() - 1);
  frame.height = 360;
  frame.left = 100, frame.right = 100, frame.top = 40, frame.bottom = 24;
  const double step = (frame.x1() - frame.x0()) / static_cast<double>(data.objectives.size() - 1);
  std::vector<Scale> scales;
  for (const auto& o : data.objectives) {
    std::vector<double> values;
    for (const auto& p : data.points)
      if (p.fidelity == data.front_fidelity) values.push_back(mean_of(p, o.name));
    // Minimised: low values (better) at the bottom; maximised: flipped.
    const bool up = o.direction == search::Direction::minimise;
    scales.push_back(fit_scale(values, up ? frame.y0() : frame.y1(), up ? frame.y1() : frame.y0(), true));
  }
  std::string svg = svg_open(frame, "plot parallel", "parallel coordinates of the objectives");
  for (std::size_t k = 0; k < data.objectives.size(); ++k) {
    const double ax = frame.x0() + step * static_cast<double>(k);
    const auto& s = scales[k];
    svg += "<line class=\"axis-line\" x1=\"" + coordinate(ax) + "\" x2=\"" + coordinate(ax) + "\" y1=\"" +
           coordinate(frame.y1()) + "\" y2=\"" + coordinate(frame.y0()) + "\"/>";
    for (double t : s.ticks())
      svg += "<text class=\"tick\" x=\"" + coordinate(ax - 5) + "\" y=\"" + coordinate(s(t) + 4) +
             "\" text-anchor=\"end\">" + escape(short_number(t)) + "</text>";
    std::string title = titled(data.objectives[k].name, unit_of(data, data.objectives[k].name));
    if (s.log) title += ", log";
    svg += "<text class=\"axis-title\" x=\"" + coordinate(ax) + "\" y=\"" + coordinate(frame.y1() - 16) +
           "\" text-anchor=\"middle\">" + escape(title) + "</text>";
  }
  for (int pass = 0; pass < 2; ++pass)
    for (std::size_t i = 0; i < data.points.size(); ++i) {
      const auto& p = data.points[i];
      if (p.fidelity != data.front_fidelity || p.on_front != (pass == 1)) continue;
      std::vector<std::pair<double, double>> line;
      for (std::size_t k = 0; k < data.objectives.size(); ++k) {
        const double v = mean_of(p, data.objectives[k].name);
        if (!std::isfinite(v)) continue;
        line.emplace_back(frame.x0() + step * static_cast<double>(k), scales[k](v));
      }
      std::string cls = p.on_front ? "pc-line front" : "pc-line";
      if (p.violation > 0) cls += " infeasible";
      svg += polyline(line, "class=\"" + cls + "\" data-i=\"" + std::to_string(i) + "\"");
    }
  return out + "<figure class=\"wide\">" + svg + "</svg></figure></section>";
}

}  // namespace livs::report
