#include "evaluator/data/dataset.hpp"

#include <algorithm>
#include <cmath>

#include "common/input_error.hpp"
#include "evaluator/data/token_readers.hpp"

namespace livs::evaluator {

namespace {

TokenSequence open_files(const std::vector<std::string>& paths, const DataSettings& settings) {
  TokenSequence tokens;
  for (const auto& path : paths)
    tokens.append(settings.format == DataFormat::text ? open_text(path) : open_token_shard(path));
  return tokens;
}

// See kFullIdCheckTokens: all ids of a data set of ordinary size, a bounded
// sample of each file of a larger one. Text bytes are < 256 by construction.
void check_ids_up_front(const TokenSequence& train, const TokenSequence& validation, int vocab) {
  const bool everything = train.size() + validation.size() <= kFullIdCheckTokens;
  for (const TokenSequence* tokens : {&train, &validation}) {
    int64_t start = 0;
    for (const auto& piece : tokens->pieces()) {
      const int64_t count = everything ? piece.count : std::min(piece.count, kSampledIdsPerFile);
      tokens->check_ids(start, count, vocab);
      start += piece.count;
    }
  }
}

std::string join_paths(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) {
    if (!out.empty()) out += ", ";
    out += p;
  }
  return out;
}

}  // namespace

void split_tail(const TokenSequence& tokens, double fraction, const std::string& source, Dataset& out) {
  const int64_t n = tokens.size();
  if (n < 2) {
    throw InputError(
        source, "",
        "expected at least 2 tokens to split into training and validation, got " + std::to_string(n));
  }
  auto held_out = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
  held_out = std::clamp<int64_t>(held_out, 1, n - 1);
  out.validation = tokens.slice(n - held_out, held_out);
  out.train = tokens.slice(0, n - held_out);
}

Dataset load_dataset(const DataSettings& settings) {
  Dataset data;
  data.vocab = settings.vocab;
  const std::string sources = join_paths(settings.paths);
  const TokenSequence tokens = open_files(settings.paths, settings);
  std::string split;
  if (settings.validation_paths.empty()) {
    split_tail(tokens, settings.validation_fraction, sources, data);
    split = "validation = last " + std::to_string(data.validation.size()) + " tokens";
  } else {
    data.train = tokens;
    data.validation = open_files(settings.validation_paths, settings);
    split = "validation " + std::to_string(data.validation.size()) + " tokens from " +
            join_paths(settings.validation_paths);
  }
  if (settings.format == DataFormat::tokens) check_ids_up_front(data.train, data.validation, data.vocab);
  data.description = sources + " (" + to_string(settings.format) + ", vocab " + std::to_string(data.vocab) +
                     "): train " + std::to_string(data.train.size()) + " tokens, " + split;
  return data;
}

}  // namespace livs::evaluator
