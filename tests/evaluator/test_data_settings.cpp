#include <doctest/doctest.h>

#include "common/input_error.hpp"
#include "evaluator/data/data_settings.hpp"
#include "test_data_helpers.hpp"

using livs::InputError;
using livs::Json;
using livs::JsonReader;
using livs::evaluator::DataFormat;
using livs::evaluator::parse_data_settings;
using livs::test::shard_bytes;
using livs::test::TempFolder;

namespace {
// Parse `text` as the "data" section of a config file living in `dir`.
livs::evaluator::DataSettings parse_in(const TempFolder& dir, const std::string& text) {
  Json config = Json::parse(std::string("{\"data\": ") + text + "}");
  return parse_data_settings(JsonReader(config, dir.file("config.json")).at("data"));
}

// "pointer: message" of the error that parsing `text` raises.
std::string error_of(const TempFolder& dir, const std::string& text) {
  try {
    parse_in(dir, text);
  } catch (const InputError& e) {
    CHECK(e.file() == dir.file("config.json"));
    REQUIRE(e.problems().size() == 1);
    return e.problems()[0].pointer + ": " + e.problems()[0].message;
  }
  FAIL("expected an InputError");
  return "";
}
}  // namespace

TEST_CASE("data paths are relative to the config's folder, and the format follows the extension") {
  TempFolder dir;
  std::filesystem::create_directories(dir.path() / "corpus");
  dir.write_text("corpus/a.txt", "hello");
  dir.write("corpus/s.bin", shard_bytes({1, 2}));

  auto text = parse_in(dir, R"({"path": "corpus/a.txt"})");
  REQUIRE(text.paths.size() == 1);
  CHECK(text.paths[0] == (dir.path() / "corpus" / "a.txt").string());
  CHECK(text.format == DataFormat::text);
  CHECK(text.vocab == 256);
  CHECK(text.validation_fraction == doctest::Approx(0.1));

  auto shards = parse_in(dir, R"({"path": ["corpus/s.bin", "./corpus/../corpus/s.bin"], "vocab": 1000,
                                  "validation_fraction": 0.25})");
  CHECK(shards.format == DataFormat::tokens);
  CHECK(shards.vocab == 1000);
  CHECK(shards.validation_fraction == doctest::Approx(0.25));
  REQUIRE(shards.paths.size() == 2);
  CHECK(shards.paths[1] == (dir.path() / "corpus" / "s.bin").string());  // normalised

  // Absolute paths stay as they are; an explicit format wins over the extension.
  auto absolute = parse_in(dir, "{\"path\": \"" + dir.file("corpus/s.bin") + "\", \"format\": \"text\"}");
  CHECK(absolute.format == DataFormat::text);
  CHECK(absolute.paths[0] == dir.file("corpus/s.bin"));
  CHECK(std::filesystem::path(text.paths[0]).is_absolute());

  auto tokens_default_vocab = parse_in(dir, R"({"path": "corpus/s.bin", "validation_path": "corpus/s.bin"})");
  CHECK(tokens_default_vocab.vocab == 50257);
  CHECK(tokens_default_vocab.validation_paths.size() == 1);
}

TEST_CASE("data settings errors name the JSON pointer and the expectation") {
  TempFolder dir;
  dir.write_text("a.txt", "hello");
  CHECK(error_of(dir, R"({"path": "nope.txt"})").rfind("/data/path: data file", 0) == 0);
  CHECK(error_of(dir, R"({"path": "nope.txt"})").find("does not exist") != std::string::npos);
  CHECK(error_of(dir, R"({"path": ["a.txt", "gone.txt"]})").rfind("/data/path/1: data file", 0) == 0);
  CHECK(error_of(dir, R"({"path": 3})") ==
        "/data/path: expected a file path or a non-empty array of file paths, got 3");
  CHECK(error_of(dir, R"({"path": []})").rfind("/data/path: expected a file path", 0) == 0);
  CHECK(error_of(dir, R"({})") == "/data: missing required key \"path\"");
  CHECK(error_of(dir, R"("a.txt")") == "/data: expected an object, got \"a.txt\"");
  CHECK(error_of(dir, R"({"path": "a.txt", "format": "utf8"})") ==
        "/data/format: expected one of text, tokens, got \"utf8\"");
  CHECK(error_of(dir, R"({"path": "a.txt", "validation_fraction": 0.9})") ==
        "/data/validation_fraction: expected a number in [1e-06, 0.5], got 0.9");
  CHECK(error_of(dir, R"({"path": "a.txt", "validation_fraction": "0.1"})")
            .rfind("/data/validation_fraction: expected a number", 0) == 0);
  CHECK(error_of(dir, R"({"path": "a.txt", "vocab": 1000})").rfind("/data/vocab: expected 256", 0) == 0);
  CHECK(error_of(dir, R"({"path": "a.txt", "format": "tokens", "vocab": 70000})") ==
        "/data/vocab: expected an integer in [2, 65536], got 70000");
  CHECK(error_of(dir, R"({"path": "a.txt", "pth": "a.txt"})").rfind("/data/pth: unknown key", 0) == 0);
  CHECK(error_of(dir, R"({"path": "a.txt", "validation_path": "a.txt", "validation_fraction": 0.1})") ==
        "/data/validation_fraction: give either validation_fraction or validation_path, not both");
  CHECK(error_of(dir, "{\"path\": \"" + dir.path().string() + "\"}").find("is not a regular file") !=
        std::string::npos);
}

TEST_CASE("resolved data settings print back as JSON") {
  TempFolder dir;
  dir.write_text("a.txt", "hello");
  auto json = to_json(parse_in(dir, R"({"path": "a.txt", "validation_fraction": 0.2})"));
  CHECK(json["path"] == dir.file("a.txt"));
  CHECK(json["format"] == "text");
  CHECK(json["validation_fraction"] == 0.2);
  CHECK(json["vocab"] == 256);
}
