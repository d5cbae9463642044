#pragma once
// Questions about paths a user gave, answered without throwing: a path the
// system cannot look at (a name too long, a loop of links, no permission on
// a folder above it) is neither a file nor a folder, so the caller's own
// error, which names the input and what was expected, is the one a user sees
// (std::filesystem's throwing forms ended such runs with a filesystem_error
// and the exit status of an internal error; fuzz_config found one).
#include <filesystem>

namespace livs {

bool is_file(const std::filesystem::path& path);  // a regular file, links followed
bool is_folder(const std::filesystem::path& path);
bool path_exists(const std::filesystem::path& path);

}  // namespace livs
