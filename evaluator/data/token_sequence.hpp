#pragma once
// A read-only sequence of token ids that lives in one or more pieces: mapped
// files (shards, text) or bytes in memory. Nothing is copied when a data set
// is loaded or split; training copies one window at a time.
//
// Token ids are checked against the vocabulary where they are read
// (copy_checked), so a shard too large to scan up front still cannot feed an
// id outside the embedding to a model: the bad id is an InputError naming the
// file and the byte, never an out-of-bounds read.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace livs::evaluator {

class TokenSequence {
 public:
  // A run of tokens inside one file (or in memory), each `width` bytes:
  // 1 for byte-level text, 2 for little-endian uint16 shard tokens.
  struct Piece {
    std::shared_ptr<const void> owner;  // keeps the mapping or the buffer alive
    const unsigned char* bytes = nullptr;
    int64_t count = 0;
    int width = 2;
    std::string file;         // named in errors
    int64_t file_offset = 0;  // byte offset of bytes[0] in that file
  };

  TokenSequence() = default;
  // In-memory tokens (tests, generated data); copied once.
  TokenSequence(const std::vector<uint16_t>& tokens);  // NOLINT: implicit on purpose
  TokenSequence(std::span<const uint16_t> tokens);     // NOLINT

  void append(Piece piece);
  void append(const TokenSequence& other);

  int64_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  uint16_t operator[](int64_t index) const;  // unchecked against any vocabulary
  uint16_t front() const { return (*this)[0]; }
  uint16_t back() const { return (*this)[size_ - 1]; }

  // Tokens [start, start + count) into `out`, each checked to be < vocab;
  // throws InputError("FILE", "byte N", "expected a token id < vocab V, got X").
  void copy_checked(int64_t start, int64_t count, int vocab, int32_t* out) const;
  // The same check without copying, over [start, start + count).
  void check_ids(int64_t start, int64_t count, int vocab) const;

  // A view of [start, start + count): shares the pieces, copies nothing.
  TokenSequence slice(int64_t start, int64_t count) const;
  std::vector<uint16_t> to_vector() const;  // for tests and small data
  const std::vector<Piece>& pieces() const { return pieces_; }

  bool operator==(const std::vector<uint16_t>& tokens) const { return to_vector() == tokens; }
  bool operator==(const TokenSequence& other) const { return to_vector() == other.to_vector(); }

 private:
  // Calls visit(piece, first index in piece, count in piece) for each piece
  // overlapping [start, start + count), in order.
  template <typename Visit>
  void for_each_run(int64_t start, int64_t count, Visit visit) const;

  std::vector<Piece> pieces_;
  std::vector<int64_t> starts_;  // starts_[i]: index of pieces_[i]'s first token
  int64_t size_ = 0;
};

}  // namespace livs::evaluator
