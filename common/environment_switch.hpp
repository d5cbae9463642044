#pragma once
// The switches that turn a default behaviour off from the environment, for
// debugging and comparisons (LIVSEARCH_CUDA_GRAPHS=0, LIVSEARCH_REUSE_BACKENDS=0,
// ...): on unless the variable is exactly "0"; and the new behaviours that
// stay off until they are measured: on only when it is exactly "1".
#include <cstdlib>
#include <cstring>

namespace livs {

inline bool enabled_unless_zero(const char* variable) {
  const char* value = std::getenv(variable);
  return !(value && std::strcmp(value, "0") == 0);
}

// A behaviour that is off until measured: on only when the variable is exactly "1".
inline bool enabled_if_one(const char* variable) {
  const char* value = std::getenv(variable);
  return value && std::strcmp(value, "1") == 0;
}

}  // namespace livs
