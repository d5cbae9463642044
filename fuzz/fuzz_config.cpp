// libFuzzer target: the search config reader (JSON text -> validated Config
// -> resolved JSON). Any input is either accepted or an InputError naming
// the file. Relative data paths resolve against this source tree's tests/cli
// folder, so the fuzzer can reach configs that name the shipped corpus.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cli/config.hpp"
#include "common/input_error.hpp"
#include "common/json_reader.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace livs;
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = LIVSEARCH_SOURCE_DIR "/tests/cli/fuzzed_config.json";
  try {
    const Json doc = parse_json_text(text, path);
    const auto config = cli::parse_config(doc, path);
    (void)cli::to_json(config).dump();
    (void)cli::eval_settings_of(config);
  } catch (const InputError&) {
  }
  return 0;
}
