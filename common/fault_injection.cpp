#include "common/fault_injection.hpp"

#include <cctype>
#include <cstdlib>
#include <sstream>

#include "common/input_error.hpp"

namespace livs {

InjectedFault injected_fault_named(const std::string& name) {
  for (const InjectedFault fault :
       {InjectedFault::nan, InjectedFault::oom, InjectedFault::throw_, InjectedFault::hang,
        InjectedFault::stuck, InjectedFault::device, InjectedFault::die})
    if (name == to_string(fault)) return fault;
  return InjectedFault::none;
}

namespace {

bool all_of(const std::string& text, int (*test)(int)) {
  for (const unsigned char c : text)
    if (!test(c)) return false;
  return true;
}

}  // namespace

FaultPlan FaultPlan::from_environment() {
  const char* value = std::getenv("LIVSEARCH_FAULT_INJECT");
  if (!value || !*value) return {};
  return parse(value, "LIVSEARCH_FAULT_INJECT");
}

FaultPlan FaultPlan::parse(const std::string& text, const std::string& where) {
  FaultPlan plan;
  plan.text_ = text;
  std::istringstream in(text);
  int position = 0;
  for (std::string item; std::getline(in, item, ','); ++position) {
    const std::string place = "rule " + std::to_string(position + 1) + " \"" + item + "\"";
    const auto colon = item.find(':');
    if (colon == std::string::npos)
      throw InputError(where, place, "expected SELECTOR:FAULT (for example #2:nan or 3fa9c1:hang)");
    const std::string selector = item.substr(0, colon), fault_name = item.substr(colon + 1);
    Rule rule;
    rule.fault = injected_fault_named(fault_name);
    if (rule.fault == InjectedFault::none)
      throw InputError(
          where, place,
          "expected a fault of nan, oom, throw, hang, stuck, device or die, got \"" + fault_name + "\"");
    if (selector.size() >= 2 && selector[0] == '#' && selector.size() <= 10 &&
        all_of(selector.substr(1), ::isdigit)) {
      rule.index = std::stoll(selector.substr(1));
    } else if (selector.size() >= 4 && all_of(selector, ::isxdigit)) {
      rule.hash_prefix = selector;
      for (auto& c : rule.hash_prefix) c = char(std::tolower(static_cast<unsigned char>(c)));
    } else {
      throw InputError(
          where, place,
          "expected a selector #N (an evaluation index) or a genome hash prefix of at least 4 hex "
          "digits, got \"" +
              selector + "\"");
    }
    plan.rules_.push_back(std::move(rule));
  }
  if (plan.rules_.empty()) throw InputError(where, "", "expected SELECTOR:FAULT rules separated by commas");
  return plan;
}

InjectedFault FaultPlan::fault_for(int64_t index, const std::string& genome_hash) const {
  for (const auto& rule : rules_) {
    if (rule.index >= 0 ? rule.index == index : genome_hash.rfind(rule.hash_prefix, 0) == 0)
      return rule.fault;
  }
  return InjectedFault::none;
}

}  // namespace livs
