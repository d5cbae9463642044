#pragma once
// The files of export/pytorch/, compiled in (cmake/embed_text.cmake).
#include <optional>
#include <string_view>

namespace livs::exports {

// The text of export/pytorch/<name>, or nullopt when there is no such file.
std::optional<std::string_view> embedded_file(std::string_view name);

}  // namespace livs::exports
