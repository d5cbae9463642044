#pragma once
// A duration as a progress line shows it.
#include <string>

namespace livs {

// "4.2s" below a minute, "3m07s" above.
std::string format_duration(double seconds);

}  // namespace livs
