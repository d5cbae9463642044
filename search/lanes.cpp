#include "search/lanes.hpp"

#include <algorithm>

namespace livs::search {

std::vector<Lane> local_lanes(const std::vector<std::string>& devices, int workers) {
  std::vector<Lane> lanes;
  for (int w = 0; w < workers; ++w)
    for (const auto& device : devices) lanes.push_back({device, device, {}});
  return lanes;
}

std::string devices_of(const std::vector<Lane>& lanes) {
  std::vector<std::string> seen;
  std::string text;
  for (const auto& lane : lanes) {
    if (std::find(seen.begin(), seen.end(), lane.where) != seen.end()) continue;
    seen.push_back(lane.where);
    if (!text.empty()) text += ',';
    text += lane.where;
  }
  return text;
}

}  // namespace livs::search
