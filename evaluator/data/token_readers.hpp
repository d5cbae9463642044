#pragma once
// Reading training data into token ids. Two formats:
//  - raw text, byte-level: every byte is one token (vocabulary 256);
//  - llm.c / nanoGPT shards: a 1024-byte header of 256 little-endian int32
//    (magic 20240520, version 1, token count, the rest unused), then exactly
//    that many little-endian uint16 tokens.
// A malformed file is an InputError naming the file, the byte offset and what
// was expected; nothing here trusts the file.
#include <cstdint>
#include <string>
#include <vector>

namespace livs::evaluator {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;
constexpr std::size_t kShardHeaderBytes = 1024;

// Every byte of the file as a token in [0, 256). An empty file is an error.
std::vector<uint16_t> read_text_bytes(const std::string& path);

// The tokens of one shard; every token id must be < vocab.
std::vector<uint16_t> read_token_shard(const std::string& path, int vocab);

}  // namespace livs::evaluator
