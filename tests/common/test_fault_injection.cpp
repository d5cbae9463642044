// LIVSEARCH_FAULT_INJECT's rules: #N selects the N-th evaluation, a hex
// prefix selects a genome; anything else is an input error naming the rule.
#include <doctest/doctest.h>

#include "common/candidate_control.hpp"
#include "common/fault_injection.hpp"
#include "common/input_error.hpp"

using namespace livs;

TEST_CASE("a fault plan selects evaluations by index or genome hash prefix") {
  const auto plan = FaultPlan::parse("#2:nan,3FA9:hang,#10:oom,abcd12:throw,#0:stuck,beef:device", "test");
  CHECK(plan.fault_for(2, "0000") == InjectedFault::nan);
  CHECK(plan.fault_for(7, "3fa9c1") == InjectedFault::hang);  // case-insensitive prefix
  CHECK(plan.fault_for(10, "0000") == InjectedFault::oom);
  CHECK(plan.fault_for(1, "abcd12ff") == InjectedFault::throw_);
  CHECK(plan.fault_for(0, "0000") == InjectedFault::stuck);
  CHECK(plan.fault_for(5, "beef00") == InjectedFault::device);
  CHECK(plan.fault_for(3, "3fa8") == InjectedFault::none);
  CHECK(plan.fault_for(1, "abcd") == InjectedFault::none);  // shorter than the prefix
}

TEST_CASE("a malformed fault plan is an input error naming the rule") {
  for (const char* bad : {"#2", "#2:melt", "ab:nan", "#x:nan", "zzzz:nan", ":nan", ",", "#2:nan,,#3:oom"}) {
    CAPTURE(bad);
    try {
      (void)FaultPlan::parse(bad, "LIVSEARCH_FAULT_INJECT");
      FAIL("accepted");
    } catch (const InputError& e) {
      CHECK(std::string(e.what()).find("LIVSEARCH_FAULT_INJECT") != std::string::npos);
    }
  }
}

TEST_CASE("a cancelled control stops the thread it is installed on, and only that thread") {
  auto control = std::make_shared<CandidateControl>(InjectedFault::nan);
  CHECK(injected_fault() == InjectedFault::none);
  {
    ScopedCandidateControl scope(control);
    CHECK(injected_fault() == InjectedFault::nan);
    CHECK_NOTHROW(throw_if_cancelled());
    control->cancel("timeout: too slow");
    control->cancel("a second reason does not replace the first");
    CHECK_THROWS_WITH_AS(throw_if_cancelled(), "timeout: too slow", EvaluationCancelled);
  }
  CHECK_NOTHROW(throw_if_cancelled());
  CHECK(injected_fault() == InjectedFault::none);
}
