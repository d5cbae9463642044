#pragma once
// The switches that turn a default behaviour off from the environment, for
// debugging and comparisons (LIVSEARCH_CUDA_GRAPHS=0, LIVSEARCH_REUSE_BACKENDS=0,
// ...): on unless the variable is exactly "0"; and the behaviours the code
// chooses, which "1" or "0" forces.
#include <cstdlib>
#include <cstring>
#include <optional>

namespace livs {

inline bool enabled_unless_zero(const char* variable) {
  const char* value = std::getenv(variable);
  return !(value && std::strcmp(value, "0") == 0);
}

// A behaviour chosen by the code unless the variable forces it: "1" on,
// "0" off, anything else (or unset) leaves the choice to the code.
inline std::optional<bool> forced_switch(const char* variable) {
  const char* value = std::getenv(variable);
  if (value && std::strcmp(value, "1") == 0) return true;
  if (value && std::strcmp(value, "0") == 0) return false;
  return std::nullopt;
}

}  // namespace livs
