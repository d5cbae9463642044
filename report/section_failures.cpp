// Failed evaluations grouped by their reason (the first line of the error),
// most frequent first.
#include "report/sections.hpp"

namespace livs::report {

std::string failures_section(const ReportData& data) {
  std::string out = "<section id=\"failures\"><h2>Failures</h2>";
  if (data.failures.empty()) return out + "<p class=\"empty\">No evaluation failed.</p></section>";
  out += "<p class=\"caption\">" + std::to_string(data.failed_evaluations) + " of " +
         std::to_string(data.counts.total()) + " evaluations failed, for " +
         std::to_string(data.failures.size()) +
         (data.failures.size() == 1 ? " reason" : " different reasons") +
         ". The search recorded each and went on.</p>";
  out +=
      "<div class=\"table-scroll\"><table class=\"data sortable\" id=\"failure-table\"><thead><tr><th "
      "data-type=\"number\">count</th><th data-type=\"text\">reason</th><th "
      "data-type=\"text\">fidelities</th><th data-type=\"text\">genomes (first few)</th></tr></thead>";
  for (const auto& group : data.failures) {
    std::string fidelities, hashes;
    for (double f : group.fidelities) {
      if (!fidelities.empty()) fidelities += ", ";
      fidelities += short_number(f);
    }
    for (const auto& h : group.hashes) {
      if (!hashes.empty()) hashes += ' ';
      hashes += h.substr(0, 12);
    }
    out += "<tbody><tr><td class=\"num\" data-v=\"" + std::to_string(group.count) + "\">" +
           std::to_string(group.count) + "</td><td data-v=\"" + escape(group.reason) +
           "\" class=\"reason\">" + escape(group.reason) + "</td><td data-v=\"" + escape(fidelities) + "\">" +
           escape(fidelities) + "</td><td data-v=\"" + escape(hashes) + "\"><code>" + escape(hashes) +
           "</code></td></tr></tbody>";
  }
  return out + "</table></div></section>";
}

}  // namespace livs::report
