// The CPU backend's share of the device-side training step: the loss mean
// and the memory the host has available.
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "evaluator/cpu/cpu_backend.hpp"

namespace livs::evaluator {

// In token order, one double accumulator: the sum Model::forward has always
// returned, so CPU losses keep their bits.
void CpuBackend::mean_to_device(double* out, const float* x, int64_t count) {
  double sum = 0.0;
  for (int64_t i = 0; i < count; ++i) sum += x[i];
  *out = count > 0 ? sum / double(count) : 0.0;
}

namespace {

// A "Name:   12345 kB" line of /proc/meminfo, in bytes; -1 when absent.
int64_t meminfo_bytes(const std::string& text, const std::string& name) {
  const auto at = text.find(name + ":");
  if (at == std::string::npos) return -1;
  std::istringstream line(text.substr(at + name.size() + 1));
  int64_t kib = -1;
  line >> kib;
  return kib < 0 ? -1 : kib * 1024;
}

}  // namespace

// MemAvailable (what the kernel can give without swapping) where Linux says
// it, else sysconf's free physical pages.
MemoryInfo CpuBackend::query_memory_info() {
  std::ifstream file("/proc/meminfo");
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  MemoryInfo info;
  info.free_bytes = meminfo_bytes(text, "MemAvailable");
  info.total_bytes = meminfo_bytes(text, "MemTotal");
  const int64_t page = sysconf(_SC_PAGESIZE);
  if (info.free_bytes < 0) info.free_bytes = int64_t(sysconf(_SC_AVPHYS_PAGES)) * page;
  if (info.total_bytes < 0) info.total_bytes = int64_t(sysconf(_SC_PHYS_PAGES)) * page;
  return info;
}

}  // namespace livs::evaluator
