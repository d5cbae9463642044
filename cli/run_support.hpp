#pragma once
// What the commands that train candidates share (search, finalize): the
// device a run uses and a graceful stop on the first SIGINT/SIGTERM.
#include <functional>
#include <string>

namespace livs::cli {

// The one device a command that trains one candidate at a time uses
// (`eval`): "auto" picks a GPU when this build has CUDA and one is present,
// else the CPU; a list (cli/device_list.hpp) gives its first device. It is
// checked here, before any work starts.
std::string resolve_device(const std::string& requested);

// After this, the first SIGINT/SIGTERM makes the returned predicate true (the
// run stops after the evaluations in flight); a second one kills.
std::function<bool()> install_stop_handlers();

// Progress lines on stderr, flushed at once (a log read while it grows).
void log_line(const std::string& line);

}  // namespace livs::cli
