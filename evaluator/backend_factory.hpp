#pragma once
// Picks a Backend from a device string: "cpu", "cuda" (GPU 0) or "cuda:N".
#include <memory>
#include <string>

#include "evaluator/backend.hpp"

namespace livs::evaluator {

// Throws livs::InputError naming the device string when it is malformed,
// when this build has no CUDA backend, or when no such GPU exists.
std::unique_ptr<Backend> make_backend(const std::string& device);

// Whether the string names a device in the form make_backend reads ("cpu",
// "cuda", "cuda:N"), whether or not this build or machine has it.
bool is_device_name(const std::string& device);

// "cuda" when this build has the CUDA backend and a GPU is present, else "cpu".
std::string default_device();

// Number of usable CUDA devices (0 without CUDA or without a driver).
int cuda_device_count();

// Makes the device the calling thread's current CUDA device (nothing for the
// CPU). A pooled backend is leased by whichever worker thread runs the next
// evaluation, and CUDA allocates on the thread's current device, which is
// GPU 0 on a new thread: a backend of cuda:1 must make its device current
// before it allocates.
void make_device_current(const std::string& device);

}  // namespace livs::evaluator
