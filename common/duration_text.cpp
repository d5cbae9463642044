#include "common/duration_text.hpp"

#include <cmath>
#include <cstdio>

namespace livs {

std::string format_duration(double seconds) {
  char buffer[32];
  const long whole = std::lround(seconds);
  if (whole >= 60)
    std::snprintf(buffer, sizeof buffer, "%ldm%02lds", whole / 60, whole % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%.1fs", seconds);
  return buffer;
}

}  // namespace livs
