// What the front is made of, beside what the run tried: the share of each LIV
// class among all operators, and per slot position the classes found there.
#include <set>

#include "report/sections.hpp"

namespace livs::report {

namespace {

std::vector<std::string> classes_of(const Composition& a, const Composition& b) {
  // Known classes in catalogue order, then any other by name.
  std::vector<std::string> out;
  std::set<std::string> all;
  for (const auto* c : {&a, &b})
    for (const auto& [cls, n] : c->by_class) all.insert(cls);
  for (const char* known : {"sa", "linattn", "rec", "ssm", "gconv", "swiglu", "moe"})
    if (all.erase(known)) out.push_back(known);
  out.insert(out.end(), all.begin(), all.end());
  return out;
}

std::size_t total(const std::map<std::string, std::size_t>& counts) {
  std::size_t n = 0;
  for (const auto& [cls, c] : counts) n += c;
  return n;
}

// One horizontal stacked bar of class shares.
std::string stacked_bar(const std::map<std::string, std::size_t>& counts,
                        const std::vector<std::string>& classes, double x, double y, double width,
                        double height, const std::string& what) {
  const double n = static_cast<double>(total(counts));
  std::string out;
  double at = x;
  for (const auto& cls : classes) {
    auto it = counts.find(cls);
    if (it == counts.end() || n == 0) continue;
    const double w = width * static_cast<double>(it->second) / n;
    char share[16];
    std::snprintf(share, sizeof share, "%.0f%%", 100.0 * static_cast<double>(it->second) / n);
    out += "<rect class=\"share-bar\" x=\"" + coordinate(at) + "\" y=\"" + coordinate(y) + "\" width=\"" +
           coordinate(w) + "\" height=\"" + coordinate(height) + "\" style=\"fill:" + class_colour(cls) +
           "\"><title>" +
           escape(what + ": " + cls + " " + std::to_string(it->second) + " of " +
                  std::to_string(total(counts)) + " operators (" + share + ")") +
           "</title></rect>";
    if (w > 34)
      out += "<text class=\"bar-text\" x=\"" + coordinate(at + w / 2) + "\" y=\"" +
             coordinate(y + height / 2 + 4) + "\" text-anchor=\"middle\">" + escape(cls) + "</text>";
    at += w;
  }
  return out;
}

std::string by_class_plot(const ReportData& data, const std::vector<std::string>& classes) {
  Frame frame;
  frame.width = 640, frame.height = 120, frame.left = 110;
  std::string svg = svg_open(frame, "plot composition", "LIV classes of the front and of the run");
  const double width = frame.x1() - frame.x0();
  const std::pair<const Composition*, std::string> rows[] = {
      {&data.front_composition, "front (" + std::to_string(data.front_composition.genomes) + ")"},
      {&data.run_composition, "whole run (" + std::to_string(data.run_composition.genomes) + ")"}};
  double y = frame.top;
  for (const auto& [composition, name] : rows) {
    svg += "<text class=\"tick\" x=\"" + coordinate(frame.x0() - 8) + "\" y=\"" + coordinate(y + 22) +
           "\" text-anchor=\"end\">" + escape(name) + "</text>";
    svg += stacked_bar(composition->by_class, classes, frame.x0(), y, width, 34, name);
    y += 46;
  }
  return "<figure class=\"wide\">" + svg +
         "</svg><figcaption>share of operators by class</figcaption></figure>";
}

std::string by_slot_plot(const Composition& composition, const std::vector<std::string>& classes,
                         const std::string& title) {
  Frame frame;
  frame.width = 440, frame.left = 60;
  const std::size_t slots = composition.by_slot.size();
  frame.height = frame.top + 26.0 * static_cast<double>(slots) + 30;
  std::string svg = svg_open(frame, "plot composition", title);
  const double width = frame.x1() - frame.x0();
  for (std::size_t s = 0; s < slots; ++s) {
    const double y = frame.top + 26.0 * static_cast<double>(s);
    svg += "<text class=\"tick\" x=\"" + coordinate(frame.x0() - 8) + "\" y=\"" + coordinate(y + 15) +
           "\" text-anchor=\"end\">slot " + std::to_string(s) + "</text>";
    svg +=
        stacked_bar(composition.by_slot[s], classes, frame.x0(), y, width, 20, "slot " + std::to_string(s));
  }
  return "<figure>" + svg + "</svg><figcaption>" + escape(title) + "</figcaption></figure>";
}

}  // namespace

std::string composition_section(const ReportData& data) {
  std::string out = "<section id=\"composition\"><h2>Composition</h2>";
  if (data.run_composition.genomes == 0)
    return out + "<p class=\"empty\">No genome has been evaluated yet.</p></section>";
  const auto classes = classes_of(data.front_composition, data.run_composition);
  out +=
      "<p class=\"caption\">Operators by LIV class (a fusion slot counts both of its operators). Hover a "
      "bar for the counts.</p><div class=\"legend\">";
  for (const auto& cls : classes)
    out += "<span class=\"legend-entry\"><i class=\"swatch\" style=\"background:" + class_colour(cls) +
           "\"></i>" + escape(cls) + "</span>";
  out += "</div><div class=\"plots\">" + by_class_plot(data, classes) + "</div><div class=\"plots\">";
  if (data.front_composition.genomes > 0)
    out += by_slot_plot(data.front_composition, classes, "front, by slot position");
  out += by_slot_plot(data.run_composition, classes, "whole run, by slot position");
  return out + "</div></section>";
}

}  // namespace livs::report
