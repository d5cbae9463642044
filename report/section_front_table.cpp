// The front as a table: one row per member, sortable by any column (the
// page's script), each row opening the member's genome (slot by slot) and
// lineage (its ancestors in this run, nearest first).
#include <algorithm>
#include <cmath>
#include <set>

#include "report/sections.hpp"

namespace livs::report {

namespace {

std::string mean_sd(const SeedSummary& s) {
  if (s.n == 0) return "-";
  std::string text = short_number(s.mean);
  if (s.n > 1) text += " \u00b1 " + short_number(s.sd);
  return text;
}

std::string sort_key(double value) {
  char buffer[40];
  std::snprintf(buffer, sizeof buffer, "%.9g", std::isfinite(value) ? value : 1e308);
  return buffer;
}

std::string lineage_html(const ReportData& data, const FrontRow& row) {
  std::string out = "<div class=\"lineage\"><h4>Lineage</h4>";
  if (row.operator_name.empty() && row.ancestors.empty())
    return out + "<p class=\"empty\">No lineage recorded for this genome in this run.</p></div>";
  out += "<p>Made by <b>" + escape(row.operator_name.empty() ? "?" : row.operator_name) + "</b>" +
         (row.ancestors.empty() ? " (no parents: sampled or a warm-start member)." : " from:") + "</p>";
  if (row.ancestors.empty()) return out + "</div>";
  std::set<std::string> evaluated;
  for (const auto& p : data.points) evaluated.insert(p.hash);
  out += "<ol class=\"ancestors\">";
  for (const auto& a : row.ancestors) {
    out += "<li style=\"margin-left:" + std::to_string((a.depth - 1) * 18) + "px\"><code>" +
           escape(a.hash.substr(0, 12)) + "</code> <span class=\"muted\">generation " +
           std::to_string(a.generation) + ", " + escape(a.operator_name.empty() ? "?" : a.operator_name) +
           (a.depth > 1 ? ", parent of " + escape(a.child_hash.substr(0, 8)) : std::string()) + "</span> " +
           escape(a.summary) + "</li>";
  }
  if (row.ancestors.size() >= kMaxAncestors) out += "<li class=\"muted\">(older ancestors left out)</li>";
  return out + "</ol></div>";
}

}  // namespace

std::string front_table_section(const ReportData& data) {
  std::string out = "<section id=\"front\"><h2>The front</h2>";
  if (data.front.empty()) return out + "<p class=\"empty\">The run has no front yet.</p></section>";
  const bool none_feasible = std::all_of(data.front.begin(), data.front.end(), [&](const FrontRow& r) {
    return data.points[r.point].violation > 0;
  });
  out += "<p class=\"caption\">" + std::to_string(data.front.size()) +
         " non-dominated candidates at fidelity " + escape(short_number(data.front_fidelity)) +
         ", each objective as the mean \u00b1 sample standard deviation over its seeds." +
         (none_feasible ? " No candidate meets every constraint: these violate them least." : "") +
         " Click a column to sort, a row to open the genome and its lineage.</p>";
  // Columns: the objectives, then params when it is not one of them.
  std::vector<std::string> metrics;
  for (const auto& o : data.objectives) metrics.push_back(o.name);
  if (std::find(metrics.begin(), metrics.end(), "params") == metrics.end() && data.units.count("params"))
    metrics.push_back("params");
  out +=
      "<div class=\"table-scroll\"><table class=\"data sortable\" id=\"front-table\"><thead><tr>"
      "<th data-type=\"text\">hash</th><th data-type=\"text\">name</th>";
  for (const auto& m : metrics) {
    std::string head = escape(m);
    for (const auto& o : data.objectives)
      if (o.name == m) head += o.direction == search::Direction::maximise ? " \u2191" : " \u2193";
    const std::string unit = unit_of(data, m);
    if (!unit.empty()) head += "<br><span class=\"unit\">" + escape(unit) + "</span>";
    out += "<th data-type=\"number\">" + head + "</th>";
  }
  out +=
      "<th data-type=\"number\">seeds</th><th data-type=\"number\">fidelity</th><th "
      "data-type=\"number\">gen</th><th data-type=\"text\">summary</th></tr></thead>";
  const std::size_t columns = 2 + metrics.size() + 4;
  for (std::size_t r = 0; r < data.front.size(); ++r) {
    const auto& row = data.front[r];
    const auto& p = data.points[row.point];
    int seeds = 0;
    for (const auto& [name, s] : p.metrics) seeds = std::max(seeds, s.n);
    // A tbody per member keeps its detail row next to it when the table is sorted.
    out += "<tbody class=\"member\" data-i=\"" + std::to_string(row.point) + "\"><tr class=\"front-row" +
           std::string(p.violation > 0 ? " infeasible" : "") + "\" tabindex=\"0\">";
    out += "<td data-v=\"" + escape(p.hash) + "\"><code>" + escape(p.hash.substr(0, 12)) + "</code></td>";
    std::string name = p.label;
    if (p.finalist) name += std::string(name.empty() ? "" : ", ") + "finalist";
    out += "<td data-v=\"" + escape(name) + "\">" + escape(name) + "</td>";
    for (const auto& m : metrics) {
      auto it = p.metrics.find(m);
      const SeedSummary s = it == p.metrics.end() ? SeedSummary{} : it->second;
      out +=
          "<td class=\"num\" data-v=\"" + sort_key(s.n ? s.mean : NAN) + "\">" + escape(mean_sd(s)) + "</td>";
    }
    out += "<td class=\"num\" data-v=\"" + std::to_string(seeds) + "\">" + std::to_string(seeds) + "</td>";
    out += "<td class=\"num\" data-v=\"" + sort_key(p.fidelity) + "\">" + escape(short_number(p.fidelity)) +
           "</td>";
    out += "<td class=\"num\" data-v=\"" + std::to_string(p.generation) + "\">" +
           std::to_string(p.generation) + "</td>";
    out += "<td class=\"summary\" data-v=\"" + escape(p.summary) + "\">" + escape(p.summary) + "</td></tr>";
    out += "<tr class=\"detail\" hidden><td colspan=\"" + std::to_string(columns) + "\"><h4>Genome <code>" +
           escape(p.hash) + "</code></h4>" + genome_picture(row.genome) + lineage_html(data, row) +
           "<details><summary>genome JSON</summary><pre>" + escape(row.genome.dump(1)) +
           "</pre></details></td></tr></tbody>";
  }
  return out + "</table></div></section>";
}

}  // namespace livs::report
