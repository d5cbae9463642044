#pragma once
// The sections of a report, one file each (report/section_*.cpp). Each takes
// the gathered data and returns one <section> of HTML with its plots as inline
// SVG. Points, lines and rows that stand for a candidate carry
// data-i="INDEX" (its index in ReportData::points), which the page's script
// uses to show the candidate on hover (report/page_script.cpp).
#include <string>

#include "report/report_data.hpp"
#include "report/svg.hpp"

namespace livs::report {

// Run, status, timing, devices, tool version, objectives, constraints, config.
std::string overview_section(const ReportData& data);
// A scatter plot per pair of objectives, with the front.
std::string pareto_section(const ReportData& data);
// Parallel coordinates; empty for fewer than three objectives.
std::string parallel_section(const ReportData& data);
// Hypervolume against generation and against evaluation time.
std::string progress_section(const ReportData& data);
// Candidates per rung and rank correlation between fidelities; empty for a
// run with a single fidelity.
std::string rungs_section(const ReportData& data);
// The front as a sortable table whose rows open the genome and its lineage.
std::string front_table_section(const ReportData& data);
// LIV classes of the front and the whole run, over all slots and per slot.
std::string composition_section(const ReportData& data);
// Failed evaluations grouped by reason.
std::string failures_section(const ReportData& data);

// The slot-by-slot picture of a canonical genome: a box per operator with its
// class and knobs, fusion slots as two boxes, sharing as arrows.
std::string genome_picture(const Json& genome);

// The colour a LIV class is drawn in (fixed for the known classes).
std::string class_colour(const std::string& cls);

// The marker of a fidelity: the highest is a circle, lower ones other shapes.
Marker fidelity_marker(const ReportData& data, double fidelity);

// The candidate data the page's script reads (hover), as a JSON text safe
// inside <script type="application/json">.
std::string candidate_json(const ReportData& data);

}  // namespace livs::report
