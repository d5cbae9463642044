// The run at a glance: name, status, seed, when it ran and on what, how many
// evaluations, the tool versions, the objectives and constraints, and the
// config as stored.
#include <cmath>
#include <cstdio>
#include <ctime>
#include <optional>

#include "report/sections.hpp"

namespace livs::report {

namespace {

// Seconds since the epoch of a database timestamp (2026-11-23T18:43:25.123Z).
std::optional<double> utc_seconds(const std::string& text) {
  std::tm utc{};
  int millis = 0;
  if (std::sscanf(text.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                  &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &millis) != 7)
    return std::nullopt;
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  return static_cast<double>(timegm(&utc)) + millis / 1000.0;
}

std::string duration(double seconds) {
  char buffer[48];
  if (seconds < 120)
    std::snprintf(buffer, sizeof buffer, "%.0f s", seconds);
  else if (seconds < 2 * 3600)
    std::snprintf(buffer, sizeof buffer, "%.1f min", seconds / 60);
  else
    std::snprintf(buffer, sizeof buffer, "%.2f h", seconds / 3600);
  return buffer;
}

void fact(std::string& out, const std::string& name, const std::string& value_html) {
  out += "<dt>" + escape(name) + "</dt><dd>" + value_html + "</dd>";
}

}  // namespace

std::string overview_section(const ReportData& data) {
  const auto& run = data.run;
  std::string out = "<section id=\"overview\"><h2>Run</h2><dl class=\"facts\">";
  fact(out, "run", "<b>" + escape(run.name) + "</b>");
  std::string status = db::to_string(run.status);
  if (run.status == db::RunStatus::running) status += " (the report shows the run as it was when written)";
  fact(out, "status", escape(status));
  fact(out, "seed", std::to_string(run.seed));
  fact(out, "created", escape(run.created_at));
  std::string ran = escape(data.first_started_at.empty() ? "-" : data.first_started_at) + " to " +
                    escape(data.last_finished_at.empty() ? "-" : data.last_finished_at);
  auto start = utc_seconds(data.first_started_at), end = utc_seconds(data.last_finished_at);
  if (start && end && *end >= *start) ran += " (" + duration(*end - *start) + " of wall time)";
  fact(out, "evaluations ran", ran);
  fact(out, "evaluation time", escape(duration(data.evaluation_seconds)) + " summed over evaluations");
  std::string devices;
  for (const auto& d : data.devices) devices += (devices.empty() ? "" : ", ") + d;
  fact(out, "device", escape(devices.empty() ? "-" : devices));
  const auto& c = data.counts;
  fact(out, "evaluations",
       std::to_string(c.ok) + " ok, " + std::to_string(c.failed) + " failed, " + std::to_string(c.running) +
           " running" +
           (c.interrupted ? ", " + std::to_string(c.interrupted) + " interrupted" : std::string()));
  fact(out, "generations",
       data.latest_generation ? std::to_string(*data.latest_generation + 1) + " recorded" : "none yet");
  std::string objectives;
  for (const auto& o : data.objectives)
    objectives += (objectives.empty() ? "" : ", ") + o.name +
                  (o.direction == search::Direction::maximise ? " (max)" : " (min)");
  fact(out, "objectives", escape(objectives));
  std::string constraints;
  for (const auto& k : data.constraints)
    constraints += (constraints.empty() ? "" : ", ") + search::describe(k);
  fact(out, "constraints", escape(constraints.empty() ? "none" : constraints));
  if (data.rungs.size() > 1) {
    std::string rungs;
    for (double f : data.rungs) rungs += (rungs.empty() ? "" : ", ") + short_number(f);
    fact(out, "fidelities (rungs)", escape(rungs));
  }
  fact(out, "tool version",
       "run written by livsearch " + escape(run.tool_version) + ", report by livsearch " +
           escape(data.tool_version));
  fact(out, "database", "<code>" + escape(data.db_path) + "</code>");
  out += "</dl><details><summary>config as stored with the run</summary><pre class=\"config\">" +
         escape(run.config.dump(2)) + "</pre></details></section>";
  return out;
}

}  // namespace livs::report
