#include "evaluator/data/dataset.hpp"

#include <algorithm>
#include <cmath>

#include "common/input_error.hpp"
#include "evaluator/data/token_readers.hpp"

namespace livs::evaluator {

namespace {

std::vector<uint16_t> read_files(const std::vector<std::string>& paths, const DataSettings& settings) {
  std::vector<uint16_t> tokens;
  for (const auto& path : paths) {
    auto part =
        settings.format == DataFormat::text ? read_text_bytes(path) : read_token_shard(path, settings.vocab);
    tokens.insert(tokens.end(), part.begin(), part.end());
  }
  return tokens;
}

std::string join_paths(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) out += (out.empty() ? "" : ", ") + p;
  return out;
}

}  // namespace

void split_tail(std::vector<uint16_t> tokens, double fraction, const std::string& source, Dataset& out) {
  const std::size_t n = tokens.size();
  if (n < 2) {
    throw InputError(
        source, "",
        "expected at least 2 tokens to split into training and validation, got " + std::to_string(n));
  }
  auto held_out = static_cast<std::size_t>(std::llround(fraction * static_cast<double>(n)));
  held_out = std::clamp<std::size_t>(held_out, 1, n - 1);
  out.validation.assign(tokens.end() - static_cast<std::ptrdiff_t>(held_out), tokens.end());
  tokens.resize(n - held_out);
  out.train = std::move(tokens);
}

Dataset load_dataset(const DataSettings& settings) {
  Dataset data;
  data.vocab = settings.vocab;
  const std::string sources = join_paths(settings.paths);
  auto tokens = read_files(settings.paths, settings);
  std::string split;
  if (settings.validation_paths.empty()) {
    split_tail(std::move(tokens), settings.validation_fraction, sources, data);
    split = "validation = last " + std::to_string(data.validation.size()) + " tokens";
  } else {
    data.train = std::move(tokens);
    data.validation = read_files(settings.validation_paths, settings);
    split = "validation " + std::to_string(data.validation.size()) + " tokens from " +
            join_paths(settings.validation_paths);
  }
  data.description = sources + " (" + to_string(settings.format) + ", vocab " + std::to_string(data.vocab) +
                     "): train " + std::to_string(data.train.size()) + " tokens, " + split;
  return data;
}

}  // namespace livs::evaluator
