#pragma once
// What the read-only query commands (runs, status, pareto, show, export) share:
// argument parsing that turns usage mistakes into one-line errors, the
// --format choice, and plain-text tables and CSV.
#include <cxxopts.hpp>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/format_number.hpp"

namespace livs::cli {

// The --db value, required: InputError "livsearch CMD: missing --db FILE" otherwise.
std::string required_db(const cxxopts::ParseResult& args, const char* command);

// The --format value, one of `allowed` (InputError naming --format otherwise).
std::string chosen_format(const cxxopts::ParseResult& args, std::initializer_list<std::string_view> allowed);

using livs::format_number;  // common/format_number.hpp

// A CSV field quoted per RFC 4180 when it holds a comma, quote or newline.
std::string csv_field(std::string_view text);

// Columns padded to their widest cell (counted in UTF-8 characters); a rule
// under the header.
struct TextTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::string render() const;
};

// Seconds from a database timestamp (2026-11-23T18:43:25.123Z) to now;
// nullopt when the text is not such a timestamp.
std::optional<double> seconds_since(const std::string& iso8601_utc);

// "42 s", "7 min", "3.5 h".
std::string format_age(double seconds);

// First characters of a genome hash, enough to name it in a table.
std::string short_hash(const std::string& hash);

}  // namespace livs::cli
