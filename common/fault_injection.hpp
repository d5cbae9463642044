#pragma once
// Fault injection for tests: the environment variable LIVSEARCH_FAULT_INJECT
// names candidates and the fault each one produces, so a test can check that
// a candidate's fault stays the candidate's (recorded as failed with its
// reason) and the search completes. It is read from the environment only,
// never from a config, so a user's config cannot turn it on by accident, and
// a search that runs with it says so on its first line.
//
//   LIVSEARCH_FAULT_INJECT="#2:nan,#5:throw,3fa9c1:hang"
//
// Each rule is SELECTOR:FAULT. SELECTOR is #N (the N-th evaluation this
// process starts, counting from 0, in start order) or a prefix of a genome
// hash (hex, at least 4 characters: every evaluation of that genome). FAULT
// is one of nan, oom, throw, hang, stuck, device, die (common/candidate_control.hpp).
#include <cstdint>
#include <string>
#include <vector>

#include "common/candidate_control.hpp"

namespace livs {

// The fault of that name (to_string's inverse); none for any other text.
InjectedFault injected_fault_named(const std::string& name);

class FaultPlan {
 public:
  // The plan LIVSEARCH_FAULT_INJECT describes (empty when unset or empty);
  // throws InputError naming the variable for a malformed value.
  static FaultPlan from_environment();
  // `where` names the text's origin in errors.
  static FaultPlan parse(const std::string& text, const std::string& where);

  bool empty() const { return rules_.empty(); }
  // The fault of the evaluation started `index`-th (from 0) with this genome hash.
  InjectedFault fault_for(int64_t index, const std::string& genome_hash) const;
  // The rules as given, for the search's first line.
  const std::string& text() const { return text_; }

 private:
  struct Rule {
    int64_t index = -1;       // >= 0: an evaluation index
    std::string hash_prefix;  // else: a genome hash prefix
    InjectedFault fault = InjectedFault::none;
  };
  std::vector<Rule> rules_;
  std::string text_;
};

}  // namespace livs
