#pragma once
// Reading user JSON with errors that say where and what: a JsonReader is a view
// of one value together with its file name and JSON pointer. Every accessor
// checks type and range and throws livs::InputError naming file, pointer and
// expectation, e.g. `configs/x.json: /search/population: expected an integer
// >= 2, got "16"`.
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/input_error.hpp"

namespace livs {

using Json = nlohmann::ordered_json;

// Parse a file; invalid JSON is an InputError with line and column.
Json parse_json_file(const std::string& path);
Json parse_json_text(const std::string& text, const std::string& name);

// Short rendering of a value for error messages ("16" with quotes for strings,
// objects and arrays abbreviated).
std::string describe_json(const Json& value);

class JsonReader {
 public:
  JsonReader(const Json& value, std::string file, std::string pointer = "");

  const Json& value() const { return *value_; }
  const std::string& file() const { return *file_; }
  const std::string& pointer() const { return pointer_; }

  // Objects.
  bool is_object() const { return value_->is_object(); }
  bool has(std::string_view key) const;
  JsonReader at(std::string_view key) const;  // required key
  std::optional<JsonReader> find(std::string_view key) const;
  std::vector<std::string> keys() const;
  // Every key must be in `known`; otherwise "unknown key 'x' (expected one of a, b, c)".
  void expect_keys(std::initializer_list<std::string_view> known) const;
  void expect_object() const;

  // Arrays.
  std::size_t size() const;  // requires an array
  JsonReader index(std::size_t i) const;
  void expect_array() const;

  // Scalars, with inclusive bounds.
  int64_t integer(int64_t min = std::numeric_limits<int64_t>::min(),
                  int64_t max = std::numeric_limits<int64_t>::max()) const;
  double number(double min = -std::numeric_limits<double>::infinity(),
                double max = std::numeric_limits<double>::infinity()) const;
  bool boolean() const;
  std::string string() const;
  std::string choice(std::initializer_list<std::string_view> options) const;
  std::string choice(const std::vector<std::string>& options) const;

  // Optional keys with defaults.
  int64_t integer_or(std::string_view key, int64_t fallback,
                     int64_t min = std::numeric_limits<int64_t>::min(),
                     int64_t max = std::numeric_limits<int64_t>::max()) const;
  double number_or(std::string_view key, double fallback,
                   double min = -std::numeric_limits<double>::infinity(),
                   double max = std::numeric_limits<double>::infinity()) const;
  bool boolean_or(std::string_view key, bool fallback) const;
  std::string string_or(std::string_view key, std::string fallback) const;

  [[noreturn]] void fail(const std::string& expectation) const;  // "expected X, got Y"
  [[noreturn]] void fail_message(const std::string& message) const;

 private:
  const Json* value_;
  std::shared_ptr<const std::string> file_;
  std::string pointer_;
  JsonReader(const Json& value, std::shared_ptr<const std::string> file, std::string pointer);
};

// Escape a key for use in a JSON pointer (RFC 6901).
std::string json_pointer_escape(std::string_view key);

}  // namespace livs
