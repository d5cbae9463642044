#include <doctest/doctest.h>

#include "common/input_error.hpp"
#include "evaluator/data/dataset.hpp"
#include "test_data_helpers.hpp"

using livs::InputError;
using livs::evaluator::DataFormat;
using livs::evaluator::DataSettings;
using livs::evaluator::load_dataset;
using livs::test::shard_bytes;
using livs::test::TempFolder;

TEST_CASE("text: validation is the last fraction of the bytes, train the rest") {
  TempFolder dir;
  DataSettings settings;
  settings.paths = {dir.write_text("t.txt", "0123456789abcdefghij")};  // 20 bytes
  settings.validation_fraction = 0.25;
  auto data = load_dataset(settings);
  CHECK(data.vocab == 256);
  REQUIRE(data.train.size() == 15);
  REQUIRE(data.validation.size() == 5);
  CHECK(data.train.front() == '0');
  CHECK(data.train.back() == 'e');
  CHECK(data.validation.front() == 'f');
  CHECK(data.validation.back() == 'j');
  CHECK(data.description.find("train 15 tokens") != std::string::npos);
  // Deterministic: the same settings give the same split.
  auto again = load_dataset(settings);
  CHECK(again.train == data.train);
  CHECK(again.validation == data.validation);
}

TEST_CASE("shards are concatenated in order, and a tiny fraction still holds out one token") {
  TempFolder dir;
  DataSettings settings;
  settings.format = DataFormat::tokens;
  settings.vocab = 1000;
  settings.paths = {dir.write("a.bin", shard_bytes({1, 2, 3})), dir.write("b.bin", shard_bytes({4, 999}))};
  settings.validation_fraction = 1e-6;
  auto data = load_dataset(settings);
  CHECK(data.train == std::vector<uint16_t>{1, 2, 3, 4});
  CHECK(data.validation == std::vector<uint16_t>{999});
}

TEST_CASE("separate validation files replace the tail split") {
  TempFolder dir;
  DataSettings settings;
  settings.format = DataFormat::tokens;
  settings.vocab = 100;
  settings.paths = {dir.write("train.bin", shard_bytes({5, 6, 7, 8}))};
  settings.validation_paths = {dir.write("val.bin", shard_bytes({9, 10}))};
  auto data = load_dataset(settings);
  CHECK(data.train == std::vector<uint16_t>{5, 6, 7, 8});
  CHECK(data.validation == std::vector<uint16_t>{9, 10});
  // A bad validation shard is reported against its own file.
  settings.validation_paths = {dir.write("bad_val.bin", shard_bytes({9, 100}))};
  try {
    load_dataset(settings);
    FAIL("expected an error");
  } catch (const InputError& e) {
    CHECK(e.file() == dir.file("bad_val.bin"));
    CHECK(e.problems().at(0).pointer == "byte 1026");
  }
}

TEST_CASE("a corpus too small to split is an input error") {
  TempFolder dir;
  DataSettings settings;
  settings.paths = {dir.write_text("one.txt", "x")};
  CHECK_THROWS_WITH_AS(load_dataset(settings), doctest::Contains("at least 2 tokens"), InputError);
}

TEST_CASE("the shipped corpus loads: 4,137,850 bytes, last 10% held out") {
  DataSettings settings;
  settings.paths = {std::string(LIVSEARCH_SOURCE_DIR) + "/data/kjv.txt"};
  auto data = load_dataset(settings);
  CHECK(data.train.size() + data.validation.size() == 4137850);
  CHECK(data.validation.size() == 413785);
  // The corpus ends with the last verse of Revelation.
  const auto validation = data.validation.to_vector();
  std::string tail(validation.end() - 11, validation.end());
  CHECK(tail == "all. Amen.\n");
}
