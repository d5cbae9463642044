#pragma once
// The catalogue of objectives: every metric an evaluation can report, with its
// unit, the direction in which it improves and its best possible value. Plain
// data only, so the search (which must not depend on proxies/) and the
// proxies (which measure them, proxies/objectives.hpp) read the same table.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace livs {

struct ObjectiveInfo {
  std::string_view name;
  std::string_view unit;
  bool maximise = false;         // false: lower is better
  std::optional<double> ideal;   // the best value it can take, when one is known
  std::string_view description;  // how it is measured, in one line
};

// Every registered objective, in a fixed order (the order tables print them).
const std::vector<ObjectiveInfo>& objective_catalogue();

// The entry for a name, or nullptr when the name is not registered.
const ObjectiveInfo* find_objective(std::string_view name);

// The unit a metric is stored with ("" for an unregistered name).
std::string objective_unit(std::string_view name);

}  // namespace livs
