// The backend factory on a machine with a GPU.
#include <doctest/doctest.h>

#include <string>

#include "common/input_error.hpp"
#include "evaluator/backend_factory.hpp"

using namespace livs::evaluator;

TEST_CASE("make_backend picks cpu, cuda and cuda:N and names a bad device string") {
  REQUIRE(cuda_device_count() > 0);
  CHECK(default_device() == "cuda");
  CHECK(std::string(make_backend("cpu")->name()) == "cpu");
  CHECK(std::string(make_backend("cuda")->name()) == "cuda");
  CHECK(std::string(make_backend("cuda:0")->name()) == "cuda");
  for (const std::string bad : {"cuda:99", "gpu", "cuda:", "cuda:x", "CUDA", "cuda:0:1"}) {
    CAPTURE(bad);
    try {
      make_backend(bad);
      FAIL("no error for " << bad);
    } catch (const livs::InputError& e) {
      CHECK(std::string(e.what()).find("\"" + bad + "\"") != std::string::npos);
    }
  }
}
