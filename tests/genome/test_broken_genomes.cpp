// Hand-written broken genome files: each has exactly one problem, and reading
// it must give an InputError naming the file and that problem's place.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "genome/genome_json.hpp"

using namespace livs;
using namespace livs::genome;

namespace {

struct Broken {
  const char* file;
  const char* pointer;  // JSON pointer, or "line L column C" for invalid JSON
  const char* message;  // a part of the message
};

const Broken kBroken[] = {
    {"01_invalid_json.json", "line 1 column 65", "invalid JSON"},
    {"02_not_an_object.json", "/", "expected a genome object"},
    {"03_missing_d_model.json", "/", "missing required key \"d_model\""},
    {"04_missing_slots.json", "/", "missing required key \"slots\""},
    {"05_d_model_string.json", "/d_model", "expected an integer"},
    {"06_empty_slots.json", "/slots", "non-empty array of slots"},
    {"07_unknown_class.json", "/slots/1/class", "unknown class \"attention\""},
    {"08_missing_class.json", "/slots/2", "missing required key \"class\""},
    {"09_kv_heads_not_dividing.json", "/slots/3/kv_heads", "3 does not divide heads 4"},
    {"10_heads_not_dividing_d_model.json", "/slots/0/heads", "3 does not divide d_model 128"},
    {"11_sharing_later_slot.json", "/slots/1/share_featurizer/slot", "must refer to an earlier slot"},
    {"12_sharing_other_class.json", "/slots/2/share_featurizer", "needs the same class"},
    {"13_features_on_gconv.json", "/slots/2/share_features", "unknown key for class gconv"},
    {"14_negative_window.json", "/slots/0/window", "got -64"},
    {"15_top_k_exceeds_experts.json", "/slots/1/top_k", "expected an integer in [1, 4], got 5"},
    {"16_fusion_with_swiglu.json", "/slots/0/ops/1/class", "combines token mixers"},
    {"17_fusion_three_ops.json", "/slots/0/ops", "exactly two token mixers"},
    {"18_unknown_fusion_kind.json", "/slots/0/fusion", "\"concat\""},
    {"19_knob_of_other_class.json", "/slots/1/heads", "unknown key for class swiglu"},
    {"20_differential_swiglu.json", "/slots/1/differential", "unknown key for class swiglu"},
    {"21_bool_as_string.json", "/slots/0/qk_norm", "expected true or false"},
    {"22_odd_head_dim_with_rope.json", "/slots/0/rope", "even head_dim, got 3"},
    {"23_feature_sharing_incompatible.json", "/slots/2/share_features", "same heads, kv_heads"},
    {"24_reference_to_missing_op.json", "/slots/1/share_features/op", "slot 0 has 1 op(s), got op 1"},
    {"25_vocab_zero.json", "/vocab", "got 0"},
    {"26_ssm_expand_out_of_range.json", "/slots/0/expand", "expected an integer in [1, 16], got 0"},
    {"27_unknown_top_level_key.json", "/layers", "unknown key"},
};

const std::string kDir = std::string(LIVSEARCH_SOURCE_DIR) + "/tests/genome/broken/";

}  // namespace

TEST_CASE("every broken genome file gives one InputError with its JSON pointer") {
  std::size_t files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kDir))
    files += entry.path().extension() == ".json";
  CHECK(files == std::size(kBroken));  // every file in the folder is listed here
  CHECK(files >= 20);
  for (const auto& b : kBroken) {
    CAPTURE(b.file);
    const std::string path = kDir + b.file;
    REQUIRE(std::filesystem::exists(path));
    try {
      genome_from_file(path);
      FAIL("no error for " << b.file);
    } catch (const InputError& e) {
      const std::string what = e.what();
      CAPTURE(what);
      CHECK(e.problems().size() == 1);
      CHECK(e.problems().front().pointer == b.pointer);
      CHECK(what.find(path + ": " + b.pointer + ": ") == 0);
      CHECK(what.find(b.message) != std::string::npos);
    }
  }
}

TEST_CASE("a file with several problems reports each of them") {
  // the broken files' problems, all in one genome
  const char* text = R"({"d_model": 128, "slots": [
      {"class": "sa", "heads": 3},
      {"class": "swiglu", "differential": true},
      {"class": "sa", "heads": 4, "kv_heads": 3, "window": -1},
      {"class": "moe", "experts": 1}]})";
  try {
    genome_from_json(parse_json_text(text, "many.json"), "many.json");
    FAIL("no error");
  } catch (const InputError& e) {
    std::string pointers;
    for (const auto& p : e.problems()) pointers += p.pointer + " ";
    CHECK(pointers ==
          "/slots/0/heads /slots/1/differential /slots/2/kv_heads /slots/2/window /slots/3/experts ");
  }
  CHECK_THROWS_AS(genome_from_file(kDir + "does_not_exist.json"), InputError);
}
