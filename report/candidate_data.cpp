// The candidates as JSON for the page's script: what hovering a point shows.
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "report/sections.hpp"

namespace livs::report {

namespace {

// Six significant digits: what the tooltip shows, and a third of the bytes of
// a full double.
Json rounded(double value) {
  if (!std::isfinite(value)) return Json();
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", value);
  return std::strtod(buffer, nullptr);
}

}  // namespace

std::string candidate_json(const ReportData& data) {
  Json out;
  out["units"] = data.units;
  Json objectives = Json::array();
  for (const auto& o : data.objectives) objectives.push_back(o.name);
  out["objectives"] = objectives;
  Json candidates = Json::array();
  for (const auto& p : data.points) {
    Json metrics = Json::object();
    for (const auto& [name, s] : p.metrics)
      metrics[name] = Json::array({rounded(s.mean), rounded(s.sd), s.n});
    Json c = {{"h", p.hash.substr(0, 12)},
              {"s", p.summary},
              {"f", rounded(p.fidelity)},
              {"g", p.generation},
              {"m", metrics}};
    if (!p.label.empty()) c["n"] = p.label;
    if (p.violation > 0) c["v"] = rounded(p.violation);
    if (p.on_front) c["front"] = 1;
    if (p.finalist) c["final"] = 1;
    candidates.push_back(std::move(c));
  }
  out["candidates"] = std::move(candidates);
  // '<' only occurs inside JSON strings, where \u003c means the same; this
  // keeps "</script>" in a summary or label from ending the script element.
  std::string text = out.dump(-1, ' ', false, Json::error_handler_t::replace);
  std::string safe;
  safe.reserve(text.size());
  for (char c : text) {
    if (c == '<')
      safe += "\\u003c";
    else
      safe += c;
  }
  return safe;
}

}  // namespace livs::report
