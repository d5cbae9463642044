// The safetensors reader and writer: a round trip keeps names, dtypes,
// shapes, values and metadata; the layout is the format's (8-byte length,
// JSON header padded to 8, contiguous data); every kind of broken file is an
// InputError naming the file, never a crash.
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "common/input_error.hpp"
#include "export/safetensors.hpp"
#include "tests/db/temp_dir.hpp"

using namespace livs::exports;
using livs::InputError;
using livs::test::TempDir;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A file with this header text and `data_bytes` zero bytes of data.
std::string file_with_header(const TempDir& dir, const std::string& header, std::size_t data_bytes) {
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  return dir.write("broken.safetensors", bytes + header + std::string(data_bytes, '\0'));
}

std::string error_of(const std::string& path) {
  try {
    read_safetensors(path);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("safetensors: a round trip keeps every tensor and the metadata") {
  TempDir dir;
  const auto path = dir.file("a.safetensors");
  const std::vector<float> weights = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f};
  const std::vector<int32_t> tokens = {1, 2, 65535, -1};
  write_safetensors(path,
                    {f32_tensor("slots.0.ops.0.wq", {2, 3}, weights), i32_tensor("tokens", {4}, tokens),
                     f32_tensor("empty", {0, 3}, {})},
                    {{"format", "pt"}});
  const Safetensors file = read_safetensors(path);
  REQUIRE(file.tensors.size() == 3);
  const Tensor* w = file.find("slots.0.ops.0.wq");
  REQUIRE(w);
  CHECK(w->dtype == Dtype::f32);
  CHECK(w->shape == std::vector<int64_t>{2, 3});
  CHECK(f32_values(*w) == weights);
  const Tensor* t = file.find("tokens");
  REQUIRE(t);
  CHECK(t->dtype == Dtype::i32);
  std::vector<int32_t> back(4);
  std::memcpy(back.data(), t->bytes.data(), 16);
  CHECK(back == tokens);
  CHECK(file.find("empty")->numel() == 0);
  CHECK(file.metadata.at("format") == "pt");
  CHECK_THROWS_AS(f32_values(*t), std::logic_error);

  // The layout: the header length, then the header padded so the data is 8-byte aligned.
  const std::string bytes = read_bytes(path);
  uint64_t header = 0;
  std::memcpy(&header, bytes.data(), 8);
  CHECK((8 + header) % 8 == 0);
  CHECK(bytes.size() == 8 + header + 6 * 4 + 4 * 4);
}

TEST_CASE("safetensors: the writer refuses repeated names and sizes that do not fit the shape") {
  TempDir dir;
  CHECK_THROWS_AS(
      write_safetensors(dir.file("x"), {f32_tensor("a", {1}, {1.0f}), f32_tensor("a", {1}, {2.0f})}),
      std::invalid_argument);
  CHECK_THROWS_AS(f32_tensor("a", {2, 2}, {1.0f}), std::invalid_argument);
  CHECK_THROWS_AS(write_safetensors(dir.file("y"), {f32_tensor("__metadata__", {1}, {1.0f})}),
                  std::invalid_argument);
}

TEST_CASE("safetensors: broken files are input errors naming the file and the tensor") {
  TempDir dir;
  CHECK(error_of(dir.file("missing.safetensors")).find("cannot open") != std::string::npos);
  CHECK(error_of(dir.write("short.safetensors", "abc")).find("fewer than the 8-byte") != std::string::npos);
  CHECK(error_of(file_with_header(dir, "{}", 0)) == "");  // an empty file is valid
  {
    std::string bytes(8, '\0');
    bytes[0] = '\x7f';  // a header longer than the file
    CHECK(error_of(dir.write("long.safetensors", bytes + "{}")).find("exceeds") != std::string::npos);
  }
  CHECK(error_of(file_with_header(dir, "{not json", 0)).find("not valid JSON") != std::string::npos);
  CHECK(error_of(file_with_header(dir, "[1]", 0)).find("not a JSON object") != std::string::npos);
  const std::string bad_dtype = error_of(
      file_with_header(dir, R"({"w": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}})", 1));
  CHECK(bad_dtype.find("broken.safetensors: tensor w: dtype \"F8_E4M3\"") != std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", 4))
            .find("outside the 4 bytes") != std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", 8))
            .find("needs 12") != std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8))
            .find("starts at byte 4, expected 0") != std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 8))
            .find("cover 4 of the 8") != std::string::npos);
  CHECK(
      error_of(file_with_header(dir, R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4))
          .find("array of sizes") != std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"w": {"dtype": "F32"}})", 0)).find("data_offsets") !=
        std::string::npos);
  CHECK(error_of(file_with_header(dir, R"({"__metadata__": {"a": 1}})", 0)).find("expected a string") !=
        std::string::npos);
}
