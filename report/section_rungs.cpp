// A search over rungs (several fidelities): how many genomes each rung saw
// and promoted, and whether a cheap fidelity ranks the genomes as the next
// one does (Kendall's tau-b, the numbers `livsearch status` prints).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/sections.hpp"

namespace livs::report {

namespace {

// How strongly a tau cell is tinted: 0 for tau <= 0, 0.45 for tau = 1.
std::string alpha(double tau) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%.2f", tau > 0 ? 0.45 * tau : 0.0);
  return buffer;
}

std::string rung_bars(const std::vector<search::RungCounts>& rungs) {
  Frame frame;
  frame.height = 300;
  std::vector<double> counts{0.0};
  for (const auto& r : rungs) counts.push_back(static_cast<double>(r.candidates + r.running));
  Scale y = fit_scale(counts, frame.y0(), frame.y1(), false);
  y.lo = 0;
  const double band = (frame.x1() - frame.x0()) / static_cast<double>(rungs.size());
  Scale x;  // only for the frame's axes: no x ticks
  x.from_px = frame.x0(), x.to_px = frame.x1(), x.labelled = false;
  std::string svg = svg_open(frame, "plot bars", "candidates per rung");
  svg += axes(frame, x, y, "rung (fidelity)", "genomes");
  for (std::size_t r = 0; r < rungs.size(); ++r) {
    const double left = frame.x0() + band * static_cast<double>(r) + band * 0.15;
    const double width = band * 0.7;
    auto bar = [&](double bottom, double count, const char* cls, const std::string& tip) {
      if (count <= 0) return;
      const double top = y(bottom + count);
      svg += "<rect class=\"" + std::string(cls) + "\" x=\"" + coordinate(left) + "\" y=\"" +
             coordinate(top) + "\" width=\"" + coordinate(width) + "\" height=\"" +
             coordinate(y(bottom) - top) + "\"><title>" + escape(tip) + "</title></rect>";
    };
    const auto& c = rungs[r];
    const double promoted = static_cast<double>(c.promoted);
    bar(0, promoted, "bar promoted", std::to_string(c.promoted) + " promoted to the next rung");
    bar(promoted, static_cast<double>(c.candidates) - promoted, "bar stopped",
        std::to_string(c.candidates - c.promoted) +
            (r + 1 < rungs.size() ? " not promoted" : " at the top rung"));
    bar(static_cast<double>(c.candidates), static_cast<double>(c.running), "bar running",
        std::to_string(c.running) + " training now");
    svg += "<text class=\"tick\" x=\"" + coordinate(left + width / 2) + "\" y=\"" +
           coordinate(frame.y0() + 15) + "\" text-anchor=\"middle\">" + std::to_string(r + 1) + " (" +
           escape(short_number(c.fidelity)) + ")</text>";
    svg += "<text class=\"bar-label\" x=\"" + coordinate(left + width / 2) + "\" y=\"" +
           coordinate(y(static_cast<double>(c.candidates + c.running)) - 4) + "\" text-anchor=\"middle\">" +
           std::to_string(c.candidates) + "</text>";
  }
  return "<figure>" + svg + "</svg><figcaption>genomes per rung</figcaption></figure>";
}

}  // namespace

std::string rungs_section(const ReportData& data) {
  if (data.rung_counts.empty() && data.rank_stability.empty()) return {};
  std::string out = "<section id=\"rungs\"><h2>Fidelities</h2>";
  if (!data.rung_counts.empty()) {
    out += "<p class=\"caption\">Successive halving over " + std::to_string(data.rung_counts.size()) +
           " rungs: each genome trains at the lowest fidelity first; the non-dominated ones continue.</p>";
    out +=
        "<div class=\"legend\"><span class=\"legend-entry\"><i class=\"swatch promoted\"></i>promoted</span>"
        "<span class=\"legend-entry\"><i class=\"swatch stopped\"></i>stopped there</span>"
        "<span class=\"legend-entry\"><i class=\"swatch running\"></i>training now</span></div>";
    out += "<div class=\"plots\">" + rung_bars(data.rung_counts) + "</div>";
  }
  if (!data.rank_stability.empty()) {
    out +=
        "<h3>Rank correlation between fidelities</h3><p class=\"caption\">Kendall's tau-b between each "
        "objective's values at a fidelity and at the next, over the genomes evaluated at both: 1 means the "
        "cheap fidelity orders them exactly as the expensive one.</p>";
    out += "<table class=\"data\"><thead><tr><th>from</th><th>to</th><th>genomes</th>";
    for (const auto& o : data.objectives) out += "<th>" + escape(o.name) + "</th>";
    out += "</tr></thead><tbody>";
    for (const auto& r : data.rank_stability) {
      out += "<tr><td>" + escape(short_number(r.from)) + "</td><td>" + escape(short_number(r.to)) +
             "</td><td>" + std::to_string(r.genomes) + "</td>";
      for (const auto& [objective, tau] : r.tau) {
        char text[32];
        std::snprintf(text, sizeof text, "%.2f", tau + 0.0);
        out += std::isnan(tau) ? "<td class=\"na\">undefined</td>"
                               : "<td class=\"tau\" style=\"background:rgba(9,105,218," + alpha(tau) +
                                     ")\">" + text + "</td>";
      }
      out += "</tr>";
    }
    out += "</tbody></table>";
  }
  return out + "</section>";
}

}  // namespace livs::report
