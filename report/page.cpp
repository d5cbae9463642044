// Assembles the page: head (style, and a Content-Security-Policy that lets
// the page load nothing from anywhere: what is not inline cannot be used),
// header, navigation, the sections in reading order, the candidate data and
// the script.
#include <algorithm>

#include "report/page_style.hpp"
#include "report/report.hpp"
#include "report/sections.hpp"

namespace livs::report {

std::string render_report(const ReportData& data, const std::string& generated_at) {
  const std::string title = "livsearch report: " + data.run.name;
  std::string sections[] = {overview_section(data),    pareto_section(data),  parallel_section(data),
                            progress_section(data),    rungs_section(data),   front_table_section(data),
                            composition_section(data), failures_section(data)};
  static const std::pair<const char*, const char*> kNav[] = {{"overview", "Run"},
                                                             {"pareto", "Pareto front"},
                                                             {"parallel", "All objectives"},
                                                             {"progress", "Hypervolume"},
                                                             {"rungs", "Fidelities"},
                                                             {"front", "Front table"},
                                                             {"composition", "Composition"},
                                                             {"failures", "Failures"}};
  std::string nav;
  for (const auto& [id, name] : kNav)
    for (const auto& s : sections)
      if (s.rfind("<section id=\"" + std::string(id) + "\"", 0) == 0)
        nav += "<a href=\"#" + std::string(id) + "\">" + name + "</a>";

  std::size_t front_size = data.front.size(), candidates = 0;
  for (const auto& p : data.points) candidates += p.fidelity == data.front_fidelity ? 1 : 0;
  std::string out;
  out.reserve(1 << 20);
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">";
  out +=
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
      "script-src 'unsafe-inline'; img-src data:\">";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
  out += "<meta name=\"generator\" content=\"livsearch " + escape(data.tool_version) + "\">";
  out += "<title>" + escape(title) + "</title><style>" + page_style() + "</style></head><body>";
  out += "<header><h1>" + escape(title) + "</h1><div class=\"sub\">" + std::to_string(front_size) +
         " on the front of " + std::to_string(candidates) + " candidates at fidelity " +
         escape(short_number(data.front_fidelity)) + " \u00b7 run " + escape(db::to_string(data.run.status)) +
         " \u00b7 written " + escape(generated_at) + "</div></header>";
  out += "<nav>" + nav + "</nav><div id=\"js-errors\" hidden></div><main>";
  for (const auto& s : sections) out += s;
  out += "</main><footer>Written by <code>livsearch report</code> " + escape(data.tool_version) +
         " from <code>" + escape(data.db_path) +
         "</code>. Self-contained: no network access, no external files.</footer>";
  // One definition of the sharing arrowhead for every genome picture.
  out +=
      "<svg width=\"0\" height=\"0\" style=\"position:absolute\" aria-hidden=\"true\"><defs><marker "
      "id=\"share-arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" "
      "orient=\"auto-start-reverse\"><path d=\"M0 0L10 5L0 10Z\"/></marker></defs></svg>";
  out += "<div id=\"tooltip\" hidden></div>";
  out += "<script type=\"application/json\" id=\"candidate-data\">" + candidate_json(data) + "</script>";
  out += "<script>" + std::string(page_script()) + "</script></body></html>\n";
  return out;
}

std::string build_report(const db::Queries& db, const std::string& run_name,
                         const std::string& generated_at) {
  return render_report(gather_report_data(db, run_name), generated_at);
}

}  // namespace livs::report
