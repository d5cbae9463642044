#include "cli/run_support.hpp"

#include <atomic>
#include <csignal>
#include <cstdio>

#include "cli/device_list.hpp"

namespace livs::cli {

namespace {

std::atomic<bool> stop_signal{false};

// The handler restores the default, so a second signal kills.
extern "C" void request_stop(int signal_number) {
  stop_signal.store(true);
  std::signal(signal_number, SIG_DFL);
}

}  // namespace

std::string resolve_device(const std::string& requested) {
  return resolve_devices(requested, "device").front();
}

std::function<bool()> install_stop_handlers() {
  std::signal(SIGINT, request_stop);
  std::signal(SIGTERM, request_stop);
  return [] { return stop_signal.load(); };
}

void log_line(const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace livs::cli
