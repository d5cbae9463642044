#pragma once
// The devices a command trains on. One text form serves the command line
// (--devices, --device) and the config's "device" (a string, or an array of
// strings joined here by commas): "auto" (a GPU when there is one, else the
// CPU), "all" (every CUDA GPU of this machine), or a list of "cpu", "cuda"
// and "cuda:N", each listed once.
#include <string>
#include <vector>

namespace livs::cli {

// The list's entries as written; empty when the text is not a device list
// in that form (an empty entry, an unknown device, "auto" or "all" inside a
// list, a device listed twice).
std::vector<std::string> device_list_entries(const std::string& text);

// What is wrong with the text as a device list: `text` says what ("cpu is
// listed twice"; "" when nothing), `repeated` whether every entry is a device
// but one is listed twice.
struct DeviceListProblem {
  std::string text;
  bool repeated = false;
};
DeviceListProblem device_list_problem(const std::string& text);

// What the expected form is, for error messages.
extern const char* const kDeviceListForm;

// The devices of this machine the text names: "auto" and "all" expanded,
// the form checked (InputError naming `where`), nothing opened yet.
std::vector<std::string> expand_devices(const std::string& requested, const std::string& where);

// The same, each device then opened once, so a missing or unusable one is an
// InputError naming it before any work starts.
std::vector<std::string> resolve_devices(const std::string& requested, const std::string& where);

}  // namespace livs::cli
