#include "common/objective_catalogue.hpp"

#include <algorithm>

namespace livs {

const std::vector<ObjectiveInfo>& objective_catalogue() {
  static const std::vector<ObjectiveInfo> catalogue = {
      // Quality, from training for the budget.
      {"perplexity", "per token", false, 1.0,
       "exp(mean cross-entropy) on the validation slice after training"},
      {"validation_loss", "nats per token", false, 0.0, "mean cross-entropy on the validation slice"},
      // Size and arithmetic, analytic from the ModelSpec.
      {"params", "count", false, 0.0, "every weight once (shared weights once, tied head once)"},
      {"params_non_embedding", "count", false, 0.0, "params without the embedding table"},
      {"params_total", "count", false, 0.0, "alias of params kept for older runs"},
      {"flops_per_token_train", "FLOP per token", false, 0.0,
       "forward + backward matmul and mixing FLOPs per token at the training seq_len (3x forward)"},
      {"flops_per_token_infer", "FLOP per token", false, 0.0,
       "forward FLOPs of one decode step at the full context length"},
      {"cache_bytes", "bytes", false, 0.0,
       "decode state of one sequence at the context length and inference dtype; checked against the "
       "state the built model holds"},
      // Measured on the evaluation device.
      {"prefill_ms", "ms", false, 0.0, "median time of a forward over batch x prompt tokens"},
      {"prefill_ms_spread", "ratio", false, 0.0, "(p90 - p10) / median of the prefill runs"},
      {"prefill_tok_s", "tokens/s", true, std::nullopt, "batch x prompt / prefill_ms"},
      {"decode_ms", "ms", false, 0.0,
       "median time of one decode step at position context-1 with the state planned for the context"},
      {"decode_ms_spread", "ratio", false, 0.0, "(p90 - p10) / median of the decode runs"},
      {"decode_tok_s", "tokens/s", true, std::nullopt, "batch / decode_ms"},
      {"peak_memory_train", "bytes", false, 0.0, "the training memory plan (one arena allocation)"},
      {"peak_memory_infer", "bytes", false, 0.0,
       "the inference memory plan at the latency batch and context"},
      {"peak_memory_train_device", "bytes", false, 0.0,
       "device memory in use after the first training steps minus before the model was built "
       "(cudaMemGetInfo; GPU only)"},
      {"peak_memory_infer_device", "bytes", false, 0.0,
       "device memory in use after prefill and decode minus before the model was built "
       "(cudaMemGetInfo; GPU only)"},
      // Bookkeeping of the training run.
      {"train_seconds", "s", false, 0.0, "wall time of the training steps"},
      {"train_ms", "ms", false, 0.0, "wall time of the training steps"},
      {"steps", "count", true, std::nullopt, "optimiser steps completed"},
      // Synthetic tasks (MAD, Zoology): accuracy on the target positions of held-out examples.
      {"in_context_recall_accuracy", "fraction", true, 1.0, "MAD in-context recall"},
      {"fuzzy_recall_accuracy", "fraction", true, 1.0, "MAD fuzzy in-context recall"},
      {"noisy_recall_accuracy", "fraction", true, 1.0, "MAD noisy in-context recall"},
      {"selective_copying_accuracy", "fraction", true, 1.0, "MAD selective copying"},
      {"compression_accuracy", "fraction", true, 1.0, "MAD compression"},
      {"memorization_accuracy", "fraction", true, 1.0, "MAD memorisation"},
      {"mqar_accuracy", "fraction", true, 1.0, "Zoology multi-query associative recall"},
  };
  return catalogue;
}

const ObjectiveInfo* find_objective(std::string_view name) {
  const auto& catalogue = objective_catalogue();
  const auto it = std::find_if(catalogue.begin(), catalogue.end(),
                               [&](const ObjectiveInfo& o) { return o.name == name; });
  return it == catalogue.end() ? nullptr : &*it;
}

std::string objective_unit(std::string_view name) {
  const auto* info = find_objective(name);
  return info ? std::string(info->unit) : std::string();
}

}  // namespace livs
