// The Pareto front, one scatter plot per pair of objectives: every candidate
// at every fidelity (the shape says which), the run's front filled, the front
// of the pair joined by a staircase, infeasible candidates hollow, warm-start
// presets and finalists named.
#include <algorithm>
#include <cmath>
#include <set>

#include "report/sections.hpp"
#include "search/pareto.hpp"

namespace livs::report {

namespace {

std::string direction_note(const search::Objective& o) {
  return o.direction == search::Direction::maximise ? " \u2191 better" : " \u2193 better";
}

// The indices of the points at the front fidelity that no other point
// dominates in these two objectives (feasible ones first, as the search
// ranks them), sorted by x.
std::vector<std::size_t> pair_front(const ReportData& data, const search::Objective& a,
                                    const search::Objective& b) {
  std::vector<std::size_t> index;
  std::vector<std::vector<double>> minimised;
  std::vector<double> violation;
  for (std::size_t i = 0; i < data.points.size(); ++i) {
    const auto& p = data.points[i];
    if (p.fidelity != data.front_fidelity) continue;
    const double x = mean_of(p, a.name), y = mean_of(p, b.name);
    if (!std::isfinite(x) || !std::isfinite(y)) continue;
    index.push_back(i);
    minimised.push_back(search::minimised_objectives({{a.name, x}, {b.name, y}}, {a, b}));
    violation.push_back(p.violation);
  }
  std::vector<std::size_t> out;
  for (std::size_t k : search::pareto_front_indices(minimised, violation)) out.push_back(index[k]);
  std::sort(out.begin(), out.end(), [&](std::size_t i, std::size_t j) {
    return mean_of(data.points[i], a.name) < mean_of(data.points[j], a.name);
  });
  return out;
}

std::string point_label(const CandidatePoint& p) {
  if (!p.label.empty()) return p.label;
  if (p.finalist) return "finalist " + p.hash.substr(0, 6);
  return {};
}

// `all_fidelities`: every candidate at every fidelity, scaled to hold them
// all; otherwise the candidates at the front fidelity only, scaled to them
// (a cheap fidelity's perplexity is often far from the full one's and would
// squash the front into a corner).
std::string scatter(const ReportData& data, const search::Objective& a, const search::Objective& b,
                    bool all_fidelities) {
  auto shown = [&](const CandidatePoint& p) { return all_fidelities || p.fidelity == data.front_fidelity; };
  Frame frame;
  std::vector<double> xs, ys;
  for (const auto& p : data.points) {
    if (!shown(p)) continue;
    const double x = mean_of(p, a.name), y = mean_of(p, b.name);
    if (std::isfinite(x) && std::isfinite(y)) xs.push_back(x), ys.push_back(y);
  }
  const auto unit = [&](const std::string& m) { return unit_of(data, m); };
  Scale x = fit_scale(xs, frame.x0(), frame.x1(), true);
  Scale y = fit_scale(ys, frame.y0(), frame.y1(), true);
  std::string svg =
      svg_open(frame, all_fidelities ? "plot scatter-all" : "plot scatter", a.name + " against " + b.name);
  svg += axes(frame, x, y, titled(a.name, unit(a.name)) + direction_note(a),
              titled(b.name, unit(b.name)) + direction_note(b));

  // The pair's own front as a staircase through its points (the corner
  // towards the dominated side, so the line bounds what the front dominates).
  const auto front = pair_front(data, a, b);
  if (front.size() > 1) {
    std::vector<std::pair<double, double>> line;
    for (std::size_t k = 0; k < front.size(); ++k) {
      const auto& p = data.points[front[k]];
      const double px = x(mean_of(p, a.name)), py = y(mean_of(p, b.name));
      if (k > 0) {
        // The corner of the region the two points dominate: with x minimised
        // the boundary keeps the earlier point's y until the next x; with x
        // maximised it drops to the next point's y first.
        const auto [qx, qy] = line.back();
        if (a.direction == search::Direction::minimise)
          line.emplace_back(px, qy);
        else
          line.emplace_back(qx, py);
      }
      line.emplace_back(px, py);
    }
    svg += polyline(line, "class=\"front-line\"");
  }

  // Drawing order: lower fidelities, then other candidates, then the front, so
  // the front is on top.
  std::vector<std::size_t> order(data.points.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto layer = [&](const CandidatePoint& p) {
    if (p.fidelity != data.front_fidelity) return 0;
    return p.on_front ? 2 : 1;
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t i, std::size_t j) {
    return layer(data.points[i]) < layer(data.points[j]);
  });
  // A name goes on the candidate's point at the front fidelity, or at its
  // highest fidelity when it never reached that one.
  std::set<std::string> at_front_fidelity;
  for (const auto& p : data.points)
    if (p.fidelity == data.front_fidelity) at_front_fidelity.insert(p.hash);
  std::string labels;
  for (std::size_t i : order) {
    const auto& p = data.points[i];
    if (!shown(p)) continue;
    const double vx = mean_of(p, a.name), vy = mean_of(p, b.name);
    if (!std::isfinite(vx) || !std::isfinite(vy)) continue;
    std::string cls = "pt";
    if (p.fidelity != data.front_fidelity) cls += " low";
    if (p.on_front) cls += " front";
    // Constraints judge the numbers the front is ranked by; a cheap fidelity's
    // perplexity says little about the full one's.
    if (p.violation > 0 && p.fidelity == data.front_fidelity) cls += " infeasible";
    if (!p.label.empty()) cls += " preset";
    if (p.finalist) cls += " finalist";
    const double r = p.on_front ? 5.0 : 3.6;
    svg += marker(fidelity_marker(data, p.fidelity), x(vx), y(vy), r,
                  "class=\"" + cls + "\" data-i=\"" + std::to_string(i) + "\"");
    const std::string name = point_label(p);
    if (!name.empty() && (p.fidelity == data.front_fidelity || !at_front_fidelity.count(p.hash))) {
      // Near the right edge the name goes to the left of its point.
      const bool left = x(vx) > frame.x1() - 90;
      labels += "<text class=\"point-label\" x=\"" + coordinate(x(vx) + (left ? -7 : 7)) + "\" y=\"" +
                coordinate(y(vy) - 6) + "\"" + (left ? " text-anchor=\"end\"" : "") + ">" + escape(name) +
                "</text>";
    }
  }
  return svg + labels + "</svg>";
}

}  // namespace

Marker fidelity_marker(const ReportData& data, double fidelity) {
  if (fidelity == data.front_fidelity) return Marker::circle;
  static constexpr Marker kLower[] = {Marker::triangle, Marker::square, Marker::diamond};
  std::vector<double> lower;
  for (const auto& p : data.points)
    if (p.fidelity < data.front_fidelity && std::find(lower.begin(), lower.end(), p.fidelity) == lower.end())
      lower.push_back(p.fidelity);
  std::sort(lower.rbegin(), lower.rend());  // the nearest to the top first
  const auto at = std::find(lower.begin(), lower.end(), fidelity) - lower.begin();
  return kLower[static_cast<std::size_t>(at) % 3];
}

std::string pareto_section(const ReportData& data) {
  std::string out = "<section id=\"pareto\"><h2>Pareto front</h2>";
  if (data.points.empty())
    return out + "<p class=\"empty\">No candidate has finished successfully yet.</p></section>";
  if (data.objectives.size() < 2) {
    out += "<p>The run has one objective";
    if (!data.objectives.empty()) out += " (" + escape(data.objectives[0].name) + ")";
    out += "; its front is its best candidate, listed in the table below.</p>";
  }
  out +=
      "<p class=\"caption\">Every candidate that finished, by its mean over seeds. Filled blue: the run's "
      "front at fidelity " +
      escape(short_number(data.front_fidelity)) +
      " over all objectives; the line joins the front of the two objectives shown. Hover a point for its "
      "summary and metrics; click a front member to open its row. A search over several fidelities shows the "
      "front's "
      "fidelity first; the switch shows every fidelity, by marker.</p>";
  // The legend: one entry per kind of point and per fidelity.
  out += "<div class=\"legend\">";
  auto entry = [&](Marker m, const std::string& cls, const std::string& text) {
    out += "<span class=\"legend-entry\"><svg viewBox=\"0 0 16 16\" width=\"16\" height=\"16\">" +
           marker(m, 8, 8, 5, "class=\"" + cls + "\"") + "</svg>" + escape(text) + "</span>";
  };
  entry(Marker::circle, "pt front", "front member");
  entry(Marker::circle, "pt", "other candidate");
  entry(Marker::circle, "pt infeasible", "infeasible (breaks a constraint)");
  std::vector<double> fidelities;
  for (const auto& p : data.points)
    if (std::find(fidelities.begin(), fidelities.end(), p.fidelity) == fidelities.end())
      fidelities.push_back(p.fidelity);
  std::sort(fidelities.rbegin(), fidelities.rend());
  if (fidelities.size() > 1)
    for (double f : fidelities)
      entry(fidelity_marker(data, f), f == data.front_fidelity ? "pt" : "pt low",
            "fidelity " + short_number(f) + (f == data.front_fidelity ? " (front)" : ""));
  out +=
      "<span class=\"legend-entry\"><svg viewBox=\"0 0 16 16\" width=\"16\" height=\"16\"><line "
      "class=\"front-line\" "
      "x1=\"1\" y1=\"8\" x2=\"15\" y2=\"8\"/></svg>front of the pair</span>";
  out +=
      "<span class=\"legend-entry\"><b class=\"label-sample\">name</b>warm-start preset or finalist</span>";
  out += "</div>";
  const bool several = fidelities.size() > 1;
  if (several)
    out +=
        "<div class=\"view-switch\" role=\"group\" aria-label=\"which candidates\"><button type=\"button\" "
        "data-view=\"top\" aria-pressed=\"true\">fidelity " +
        escape(short_number(data.front_fidelity)) +
        " only</button><button type=\"button\" data-view=\"all\" aria-pressed=\"false\">every "
        "fidelity</button></div>";
  for (bool all : several ? std::vector<bool>{false, true} : std::vector<bool>{false}) {
    out += std::string("<div class=\"plots") + (several ? (all ? " view-all" : " view-top") : "") + "\">";
    for (std::size_t i = 0; i < data.objectives.size(); ++i)
      for (std::size_t j = i + 1; j < data.objectives.size(); ++j)
        out += "<figure>" + scatter(data, data.objectives[i], data.objectives[j], all) + "<figcaption>" +
               escape(data.objectives[i].name) + " and " + escape(data.objectives[j].name) +
               "</figcaption></figure>";
    out += "</div>";
  }
  return out + "</section>";
}

}  // namespace livs::report
