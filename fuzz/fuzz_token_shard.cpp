// libFuzzer target: the llm.c token-shard reader on arbitrary bytes. The
// layout check must accept or reject every input with an InputError, and an
// accepted shard's tokens must read back in bounds with every id checked.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/input_error.hpp"
#include "evaluator/data/token_readers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace livs::evaluator;
  const std::span<const unsigned char> bytes(data, size);
  try {
    const int64_t count = check_shard_layout(bytes, "<fuzz>");
    // An accepted layout: the tokens are exactly the rest of the input.
    if (kShardHeaderBytes + 2 * static_cast<std::size_t>(count) != size) __builtin_trap();
    TokenSequence::Piece piece;
    piece.bytes = data + kShardHeaderBytes;
    piece.count = count;
    piece.width = 2;
    piece.file = "<fuzz>";
    piece.file_offset = kShardHeaderBytes;
    TokenSequence tokens;
    tokens.append(piece);
    const int vocab = size > 12 ? 1 + data[12] * 256 + data[13 % size] : 50257;
    std::vector<int32_t> window(static_cast<std::size_t>(count));
    tokens.copy_checked(0, count, vocab, window.data());
    if (count > 2) (void)tokens.slice(1, count - 2).to_vector();
  } catch (const livs::InputError&) {
    // A rejected file: the expected outcome for most inputs.
  }
  return 0;
}
