#pragma once
// A file mapped read-only into memory. The kernel pages it in on demand and
// shares the pages between every mapping of the file, so a token set larger
// than memory can be trained on, and workers or ranks on one machine hold one
// copy between them instead of one each.
#include <cstddef>
#include <span>
#include <string>

namespace livs::evaluator {

class MappedFile {
 public:
  // Throws InputError naming the file when it cannot be opened, is a
  // directory or not a regular file, or cannot be mapped. An empty file maps
  // to an empty span (mmap refuses length 0).
  explicit MappedFile(std::string path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }
  std::span<const unsigned char> bytes() const { return {data_, size_}; }

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace livs::evaluator
