#pragma once
// Small files for the data tests: a private temporary folder per test process
// and an llm.c shard writer built byte by byte (independently of the reader,
// so a layout mistake in one is not hidden by the same mistake in the other).
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace livs::test {

class TempFolder {
 public:
  TempFolder() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("livsearch_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::create_directories(path_);
  }
  ~TempFolder() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

  std::string write(const std::string& name, const std::vector<unsigned char>& bytes) const {
    std::ofstream out(file(name), std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return file(name);
  }
  std::string write_text(const std::string& name, const std::string& text) const {
    return write(name, std::vector<unsigned char>(text.begin(), text.end()));
  }

 private:
  std::filesystem::path path_;
};

inline void put_le32(std::vector<unsigned char>& bytes, std::size_t offset, int32_t value) {
  const auto v = static_cast<uint32_t>(value);
  for (int i = 0; i < 4; ++i) bytes[offset + i] = static_cast<unsigned char>(v >> (8 * i));
}

// An llm.c shard: 256 int32 header (magic, version, count), then uint16 tokens.
inline std::vector<unsigned char> shard_bytes(const std::vector<uint16_t>& tokens, int32_t magic = 20240520,
                                              int32_t version = 1, int64_t count = -1) {
  std::vector<unsigned char> bytes(1024 + 2 * tokens.size(), 0);
  put_le32(bytes, 0, magic);
  put_le32(bytes, 4, version);
  put_le32(bytes, 8, static_cast<int32_t>(count < 0 ? static_cast<int64_t>(tokens.size()) : count));
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    bytes[1024 + 2 * i] = static_cast<unsigned char>(tokens[i] & 0xff);
    bytes[1024 + 2 * i + 1] = static_cast<unsigned char>(tokens[i] >> 8);
  }
  return bytes;
}

}  // namespace livs::test
