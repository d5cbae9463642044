#pragma once
// Picks a Backend from a device string: "cpu", "cuda" (GPU 0) or "cuda:N".
#include <memory>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// Throws livs::InputError naming the device string when it is malformed,
// when this build has no CUDA backend, or when no such GPU exists.
std::unique_ptr<Backend> make_backend(const std::string& device);

// "cuda" when this build has the CUDA backend and a GPU is present, else "cpu".
std::string default_device();

// Number of usable CUDA devices (0 without CUDA or without a driver).
int cuda_device_count();

}  // namespace livs::evaluator
