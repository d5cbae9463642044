#include "cli/query_common.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>

#include "common/input_error.hpp"

namespace livs::cli {

std::string required_db(const cxxopts::ParseResult& args, const char* command) {
  if (!args.count("db"))
    throw InputError(command, "", std::string("missing --db FILE (see '") + command + " --help')");
  return args["db"].as<std::string>();
}

std::string chosen_format(const cxxopts::ParseResult& args, std::initializer_list<std::string_view> allowed) {
  std::string format = args["format"].as<std::string>();
  std::string list;
  for (auto option : allowed) {
    if (format == option) return format;
    list += (list.empty() ? "" : ", ") + std::string(option);
  }
  throw InputError("--format", "", "expected one of " + list + ", got '" + format + "'");
}

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\n\r") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

// Characters, not bytes, so a cell holding "±" (two bytes of UTF-8) lines up:
// every byte but a continuation byte (10xxxxxx) starts a character.
std::size_t display_width(const std::string& text) {
  std::size_t width = 0;
  for (unsigned char c : text) width += (c & 0xC0) != 0x80 ? 1 : 0;
  return width;
}

}  // namespace

std::string TextTable::render() const {
  std::vector<std::size_t> widths(header.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    if (row.size() > widths.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], display_width(row[i]));
  };
  widen(header);
  for (const auto& row : rows) widen(row);
  auto line = [&](const std::vector<std::string>& row) {
    std::string out;
    for (std::size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out += std::string(widths[i] - display_width(row[i]) + 2, ' ');
    }
    return out + "\n";
  };
  std::string out = line(header);
  std::size_t total = 0;
  for (std::size_t i = 0; i < widths.size(); ++i) total += widths[i] + (i + 1 < widths.size() ? 2 : 0);
  out += std::string(total, '-') + "\n";
  for (const auto& row : rows) out += line(row);
  return out;
}

std::optional<double> seconds_since(const std::string& iso8601_utc) {
  std::tm utc{};
  int millis = 0;
  if (std::sscanf(iso8601_utc.c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                  &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &millis) != 7)
    return std::nullopt;
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  double then = static_cast<double>(timegm(&utc)) + millis / 1000.0;
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  return now - then;
}

std::string format_age(double seconds) {
  char buffer[32];
  if (seconds < 120)
    std::snprintf(buffer, sizeof buffer, "%.0f s", std::max(0.0, seconds));
  else if (seconds < 2 * 3600)
    std::snprintf(buffer, sizeof buffer, "%.0f min", seconds / 60);
  else
    std::snprintf(buffer, sizeof buffer, "%.1f h", seconds / 3600);
  return buffer;
}

std::string short_hash(const std::string& hash) { return hash.substr(0, 12); }

}  // namespace livs::cli
