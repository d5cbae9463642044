#pragma once
// Reading training data as token ids. Two formats:
//  - raw text, byte-level: every byte is one token (vocabulary 256);
//  - llm.c / nanoGPT shards: a 1024-byte header of 256 little-endian int32
//    (magic 20240520, version 1, token count, the rest unused), then exactly
//    that many little-endian uint16 tokens.
// Files are memory-mapped, never copied (evaluator/data/mapped_file.hpp):
// opening one checks what can be checked without reading every token (the
// header, and that the size matches the count); the token ids are checked
// against the vocabulary where they are read (token_sequence.hpp).
// A malformed file is an InputError naming the file, the byte offset and what
// was expected; nothing here trusts the file.
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "evaluator/data/token_sequence.hpp"

namespace livs::evaluator {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr std::size_t kShardHeaderBytes = 1024;

// Checks a whole shard's header and size (not its token ids); returns the
// token count. `path` names it in errors. Pure: what the fuzzer drives.
int64_t check_shard_layout(std::span<const unsigned char> bytes, const std::string& path);

// The file mapped, checked as above, as a sequence of its tokens.
TokenSequence open_token_shard(const std::string& path);
// Every byte of the file as a token in [0, 256); an empty file is an error.
TokenSequence open_text(const std::string& path);

// The same, copied into memory with every id checked (< vocab for shards):
// for tests and small files.
std::vector<uint16_t> read_text_bytes(const std::string& path);
std::vector<uint16_t> read_token_shard(const std::string& path, int vocab);

}  // namespace livs::evaluator
