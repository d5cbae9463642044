#pragma once
// A sticky device error ends the device's usefulness for the whole process
// (evaluator/backend_pool.hpp): the search stops starting candidates, waits
// for those in flight, and then this restarts the process in place (exec of
// /proc/self/exe with the same arguments plus --resume), so the search goes
// on from its database exactly where it stopped, on a fresh context.
//
// At most kMaxLostDeviceRestarts restarts per `livsearch search` command
// (counted through the environment, which the restarted process inherits),
// so a device that keeps failing ends the run instead of looping. Fault injection (LIVSEARCH_FAULT_INJECT,
// tests only) applies to the first process only: the restarted one runs without it.
namespace livs::cli {

// run_prepared_search's exit status when it stopped because a device's
// context was lost (EX_TEMPFAIL: resuming is expected to work).
inline constexpr int kExitLostDevice = 75;
inline constexpr int kMaxLostDeviceRestarts = 20;

// Execs the process again with --resume; returns (an exit status) only when
// that is not possible: too many restarts, or exec failed.
int restart_with_resume();

}  // namespace livs::cli
