#include "cli/device_list.hpp"

#include <algorithm>

#include "common/input_error.hpp"
#include "evaluator/backend_factory.hpp"

namespace livs::cli {

const char* const kDeviceListForm =
    "\"auto\", \"all\", \"cpu\", \"cuda\", \"cuda:N\" or a comma-separated list of cpu, cuda:N";

namespace {

// "cuda" is cuda:0: the same GPU must not be listed twice under two names.
std::string canonical(const std::string& device) { return device == "cuda" ? "cuda:0" : device; }

// The entries of `text`, or what is wrong with it ("" when nothing is).
struct ParsedList {
  std::vector<std::string> entries;
  DeviceListProblem problem;
};

ParsedList parse_list(const std::string& text) {
  if (text == "auto" || text == "all") return {{text}, ""};
  ParsedList parsed;
  std::vector<std::string> seen;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string entry =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!evaluator::is_device_name(entry)) {
      parsed.problem.text = "\"" + entry + "\" is not cpu, cuda or cuda:N";
      return parsed;
    }
    if (std::find(seen.begin(), seen.end(), canonical(entry)) != seen.end()) {
      parsed.problem.text = canonical(entry) + " is listed twice";
      parsed.problem.repeated = true;
      return parsed;
    }
    seen.push_back(canonical(entry));
    parsed.entries.push_back(entry);
    if (comma == std::string::npos) return parsed;
    start = comma + 1;
  }
}

}  // namespace

std::vector<std::string> device_list_entries(const std::string& text) {
  auto parsed = parse_list(text);
  if (!parsed.problem.text.empty()) return {};
  return std::move(parsed.entries);
}

DeviceListProblem device_list_problem(const std::string& text) { return parse_list(text).problem; }

std::vector<std::string> expand_devices(const std::string& requested, const std::string& where) {
  auto parsed = parse_list(requested);
  if (!parsed.problem.text.empty())
    throw InputError(where, "",
                     "expected " + std::string(kDeviceListForm) + ", got \"" + requested + "\" (" +
                         parsed.problem.text + ")");
  std::vector<std::string> devices = std::move(parsed.entries);
  if (devices.front() == "auto") {
    devices = {evaluator::default_device()};
  } else if (devices.front() == "all") {
    const int count = evaluator::cuda_device_count();
    if (count == 0)
      throw InputError(where, "", "\"all\" means every CUDA GPU, and this machine has none (use cpu)");
    devices.clear();
    for (int i = 0; i < count; ++i) devices.push_back("cuda:" + std::to_string(i));
  }
  return devices;
}

std::vector<std::string> resolve_devices(const std::string& requested, const std::string& where) {
  auto devices = expand_devices(requested, where);
  for (const auto& device : devices) evaluator::make_backend(device);  // throws InputError naming it
  return devices;
}

}  // namespace livs::cli
