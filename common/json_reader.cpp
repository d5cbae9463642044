#include "common/json_reader.hpp"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace livs {

namespace {
std::pair<int, int> line_and_column(const std::string& text, std::size_t byte) {
  int line = 1, column = 1;
  for (std::size_t i = 0; i < byte && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

std::string join(std::initializer_list<std::string_view> items) {
  std::string out;
  for (auto item : items) {
    if (!out.empty()) out += ", ";
    out += item;
  }
  return out;
}
}  // namespace

Json parse_json_text(const std::string& text, const std::string& name) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    auto [line, column] = line_and_column(text, e.byte == 0 ? 0 : e.byte - 1);
    std::string what = e.what();
    // nlohmann's message starts with "[json.exception.parse_error.101] parse error at line..";
    // keep only the part after the last ": " which says what was expected.
    auto cut = what.rfind(": ");
    std::string detail = cut == std::string::npos ? what : what.substr(cut + 2);
    throw InputError(name, "line " + std::to_string(line) + " column " + std::to_string(column),
                     "invalid JSON: " + detail);
  } catch (const nlohmann::json::out_of_range& e) {
    // A number beyond a double (1e999999) is nlohmann's out_of_range 406,
    // not a parse error, and carries no position: find the number it quotes.
    // (Found by fuzz_genome; before, such a file ended livsearch with exit 1
    // and the library's message instead of exit 2 and the place.)
    const std::string what = e.what();
    const auto open = what.find('\''), close = what.rfind('\'');
    std::string number =
        open != std::string::npos && close > open ? what.substr(open + 1, close - open - 1) : "";
    const auto at = number.empty() ? std::string::npos : text.find(number);
    std::string place;
    if (at != std::string::npos) {
      auto [line, column] = line_and_column(text, at);
      place = "line " + std::to_string(line) + " column " + std::to_string(column);
    }
    if (number.size() > 40) number = number.substr(0, 40) + "...";
    throw InputError(name, place, "invalid JSON: the number " + number + " is too large for a double");
  }
}

Json parse_json_file(const std::string& path) {
  std::error_code ignored;
  if (!std::filesystem::exists(path, ignored))
    throw InputError(path, "", "no such file, expected a JSON file");
  if (std::filesystem::is_directory(path, ignored))
    throw InputError(path, "", "is a directory, expected a JSON file");
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::string why = "cannot open the file for reading (";
    why += std::strerror(errno);
    why += ")";
    throw InputError(path, "", why);
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return parse_json_text(buffer.str(), path);
}

std::string describe_json(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::null:
      return "null";
    default: {
      std::string text = value.dump();
      if (text.size() > 60) text = text.substr(0, 57) + "...";
      return text;
    }
  }
}

