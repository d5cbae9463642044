#include "evaluator/data/data_settings.hpp"

#include <filesystem>

namespace livs::evaluator {

namespace fs = std::filesystem;

const char* to_string(DataFormat format) {
  switch (format) {
    case DataFormat::text:
      return "text";
    case DataFormat::tokens:
      return "tokens";
  }
  return "?";
}

namespace {

// A path in a config is relative to the folder the config lives in.
std::string resolve_path(const livs::JsonReader& where) {
  const std::string written = where.string();
  if (written.empty()) where.fail("a non-empty file path");
  fs::path path(written);
  if (path.is_relative()) path = fs::path(where.file()).parent_path() / path;
  // Absolute, so the settings mean the same file from any working directory
  // (they are stored with a run and used again on resume).
  std::error_code error;
  path = fs::absolute(path, error).lexically_normal();
  const auto status = fs::status(path, error);
  if (!fs::exists(status))
    where.fail_message("data file \"" + written + "\" does not exist (looked for " + path.string() + ")");
  if (!fs::is_regular_file(status)) where.fail_message("\"" + path.string() + "\" is not a regular file");
  return path.string();
}

// "path": "a.bin" or ["a.bin", "b.bin"].
std::vector<std::string> resolve_paths(const livs::JsonReader& where) {
  std::vector<std::string> out;
  if (where.value().is_array()) {
    if (where.size() == 0) where.fail("a file path or a non-empty array of file paths");
    for (std::size_t i = 0; i < where.size(); ++i) out.push_back(resolve_path(where.index(i)));
  } else if (where.value().is_string()) {
    out.push_back(resolve_path(where));
  } else {
    where.fail("a file path or a non-empty array of file paths");
  }
  return out;
}

bool has_extension(const std::string& path, const char* extension) {
  return fs::path(path).extension() == extension;
}

}  // namespace

DataSettings parse_data_settings(const livs::JsonReader& section) {
  section.expect_keys({"path", "format", "validation_fraction", "validation_path", "vocab"});
  DataSettings settings;
  settings.paths = resolve_paths(section.at("path"));

  if (auto format = section.find("format")) {
    settings.format = format->choice({"text", "tokens"}) == "text" ? DataFormat::text : DataFormat::tokens;
  } else {
    settings.format = has_extension(settings.paths.front(), ".bin") ? DataFormat::tokens : DataFormat::text;
  }

  if (auto validation = section.find("validation_path")) {
    if (section.has("validation_fraction")) {
      section.at("validation_fraction")
          .fail_message("give either validation_fraction or validation_path, not both");
    }
    settings.validation_paths = resolve_paths(*validation);
  }
  // Half the data is the most that can sensibly be held out; 0 would leave nothing to score.
  settings.validation_fraction = section.number_or("validation_fraction", 0.1, 1e-6, 0.5);

  if (settings.format == DataFormat::text) {
    if (auto vocab = section.find("vocab"); vocab && vocab->integer() != 256) {
      vocab->fail("256 (text is read byte by byte; a vocabulary applies to format \"tokens\")");
    }
    settings.vocab = 256;
  } else {
    settings.vocab = static_cast<int>(section.integer_or("vocab", kDefaultTokenVocab, 2, kMaxTokenVocab));
  }
  return settings;
}

Json to_json(const DataSettings& settings) {
  Json out = Json::object();
  out["path"] = settings.paths.size() == 1 ? Json(settings.paths.front()) : Json(settings.paths);
  out["format"] = to_string(settings.format);
  if (settings.validation_paths.empty()) {
    out["validation_fraction"] = settings.validation_fraction;
  } else {
    out["validation_path"] = settings.validation_paths.size() == 1 ? Json(settings.validation_paths.front())
                                                                   : Json(settings.validation_paths);
  }
  out["vocab"] = settings.vocab;
  return out;
}

}  // namespace livs::evaluator
