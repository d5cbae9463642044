#include "evaluator/data/token_readers.hpp"

#include <memory>

#include "common/input_error.hpp"
#include "evaluator/data/mapped_file.hpp"

namespace livs::evaluator {

namespace {

std::string byte_place(std::size_t offset) { return "byte " + std::to_string(offset); }

int32_t int32_at(std::span<const unsigned char> bytes, std::size_t offset) {
  uint32_t v = uint32_t(bytes[offset]) | uint32_t(bytes[offset + 1]) << 8 |
               uint32_t(bytes[offset + 2]) << 16 | uint32_t(bytes[offset + 3]) << 24;
  return static_cast<int32_t>(v);
}

std::shared_ptr<const MappedFile> map_file(const std::string& path) {
  return std::make_shared<const MappedFile>(path);
}

}  // namespace

int64_t check_shard_layout(std::span<const unsigned char> bytes, const std::string& path) {
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
  return count;
}

TokenSequence open_token_shard(const std::string& path) {
  auto file = map_file(path);
  const auto bytes = file->bytes();
  TokenSequence::Piece piece;
  piece.count = check_shard_layout(bytes, path);
  piece.bytes = bytes.data() + kShardHeaderBytes;
  piece.width = 2;
  piece.file = path;
  piece.file_offset = kShardHeaderBytes;
  piece.owner = std::move(file);
  TokenSequence tokens;
  tokens.append(std::move(piece));
  return tokens;
}

TokenSequence open_text(const std::string& path) {
  auto file = map_file(path);
  const auto bytes = file->bytes();
  if (bytes.empty()) throw InputError(path, byte_place(0), "expected text, the file is empty");
  TokenSequence::Piece piece;
  piece.count = static_cast<int64_t>(bytes.size());
  piece.bytes = bytes.data();
  piece.width = 1;
  piece.file = path;
  piece.owner = std::move(file);
  TokenSequence tokens;
  tokens.append(std::move(piece));
  return tokens;
}

std::vector<uint16_t> read_text_bytes(const std::string& path) { return open_text(path).to_vector(); }

std::vector<uint16_t> read_token_shard(const std::string& path, int vocab) {
  const TokenSequence tokens = open_token_shard(path);
  tokens.check_ids(0, tokens.size(), vocab);
  return tokens.to_vector();
}

}  // namespace livs::evaluator
