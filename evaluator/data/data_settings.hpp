#pragma once
// The config's "data" section: which corpus to train and validate on, and how
// to read it. Paths are resolved against the config file's folder and made
// absolute, so a config means the same thing from any working directory.
#include <string>
#include <vector>

#include "common/json_reader.hpp"

namespace livs::evaluator {

enum class DataFormat {
  text,   // raw bytes, one token per byte, vocabulary 256 (no tokenizer needed)
  tokens  // llm.c / nanoGPT uint16 shards: 1024-byte header, then uint16 tokens
};

const char* to_string(DataFormat format);

struct DataSettings {
  std::vector<std::string> paths;             // absolute; concatenated in order
  std::vector<std::string> validation_paths;  // resolved; empty: split off the tail of `paths`
  DataFormat format = DataFormat::text;
  double validation_fraction = 0.1;  // used only without validation_paths
  int vocab = 256;                   // 256 for text; the tokenizer's size for tokens
};

// Largest vocabulary a uint16 shard can address.
constexpr int kMaxTokenVocab = 65536;
// GPT-2's vocabulary: what llm.c / nanoGPT shards hold unless the config says otherwise.
constexpr int kDefaultTokenVocab = 50257;

// Validates the section and checks that every file exists, so a typo in a path
// is reported against the config (file, JSON pointer) before any work starts.
//   path                 string or array of strings (required)
//   format               "text" | "tokens" (default: "tokens" for .bin files, else "text")
//   validation_fraction  number in (0, 0.5] (default 0.1): the last part of the data
//   validation_path      string or array of strings: a separate held-out set instead
//   vocab                integer (tokens only; default 50257, at most 65536)
DataSettings parse_data_settings(const livs::JsonReader& section);

// The resolved settings, as `livsearch check` prints them.
Json to_json(const DataSettings& settings);

}  // namespace livs::evaluator
