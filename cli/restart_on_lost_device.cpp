#include "cli/restart_on_lost_device.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "evaluator/backend_pool.hpp"

namespace livs::cli {

namespace {

constexpr const char* kRestartsVariable = "LIVSEARCH_LOST_DEVICE_RESTARTS";

// This process's arguments as it was started (NUL-separated in /proc).
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> arguments;
  std::size_t start = 0;
  while (start < all.size()) {
    const std::size_t end = all.find('\0', start);
    arguments.push_back(all.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return arguments;
}

}  // namespace

int restart_with_resume() {
  const char* previous = std::getenv(kRestartsVariable);
  const int restarts = previous ? std::atoi(previous) : 0;
  const std::string lost = evaluator::lost_devices();
  if (restarts >= kMaxLostDeviceRestarts) {
    std::fprintf(stderr,
                 "error: the context of %s was lost to a sticky device error again, after %d restarts of "
                 "this search; stopping (continue with --resume once the device is healthy)\n",
                 lost.c_str(), restarts);
    return kExitLostDevice;
  }
  std::vector<std::string> arguments = own_arguments();
  if (arguments.empty()) {
    std::fprintf(stderr, "error: cannot read /proc/self/cmdline to restart; continue with --resume\n");
    return kExitLostDevice;
  }
  bool has_resume = false;
  for (const auto& a : arguments) has_resume = has_resume || a == "--resume";
  if (!has_resume) arguments.push_back("--resume");
  std::fprintf(stderr,
               "the context of %s was lost to a sticky device error; restarting the process with --resume "
               "(restart %d of at most %d)\n",
               lost.c_str(), restarts + 1, kMaxLostDeviceRestarts);
  std::fflush(stdout);
  std::fflush(stderr);
  ::setenv(kRestartsVariable, std::to_string(restarts + 1).c_str(), 1);
  ::unsetenv("LIVSEARCH_FAULT_INJECT");
  std::vector<char*> argv;
  for (auto& a : arguments) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "error: restarting after a lost device failed (exec: %s); continue with --resume\n",
               std::strerror(errno));
  return kExitLostDevice;
}

}  // namespace livs::cli