std::string json_pointer_escape(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

JsonReader::JsonReader(const Json& value, std::string file, std::string pointer)
    : value_(&value),
      file_(std::make_shared<const std::string>(std::move(file))),
      pointer_(std::move(pointer)) {}

JsonReader::JsonReader(const Json& value, std::shared_ptr<const std::string> file, std::string pointer)
    : value_(&value), file_(std::move(file)), pointer_(std::move(pointer)) {}

void JsonReader::fail(const std::string& expectation) const {
  fail_message("expected " + expectation + ", got " + describe_json(*value_));
}

void JsonReader::fail_message(const std::string& message) const {
  throw InputError(*file_, pointer_.empty() ? "/" : pointer_, message);
}

void JsonReader::expect_object() const {
  if (!value_->is_object()) fail("an object");
}

void JsonReader::expect_array() const {
  if (!value_->is_array()) fail("an array");
}

bool JsonReader::has(std::string_view key) const { return value_->is_object() && value_->contains(key); }

JsonReader JsonReader::at(std::string_view key) const {
  expect_object();
  auto it = value_->find(key);
  if (it == value_->end()) {
    throw InputError(*file_, pointer_.empty() ? "/" : pointer_,
                     "missing required key \"" + std::string(key) + "\"");
  }
  return JsonReader(*it, file_, pointer_ + "/" + json_pointer_escape(key));
}

std::optional<JsonReader> JsonReader::find(std::string_view key) const {
  expect_object();
  auto it = value_->find(key);
  if (it == value_->end()) return std::nullopt;
  return JsonReader(*it, file_, pointer_ + "/" + json_pointer_escape(key));
}

std::vector<std::string> JsonReader::keys() const {
  expect_object();
  std::vector<std::string> out;
  for (const auto& item : value_->items()) out.push_back(item.key());
  return out;
}

void JsonReader::expect_keys(std::initializer_list<std::string_view> known) const {
  expect_object();
  for (const auto& item : value_->items()) {
    bool found = false;
    for (auto k : known) found = found || k == item.key();
    if (!found) {
      throw InputError(*file_, pointer_ + "/" + json_pointer_escape(item.key()),
                       "unknown key (expected one of " + join(known) + ")");
    }
  }
}

std::size_t JsonReader::size() const {
  expect_array();
  return value_->size();
}

JsonReader JsonReader::index(std::size_t i) const {
  expect_array();
  return JsonReader((*value_)[i], file_, pointer_ + "/" + std::to_string(i));
}

int64_t JsonReader::integer(int64_t min, int64_t max) const {
  auto expectation = [&] {
    std::string e = "an integer";
    bool has_min = min != std::numeric_limits<int64_t>::min();
    bool has_max = max != std::numeric_limits<int64_t>::max();
    if (has_min && has_max)
      e += " in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
    else if (has_min)
      e += " >= " + std::to_string(min);
    else if (has_max)
      e += " <= " + std::to_string(max);
    return e;
  };
  int64_t v = 0;
  if (value_->is_number_integer()) {
    if (value_->is_number_unsigned() &&
        value_->get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      fail(expectation());
    v = value_->get<int64_t>();
  } else if (value_->is_number_float()) {
    double d = value_->get<double>();
    // Accept 2e6 or 16.0 where an integer is meant, but not 16.5.
    if (!std::isfinite(d) || std::floor(d) != d || std::fabs(d) > 9.0e18) fail(expectation());
    v = static_cast<int64_t>(d);
  } else {
    fail(expectation());
  }
  if (v < min || v > max) fail(expectation());
  return v;
}

double JsonReader::number(double min, double max) const {
  auto expectation = [&] {
    std::string e = "a number";
    auto fmt = [](double x) {
      std::ostringstream s;
      s << x;
      return s.str();
    };
    bool has_min = std::isfinite(min), has_max = std::isfinite(max);
    if (has_min && has_max)
      e += " in [" + fmt(min) + ", " + fmt(max) + "]";
    else if (has_min)
      e += " >= " + fmt(min);
    else if (has_max)
      e += " <= " + fmt(max);
    return e;
  };
  if (!value_->is_number()) fail(expectation());
  double v = value_->get<double>();
  if (!std::isfinite(v) || v < min || v > max) fail(expectation());
  return v;
}

bool JsonReader::boolean() const {
  if (!value_->is_boolean()) fail("true or false");
  return value_->get<bool>();
}

std::string JsonReader::string() const {
  if (!value_->is_string()) fail("a string");
  return value_->get<std::string>();
}

std::string JsonReader::choice(std::initializer_list<std::string_view> options) const {
  std::string expectation = "one of " + join(options);
  if (!value_->is_string()) fail(expectation);
  auto v = value_->get<std::string>();
  for (auto o : options)
    if (o == v) return v;
  fail(expectation);
}

std::string JsonReader::choice(const std::vector<std::string>& options) const {
  std::string expectation = "one of ";
  for (std::size_t i = 0; i < options.size(); ++i) expectation += (i ? ", " : "") + options[i];
  if (!value_->is_string()) fail(expectation);
  auto v = value_->get<std::string>();
  for (const auto& o : options)
    if (o == v) return v;
  fail(expectation);
}

int64_t JsonReader::integer_or(std::string_view key, int64_t fallback, int64_t min, int64_t max) const {
  auto r = find(key);
  return r ? r->integer(min, max) : fallback;
}

double JsonReader::number_or(std::string_view key, double fallback, double min, double max) const {
  auto r = find(key);
  return r ? r->number(min, max) : fallback;
}

bool JsonReader::boolean_or(std::string_view key, bool fallback) const {
  auto r = find(key);
  return r ? r->boolean() : fallback;
}

std::string JsonReader::string_or(std::string_view key, std::string fallback) const {
  auto r = find(key);
  return r ? r->string() : fallback;
}

}  // namespace livs
