#include "evaluator/backend_factory.hpp"

#include <cctype>
#include <optional>

#include "common/input_error.hpp"
#include "evaluator/cpu/cpu_backend.hpp"
#ifdef LIVSEARCH_HAVE_CUDA
#include "evaluator/cuda/cuda_backend.hpp"
#endif

namespace livs::evaluator {

namespace {

[[noreturn]] void device_error(const std::string& device, const std::string& message) {
  throw InputError("device", "", "\"" + device + "\": " + message);
}

// "cuda" -> 0, "cuda:N" -> N (at most three digits); nullopt for anything else.
std::optional<int> cuda_index(const std::string& device) {
  if (device == "cuda") return 0;
  const std::string prefix = "cuda:";
  if (device.rfind(prefix, 0) != 0 || device.size() == prefix.size() || device.size() > prefix.size() + 3)
    return std::nullopt;
  int index = 0;
  for (std::size_t i = prefix.size(); i < device.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(device[i]))) return std::nullopt;
    index = index * 10 + (device[i] - '0');
  }
  return index;
}

// The same, as an error naming the string.
int parse_cuda_index(const std::string& device) {
  const auto index = cuda_index(device);
  if (!index) device_error(device, "expected cpu, cuda or cuda:N");
  return *index;
}

}  // namespace

bool is_device_name(const std::string& device) { return device == "cpu" || cuda_index(device).has_value(); }

int cuda_device_count() {
#ifdef LIVSEARCH_HAVE_CUDA
  return cuda::visible_device_count();
#else
  return 0;
#endif
}

std::unique_ptr<Backend> make_backend(const std::string& device) {
  if (device == "cpu") return std::make_unique<CpuBackend>();
  const int index = parse_cuda_index(device);
#ifdef LIVSEARCH_HAVE_CUDA
  const int count = cuda_device_count();
  if (count == 0) device_error(device, "no CUDA GPU is available on this machine");
  if (index >= count)
    device_error(device, "no such GPU: this machine has " + std::to_string(count) + " CUDA device" +
                             (count == 1 ? "" : "s") + " (cuda:0 .. cuda:" + std::to_string(count - 1) + ")");
  return std::make_unique<CudaBackend>(index);
#else
  (void)index;
  device_error(device, "this livsearch was built without CUDA; use cpu");
#endif
}

void make_device_current(const std::string& device) {
  if (device == "cpu") return;
  const int index = parse_cuda_index(device);
#ifdef LIVSEARCH_HAVE_CUDA
  cuda::set_current_device(index);
#else
  (void)index;
#endif
}

std::string default_device() { return cuda_device_count() > 0 ? "cuda" : "cpu"; }

}  // namespace livs::evaluator
