#pragma once
// SHA-256 (FIPS 180-4), used for genome content hashes: stable across runs,
// processes and machines, unlike std::hash.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace livs {

std::array<uint8_t, 32> sha256(std::string_view data);
std::string sha256_hex(std::string_view data);

}  // namespace livs
