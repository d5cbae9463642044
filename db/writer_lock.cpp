#include "db/writer_lock.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/input_error.hpp"
#include "db/store.hpp"

namespace livs::db {

WriterLock::WriterLock(const std::string& database_path) : lock_path_(database_path + "-writer.lock") {
  // The holder unlinks the file when it closes; a newcomer that locked the
  // unlinked inode in between must notice (the path now names another file or
  // none) and try again, or two writers could each hold "the" lock.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int fd = ::open(lock_path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw DatabaseError(lock_path_ + ": cannot create the writer lock file: " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int error = errno;
      ::close(fd);
      if (error == EWOULDBLOCK)
        throw InputError(database_path, "",
                         "another livsearch process is writing this database (one writer at a time; "
                         "the queries runs, status, pareto, show and export may run alongside it)");
      throw DatabaseError(lock_path_ + ": cannot lock: " + std::strerror(error));
    }
    struct stat held {};
    struct stat named {};
    if (::fstat(fd, &held) == 0 && ::stat(lock_path_.c_str(), &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev) {
      fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw DatabaseError(lock_path_ + ": the writer lock file keeps changing; is another process misbehaving?");
}

WriterLock::~WriterLock() {
  // Unlink while still holding the lock, so nobody can lock this inode and
  // believe it is the current lock file.
  ::unlink(lock_path_.c_str());
  ::close(fd_);
}

}  // namespace livs::db
