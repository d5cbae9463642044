#pragma once
// A loaded corpus, split into training and held-out tokens. The split is a
// pure function of the settings: the validation set is either the separate
// validation files or the last `validation_fraction` of the data, never a
// random sample, so every run and every candidate is scored on the same text.
#include <cstdint>
#include <string>
#include <vector>

#include "evaluator/data/data_settings.hpp"

namespace livs::evaluator {

struct Dataset {
  std::vector<uint16_t> train;
  std::vector<uint16_t> validation;
  int vocab = 256;
  std::string description;  // one line for logs: files, format, token counts
};

// Reads every file (text or shards) and splits. Throws InputError for a bad
// file, or when either split would be empty.
Dataset load_dataset(const DataSettings& settings);

// The tail split used without validation files: validation is the last
// round(fraction * n) tokens (at least one), train the rest (at least one).
// `source` names the data in the error when there are too few tokens.
void split_tail(std::vector<uint16_t> tokens, double fraction, const std::string& source, Dataset& out);

}  // namespace livs::evaluator
