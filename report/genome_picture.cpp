// A genome drawn slot by slot, left to right as the residual stream flows:
// each operator a box in its class's colour with its knobs, a fusion slot two
// boxes with the fusion kind between them, and sharing as arcs from the
// operator whose weights (featurizer, dashed) or features (K and V, solid)
// are reused to the operator that reuses them. Works on the canonical JSON, so
// a class added later is drawn by its name with its knobs listed.
#include <map>

#include "report/sections.hpp"

namespace livs::report {

namespace {

constexpr double kSlotWidth = 118, kGap = 22, kOpHeight = 84, kTop = 64, kLeft = 10;

struct OpBox {
  double x = 0, y = 0;
};

std::string knob_text(const std::string& key, const Json& value) {
  std::string v;
  if (value.is_boolean())
    v = value.get<bool>() ? "yes" : "no";
  else if (value.is_number())
    v = short_number(value.get<double>());
  else if (value.is_string())
    v = value.get<std::string>();
  else
    v = value.dump();
  return key + " " + v;
}

// (slot, op) of a sharing reference: null, {"slot": s, "op": o} or a bare slot number.
bool reference(const Json& ref, int& slot, int& op) {
  if (ref.is_number_integer()) {
    slot = ref.get<int>(), op = 0;
    return true;
  }
  if (ref.is_object() && ref.contains("slot") && ref["slot"].is_number_integer()) {
    slot = ref["slot"].get<int>();
    op = ref.contains("op") && ref["op"].is_number_integer() ? ref["op"].get<int>() : 0;
    return true;
  }
  return false;
}

}  // namespace

std::string class_colour(const std::string& cls) {
  static const std::map<std::string, std::string> known = {
      {"sa", "#4e79a7"},    {"linattn", "#f28e2b"}, {"rec", "#e15759"}, {"ssm", "#76b7b2"},
      {"gconv", "#59a14f"}, {"swiglu", "#edc948"},  {"moe", "#b07aa1"}};
  if (auto it = known.find(cls); it != known.end()) return it->second;
  static const char* extra[] = {"#ff9da7", "#9c755f", "#bab0ac", "#86bcb6", "#d37295", "#a0cbe8"};
  std::size_t h = 0;
  for (char c : cls) h = h * 31 + static_cast<unsigned char>(c);
  return extra[h % 6];
}

std::string genome_picture(const Json& genome) {
  if (!genome.is_object() || !genome.contains("slots") || !genome["slots"].is_array())
    return "<p class=\"empty\">The genome is not in the database.</p>";
  const auto& slots = genome["slots"];
  bool any_fusion = false;
  for (const auto& slot : slots) any_fusion = any_fusion || (slot.is_object() && slot.contains("ops"));
  Frame frame;
  frame.width = kLeft * 2 + static_cast<double>(slots.size()) * (kSlotWidth + kGap);
  frame.height = kTop + (any_fusion ? 2 * kOpHeight + 24 : kOpHeight) + 16;
  std::string boxes, arrows;
  std::map<std::pair<int, int>, OpBox> placed;
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const auto& slot = slots[s];
    const double x = kLeft + static_cast<double>(s) * (kSlotWidth + kGap);
    const bool fusion = slot.is_object() && slot.contains("ops") && slot["ops"].is_array();
    std::vector<Json> ops;
    if (fusion)
      for (const auto& op : slot["ops"]) ops.push_back(op);
    else
      ops.push_back(slot);
    boxes += "<text class=\"slot-index\" x=\"" + coordinate(x + kSlotWidth / 2) + "\" y=\"" +
             coordinate(kTop - 8) + "\" text-anchor=\"middle\">slot " + std::to_string(s) + "</text>";
    if (s > 0)
      boxes += "<line class=\"stream\" x1=\"" + coordinate(x - kGap) + "\" x2=\"" + coordinate(x) +
               "\" y1=\"" + coordinate(kTop + kOpHeight / 2) + "\" y2=\"" + coordinate(kTop + kOpHeight / 2) +
               "\"/>";
    for (std::size_t k = 0; k < ops.size(); ++k) {
      const auto& op = ops[k];
      const double y = kTop + static_cast<double>(k) * (kOpHeight + 24);
      placed[{static_cast<int>(s), static_cast<int>(k)}] = {x, y};
      const std::string cls = op.is_object() && op.contains("class") && op["class"].is_string()
                                  ? op["class"].get<std::string>()
                                  : "?";
      boxes += "<rect class=\"op\" x=\"" + coordinate(x) + "\" y=\"" + coordinate(y) + "\" width=\"" +
               coordinate(kSlotWidth) + "\" height=\"" + coordinate(kOpHeight) +
               "\" rx=\"6\" style=\"fill:" + class_colour(cls) + "\"/>";
      std::string title = cls;
      if (op.is_object() && op.value("differential", false)) title += " (diff)";
      boxes += "<text class=\"op-class\" x=\"" + coordinate(x + 8) + "\" y=\"" + coordinate(y + 17) + "\">" +
               escape(title) + "</text>";
      int line = 0;
      if (op.is_object())
        for (const auto& [key, value] : op.items()) {
          if (key == "class" || key == "differential" || key == "share_featurizer" || key == "share_features")
            continue;
          if (line == 4) break;  // the box holds four knobs; the JSON below has all
          boxes += "<text class=\"op-knob\" x=\"" + coordinate(x + 8) + "\" y=\"" +
                   coordinate(y + 33 + 13 * line++) + "\">" + escape(knob_text(key, value)) + "</text>";
        }
    }
    if (fusion)
      boxes += "<text class=\"fusion\" x=\"" + coordinate(x + kSlotWidth / 2) + "\" y=\"" +
               coordinate(kTop + kOpHeight + 16) +
               "\" text-anchor=\"middle\">fusion: " + escape(slot.value("fusion", std::string("?"))) +
               "</text>";
  }
  // Sharing arcs, above the boxes, from the source to the sharer.
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const auto& slot = slots[s];
    const bool fusion = slot.is_object() && slot.contains("ops") && slot["ops"].is_array();
    for (std::size_t k = 0; k < (fusion ? slot["ops"].size() : 1); ++k) {
      const Json& op = fusion ? slot["ops"][k] : slot;
      if (!op.is_object()) continue;
      for (const char* kind : {"share_featurizer", "share_features"}) {
        int from_slot = 0, from_op = 0;
        if (!op.contains(kind) || !reference(op[kind], from_slot, from_op)) continue;
        auto from = placed.find({from_slot, from_op});
        auto to = placed.find({static_cast<int>(s), static_cast<int>(k)});
        if (from == placed.end() || to == placed.end()) continue;
        const double x1 = from->second.x + kSlotWidth / 2, x2 = to->second.x + kSlotWidth / 2;
        const double y1 = from->second.y, y2 = to->second.y;
        const double lift = 18 + 0.08 * (x2 - x1);
        const std::string what = std::string(kind) == "share_featurizer" ? "featurizer" : "features";
        arrows += "<path class=\"share " + what + "\" d=\"M" + coordinate(x1) + " " + coordinate(y1) + " C" +
                  coordinate(x1) + " " + coordinate(std::min(y1, y2) - lift) + " " + coordinate(x2) + " " +
                  coordinate(std::min(y1, y2) - lift) + " " + coordinate(x2) + " " + coordinate(y2 - 2) +
                  "\" marker-end=\"url(#share-arrow)\"><title>slot " + std::to_string(s) + " shares the " +
                  what + " of slot " + std::to_string(from_slot) + "</title></path>";
      }
    }
  }
  std::string svg = svg_open(frame, "genome", "genome, slot by slot");
  std::string caption = "d_model " + (genome.contains("d_model") ? genome["d_model"].dump() : "?") +
                        ", vocabulary " + (genome.contains("vocab") ? genome["vocab"].dump() : "?") + ", " +
                        std::to_string(slots.size()) + " slots";
  return "<div class=\"genome-scroll\">" + svg + boxes + arrows + "</svg></div><p class=\"caption\">" +
         escape(caption) +
         "; arrows: an operator reusing an earlier one's weights (dashed) or its features, K and V "
         "(solid).</p>";
}

}  // namespace livs::report
