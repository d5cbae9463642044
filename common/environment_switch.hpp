#pragma once
// The switches that turn a default behaviour off from the environment, for
// debugging and comparisons (LIVSEARCH_CUDA_GRAPHS=0, LIVSEARCH_REUSE_BACKENDS=0,
// ...): on unless the variable is exactly "0".
#include <cstdlib>
#include <cstring>

namespace livs {

inline bool enabled_unless_zero(const char* variable) {
  const char* value = std::getenv(variable);
  return !(value && std::strcmp(value, "0") == 0);
}

}  // namespace livs
