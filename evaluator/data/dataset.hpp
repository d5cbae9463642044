#pragma once
// A loaded corpus, split into training and held-out tokens. The split is a
// pure function of the settings: the validation set is either the separate
// validation files or the last `validation_fraction` of the data, never a
// random sample, so every run and every candidate is scored on the same text.
//
// The files are memory-mapped (token_sequence.hpp), so loading costs the
// headers, not the tokens: a 10-billion-token shard set needs no 20 GB of
// memory, and every worker of a process shares one Dataset.
#include <cstdint>
#include <string>

#include "evaluator/data/data_settings.hpp"
#include "evaluator/data/token_sequence.hpp"

namespace livs::evaluator {

struct Dataset {
  TokenSequence train;
  TokenSequence validation;
  int vocab = 256;
  std::string description;  // one line for logs: files, format, token counts
};

// Up to this many tokens in all, loading checks every token id against the
// vocabulary (about 0.1 s): a bad id in an ordinary data set is reported
// before anything trains. Above it, each file's first kSampledIdsPerFile
// tokens are checked, and the rest where training reads them (a bad id then
// fails the candidates that read it, naming the file and the byte).
constexpr int64_t kFullIdCheckTokens = int64_t(1) << 26;
constexpr int64_t kSampledIdsPerFile = int64_t(1) << 20;

// Maps every file (text or shards), checks it and splits. Throws InputError
// for a bad file, or when either split would be empty.
Dataset load_dataset(const DataSettings& settings);

// The tail split used without validation files: validation is the last
// round(fraction * n) tokens (at least one), train the rest (at least one).
// `source` names the data in the error when there are too few tokens.
void split_tail(const TokenSequence& tokens, double fraction, const std::string& source, Dataset& out);

}  // namespace livs::evaluator
