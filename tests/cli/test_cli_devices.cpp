// The device list a search trains on: --devices and the config's "device"
// array run the search on each listed device with --workers lanes each and
// record where every evaluation ran; `check` shows the list as an array.
// (Wrong lists are bad inputs: tests/bad_inputs/cases.txt.)
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

#include "cli/run_command.hpp"
#include "cli/search_db.hpp"
#include "common/json_reader.hpp"

using livs::Json;
using livs::test::query_rows;
using livs::test::run_livsearch;
using livs::test::temp_db;

namespace {

// tests/cli/tiny_faults_search.json with another "device" and an absolute data path.
std::filesystem::path config_with_device(const Json& device, const std::string& name) {
  Json config = livs::parse_json_file(LIVSEARCH_SOURCE_DIR "/tests/cli/tiny_faults_search.json");
  config["data"]["path"] = LIVSEARCH_SOURCE_DIR "/data/kjv.txt";
  config["device"] = device;
  config["search"].erase("candidate_timeout");
  const auto path = temp_db(name).replace_extension(".json");
  std::ofstream(path) << config.dump(2);
  return path;
}

}  // namespace

TEST_CASE("a config's device array runs the search on its devices and check prints it as an array") {
  const auto config = config_with_device(Json::array({"cpu"}), "devices_array");
  const auto checked = run_livsearch("check '" + config.string() + "'", "devices_check");
  REQUIRE_MESSAGE(checked.exit_code == 0, checked.err);
  CHECK(checked.out.find("\"device\": \"cpu\"") != std::string::npos);  // one device: a string again
  // Several stay an array (check reads the config; it opens no device).
  const auto two = config_with_device(Json::array({"cuda:0", "cuda:1"}), "devices_two");
  const auto checked_two = run_livsearch("check '" + two.string() + "'", "devices_check_two");
  REQUIRE_MESSAGE(checked_two.exit_code == 0, checked_two.err);
  const Json printed = Json::parse(checked_two.out);
  CHECK(printed.at("device") == Json::array({"cuda:0", "cuda:1"}));

  const auto db = temp_db("devices_array.db");
  const auto searched = run_livsearch(
      "search '" + config.string() + "' --db '" + db.string() + "' --workers 2", "devices_search");
  REQUIRE_MESSAGE(searched.exit_code == 0, searched.err);
  CHECK(searched.err.find("cpu, 2 at once") != std::string::npos);
  const auto devices = query_rows(db, "SELECT DISTINCT device FROM evaluations");
  REQUIRE(devices.size() == 1);
  CHECK(devices[0][0] == "cpu");
}

TEST_CASE("--devices overrides the config's device, and --device is the same flag") {
  const auto config = config_with_device("cuda:3", "devices_override");
  for (const std::string flag : {"--devices", "--device"}) {
    CAPTURE(flag);
    const auto db = temp_db("devices_override.db");
    const auto searched = run_livsearch(
        "search '" + config.string() + "' --db '" + db.string() + "' " + flag + " cpu", "devices_flag");
    REQUIRE_MESSAGE(searched.exit_code == 0, searched.err);
    CHECK(query_rows(db, "SELECT DISTINCT device FROM evaluations").at(0).at(0) == "cpu");
  }
}
