#pragma once
// SHA-256 (FIPS 180-4), used for genome content hashes: stable across runs,
// processes and machines, unlike std::hash.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace livs {

// Incremental: update() as the bytes come, then one digest.
class Sha256 {
 public:
  Sha256();
  void update(std::string_view data);
  std::array<uint8_t, 32> digest();  // once; the object is spent afterwards
  std::string hex_digest();

 private:
  uint32_t state_[8];
  uint8_t buffer_[64] = {};
  std::size_t buffered_ = 0;
  uint64_t total_ = 0;
};

std::array<uint8_t, 32> sha256(std::string_view data);
std::string sha256_hex(std::string_view data);
// A file's digest, read in chunks (data files of gigabytes); nullopt when it
// cannot be read.
std::optional<std::string> sha256_file_hex(const std::string& path);

}  // namespace livs
