#include "evaluator/data/mapped_file.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/input_error.hpp"

namespace livs::evaluator {

namespace {

// Closes the descriptor on every path out: the mapping outlives it.
struct FileDescriptor {
  int fd;
  ~FileDescriptor() {
    if (fd >= 0) ::close(fd);
  }
};

}  // namespace

MappedFile::MappedFile(std::string path) : path_(std::move(path)) {
  FileDescriptor file{::open(path_.c_str(), O_RDONLY | O_CLOEXEC)};
  if (file.fd < 0) {
    const int error = errno;
    std::string why = "cannot open the file for reading (";
    why += std::strerror(error);
    why += ")";
    throw InputError(path_, "", why);
  }
  struct stat info {};
  if (::fstat(file.fd, &info) != 0) throw InputError(path_, "", "cannot read the file's size");
  if (S_ISDIR(info.st_mode)) throw InputError(path_, "", "is a directory, expected a data file");
  if (!S_ISREG(info.st_mode)) throw InputError(path_, "", "is not a regular file, expected a data file");
  size_ = static_cast<std::size_t>(info.st_size);
  if (size_ == 0) return;
  void* mapped = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, file.fd, 0);
  if (mapped == MAP_FAILED) {
    const int error = errno;
    size_ = 0;
    std::string why = "cannot map the file into memory (";
    why += std::strerror(error);
    why += ")";
    throw InputError(path_, "", why);
  }
  data_ = static_cast<const unsigned char*>(mapped);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
}

}  // namespace livs::evaluator
