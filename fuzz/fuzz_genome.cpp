// libFuzzer target: reading a genome file (JSON text -> checked genome ->
// canonical form -> model spec). Any input is either accepted or an
// InputError; an accepted genome must round-trip through its canonical JSON.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/input_error.hpp"
#include "common/json_reader.hpp"
#include "genome/decode.hpp"
#include "genome/genome_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace livs;
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const Json doc = parse_json_text(text, "<fuzz>");
    const auto genome = genome::genome_from_json(doc, "<fuzz>");
    const auto again = genome::genome_from_json(genome::to_canonical_json(genome), "<canonical>");
    if (genome::genome_hash(again) != genome::genome_hash(genome)) __builtin_trap();
    (void)genome::decode(genome).params_total();
    (void)genome::summary(genome);
  } catch (const InputError&) {
  }
  return 0;
}
