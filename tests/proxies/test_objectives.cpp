#include <doctest/doctest.h>

#include <set>
#include <string>

#include "common/objective_catalogue.hpp"
#include "proxies/objectives.hpp"

using namespace livs;

TEST_CASE("every catalogue objective is registered with a unit and a measurement, once") {
  std::set<std::string> names;
  for (const auto& objective : proxies::objective_registry()) {
    CHECK(!objective.info->unit.empty());
    CHECK(!objective.settings.empty());
    CHECK(names.insert(std::string(objective.info->name)).second);
  }
  CHECK(names.size() == objective_catalogue().size());
  CHECK(proxies::find_registered("decode_ms")->measurement == proxies::Measurement::latency);
  CHECK(proxies::find_registered("cache_bytes")->measurement == proxies::Measurement::analytic);
  CHECK(proxies::find_registered("mqar_accuracy")->measurement == proxies::Measurement::synthetic);
  CHECK(proxies::find_registered("mqar_accuracy")->info->maximise);
  CHECK(proxies::find_registered("beauty") == nullptr);
  CHECK(objective_unit("decode_ms") == "ms");
  CHECK(objective_unit("cache_bytes") == "bytes");
  CHECK(objective_unit("beauty").empty());
}
