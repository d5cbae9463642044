#include "evaluator/data/token_sequence.hpp"

#include <algorithm>
#include <stdexcept>

#include "common/input_error.hpp"

namespace livs::evaluator {

namespace {

// Little-endian decoding from bytes, so the result does not depend on the host.
uint16_t token_at(const TokenSequence::Piece& piece, int64_t index) {
  const unsigned char* p = piece.bytes + index * piece.width;
  return piece.width == 1 ? p[0] : static_cast<uint16_t>(p[0] | p[1] << 8);
}

[[noreturn]] void bad_id(const TokenSequence::Piece& piece, int64_t index, uint16_t id, int vocab) {
  throw InputError(piece.file, "byte " + std::to_string(piece.file_offset + index * piece.width),
                   "expected a token id < vocab " + std::to_string(vocab) + ", got " + std::to_string(id));
}

TokenSequence::Piece owned_piece(std::span<const uint16_t> tokens) {
  auto bytes = std::make_shared<std::vector<unsigned char>>(2 * tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    (*bytes)[2 * i] = static_cast<unsigned char>(tokens[i] & 0xff);
    (*bytes)[2 * i + 1] = static_cast<unsigned char>(tokens[i] >> 8);
  }
  TokenSequence::Piece piece;
  piece.bytes = bytes->data();
  piece.count = static_cast<int64_t>(tokens.size());
  piece.width = 2;
  piece.file = "<tokens in memory>";
  piece.owner = std::move(bytes);
  return piece;
}

}  // namespace

TokenSequence::TokenSequence(const std::vector<uint16_t>& tokens)
    : TokenSequence(std::span<const uint16_t>(tokens)) {}

TokenSequence::TokenSequence(std::span<const uint16_t> tokens) {
  if (!tokens.empty()) append(owned_piece(tokens));
}

void TokenSequence::append(Piece piece) {
  if (piece.count <= 0) return;
  starts_.push_back(size_);
  size_ += piece.count;
  pieces_.push_back(std::move(piece));
}

void TokenSequence::append(const TokenSequence& other) {
  for (const auto& piece : other.pieces_) append(piece);
}

template <typename Visit>
void TokenSequence::for_each_run(int64_t start, int64_t count, Visit visit) const {
  if (start < 0 || count < 0 || start > size_ - count)
    throw std::out_of_range("tokens [" + std::to_string(start) + ", " + std::to_string(start + count) +
                            ") outside a sequence of " + std::to_string(size_));
  if (count == 0) return;
  // The last piece starting at or before `start`.
  auto i =
      static_cast<std::size_t>(std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin() - 1);
  for (; count > 0; ++i) {
    const int64_t first = start - starts_[i];
    const int64_t run = std::min(count, pieces_[i].count - first);
    visit(pieces_[i], first, run);
    start += run;
    count -= run;
  }
}

uint16_t TokenSequence::operator[](int64_t index) const {
  uint16_t value = 0;
  for_each_run(index, 1, [&](const Piece& piece, int64_t first, int64_t) { value = token_at(piece, first); });
  return value;
}

void TokenSequence::copy_checked(int64_t start, int64_t count, int vocab, int32_t* out) const {
  for_each_run(start, count, [&](const Piece& piece, int64_t first, int64_t run) {
    for (int64_t k = first; k < first + run; ++k) {
      const uint16_t id = token_at(piece, k);
      if (id >= vocab) bad_id(piece, k, id, vocab);
      *out++ = id;
    }
  });
}

void TokenSequence::check_ids(int64_t start, int64_t count, int vocab) const {
  for_each_run(start, count, [&](const Piece& piece, int64_t first, int64_t run) {
    for (int64_t k = first; k < first + run; ++k) {
      const uint16_t id = token_at(piece, k);
      if (id >= vocab) bad_id(piece, k, id, vocab);
    }
  });
}

TokenSequence TokenSequence::slice(int64_t start, int64_t count) const {
  TokenSequence out;
  for_each_run(start, count, [&](const Piece& piece, int64_t first, int64_t run) {
    Piece part = piece;
    part.bytes = piece.bytes + first * piece.width;
    part.file_offset = piece.file_offset + first * piece.width;
    part.count = run;
    out.append(std::move(part));
  });
  return out;
}

std::vector<uint16_t> TokenSequence::to_vector() const {
  std::vector<uint16_t> tokens;
  tokens.reserve(static_cast<std::size_t>(size_));
  for (const auto& piece : pieces_)
    for (int64_t k = 0; k < piece.count; ++k) tokens.push_back(token_at(piece, k));
  return tokens;
}

}  // namespace livs::evaluator
