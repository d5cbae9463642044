#include <doctest/doctest.h>

#include "common/input_error.hpp"
#include "evaluator/data/token_readers.hpp"
#include "test_data_helpers.hpp"

using livs::InputError;
using livs::evaluator::read_text_bytes;
using livs::evaluator::read_token_shard;
using livs::test::shard_bytes;
using livs::test::TempFolder;

namespace {
// The single problem of an InputError as "place: message".
std::string problem_of(const InputError& e) {
  REQUIRE(e.problems().size() == 1);
  return e.problems()[0].pointer + ": " + e.problems()[0].message;
}
}  // namespace

TEST_CASE("text is read byte by byte, every byte value kept") {
  TempFolder dir;
  std::vector<unsigned char> bytes;
  for (int b = 255; b >= 0; --b) bytes.push_back(static_cast<unsigned char>(b));
  auto path = dir.write("all_bytes.txt", bytes);
  auto tokens = read_text_bytes(path);
  REQUIRE(tokens.size() == 256);
  CHECK(tokens.front() == 255);
  CHECK(tokens[200] == 55);
  CHECK(tokens.back() == 0);
}

TEST_CASE("an empty or missing text file is an input error naming the file") {
  TempFolder dir;
  auto empty = dir.write_text("empty.txt", "");
  try {
    read_text_bytes(empty);
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(e.file() == empty);
    CHECK(problem_of(e).find("empty") != std::string::npos);
  }
  CHECK_THROWS_AS(read_text_bytes(dir.file("missing.txt")), InputError);
}

TEST_CASE("a well-formed llm.c shard reads back its tokens in order") {
  TempFolder dir;
  std::vector<uint16_t> tokens = {0, 1, 255, 256, 50256, 7, 65535 % 50257};
  auto path = dir.write("good.bin", shard_bytes(tokens));
  CHECK(read_token_shard(path, 50257) == tokens);
  // The full uint16 range with the largest vocabulary.
  auto wide = dir.write("wide.bin", shard_bytes({65535, 0, 40000}));
  CHECK(read_token_shard(wide, 65536) == std::vector<uint16_t>{65535, 0, 40000});
}

TEST_CASE("broken shards: each problem named with its byte offset") {
  TempFolder dir;
  struct Case {
    const char* name;
    std::vector<unsigned char> bytes;
    std::string expected;  // "byte N: <part of the message>"
  };
  auto truncated = shard_bytes({1, 2, 3, 4});
  truncated.resize(truncated.size() - 3);  // the last token and a half are gone
  auto trailing = shard_bytes({1, 2, 3});
  trailing.push_back(9);
  trailing.push_back(0);  // one token more than the header says
  std::vector<Case> cases = {
      {"short_header.bin", std::vector<unsigned char>(100, 0),
       "byte 100: expected a 1024-byte llm.c shard header"},
      {"bad_magic.bin", shard_bytes({1, 2}, 20240521),
       "byte 0: expected the llm.c shard magic 20240520, got 20240521"},
      {"bad_version.bin", shard_bytes({1, 2}, 20240520, 2), "byte 4: expected shard version 1"},
      {"zero_count.bin", shard_bytes({}, 20240520, 1, 0), "byte 8: expected a positive token count, got 0"},
      {"truncated.bin", truncated, "byte 1029: file truncated: the header promises 4 tokens (1032 bytes)"},
      {"trailing.bin", trailing,
       "byte 1030: token count mismatch: the header says 3 tokens, the file holds 4"},
      {"big_token.bin", shard_bytes({5, 6, 300, 7}), "byte 1028: expected a token id < vocab 300, got 300"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    auto path = dir.write(c.name, c.bytes);
    try {
      read_token_shard(path, 300);
      FAIL("expected an error");
    } catch (const InputError& e) {
      const std::string problem = problem_of(e);
      CAPTURE(problem);
      CHECK(e.file() == path);
      CHECK(problem.rfind(c.expected, 0) == 0);
    }
  }
}

TEST_CASE("raw text is not mistaken for a shard") {
  TempFolder dir;
  std::string text(2000, 'a');
  auto path = dir.write_text("text.bin", text);
  CHECK_THROWS_WITH_AS(read_token_shard(path, 256), doctest::Contains("magic"), InputError);
}
