#pragma once
// A metric value as the tables and messages print it: integers in full
// (850000, not 8.5e+05), others to six significant digits, nan and inf named.
#include <string>

namespace livs {

std::string format_number(double value);

}  // namespace livs
