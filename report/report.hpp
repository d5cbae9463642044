#pragma once
// `livsearch report`: one self-contained HTML file showing a run. Every
// style, script and plot is inline (the plots are SVG written here; a small
// hand-written script adds hover, sorting and opening rows), so the file
// opens offline, fetches nothing (a Content-Security-Policy says so to the
// browser too) and can be mailed. docs/architecture.md, "Report", says why.
#include <string>

#include "db/store.hpp"
#include "report/report_data.hpp"

namespace livs::report {

// The whole page. `generated_at` is printed in the header (ISO 8601 UTC).
std::string render_report(const ReportData& data, const std::string& generated_at);

// Reads the run from `db` (read-only queries) and renders it.
std::string build_report(const db::Queries& db, const std::string& run_name, const std::string& generated_at);

}  // namespace livs::report
