#include "evaluator/data/token_readers.hpp"

#include <fstream>
#include <iterator>

#include "common/input_error.hpp"

namespace livs::evaluator {

namespace {

std::string byte_place(std::size_t offset) { return "byte " + std::to_string(offset); }

std::vector<unsigned char> read_all_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "", "cannot open file for reading");
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw InputError(path, "", "read error");
  return bytes;
}

// Little-endian decoding from bytes, so the result does not depend on the host.
int32_t int32_at(const std::vector<unsigned char>& bytes, std::size_t offset) {
  uint32_t v = uint32_t(bytes[offset]) | uint32_t(bytes[offset + 1]) << 8 |
               uint32_t(bytes[offset + 2]) << 16 | uint32_t(bytes[offset + 3]) << 24;
  return static_cast<int32_t>(v);
}

uint16_t uint16_at(const std::vector<unsigned char>& bytes, std::size_t offset) {
  return static_cast<uint16_t>(bytes[offset] | bytes[offset + 1] << 8);
}

}  // namespace

std::vector<uint16_t> read_text_bytes(const std::string& path) {
  const auto bytes = read_all_bytes(path);
  if (bytes.empty()) throw InputError(path, byte_place(0), "expected text, the file is empty");
  return std::vector<uint16_t>(bytes.begin(), bytes.end());
}

std::vector<uint16_t> read_token_shard(const std::string& path, int vocab) {
  const auto bytes = read_all_bytes(path);
  if (bytes.size() < kShardHeaderBytes) {
    throw InputError(path, byte_place(bytes.size()),
                     "expected a " + std::to_string(kShardHeaderBytes) +
                         "-byte llm.c shard header, the file ends after " + std::to_string(bytes.size()) +
                         " bytes");
  }
  const int32_t magic = int32_at(bytes, 0);
  if (magic != kShardMagic) {
    throw InputError(path, byte_place(0),
                     "expected the llm.c shard magic " + std::to_string(kShardMagic) + ", got " +
                         std::to_string(magic) + " (not a token shard; use format \"text\" for raw text)");
  }
  const int32_t version = int32_at(bytes, 4);
  if (version != kShardVersion) {
    throw InputError(path, byte_place(4),
                     "expected shard version " + std::to_string(kShardVersion) + " (uint16 tokens), got " +
                         std::to_string(version));
  }
  const int32_t count = int32_at(bytes, 8);
  if (count <= 0) {
    throw InputError(path, byte_place(8), "expected a positive token count, got " + std::to_string(count));
  }
  const std::size_t payload = bytes.size() - kShardHeaderBytes;
  const std::size_t expected_payload = 2 * static_cast<std::size_t>(count);
  if (payload < expected_payload) {
    throw InputError(path, byte_place(bytes.size()),
                     "file truncated: the header promises " + std::to_string(count) + " tokens (" +
                         std::to_string(kShardHeaderBytes + expected_payload) + " bytes), the file has " +
                         std::to_string(bytes.size()) + " bytes");
  }
  if (payload > expected_payload) {
    throw InputError(path, byte_place(kShardHeaderBytes + expected_payload),
                     "token count mismatch: the header says " + std::to_string(count) +
                         " tokens, the file holds " + std::to_string(payload / 2) +
                         (payload % 2 ? " and a half" : "") + " tokens");
  }
  std::vector<uint16_t> tokens(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::size_t offset = kShardHeaderBytes + 2 * i;
    tokens[i] = uint16_at(bytes, offset);
    if (tokens[i] >= vocab) {
      throw InputError(path, byte_place(offset),
                       "expected a token id < vocab " + std::to_string(vocab) + ", got " +
                           std::to_string(tokens[i]) + " (token " + std::to_string(i) + ")");
    }
  }
  return tokens;
}

}  // namespace livs::evaluator
