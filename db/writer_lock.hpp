#pragma once
// The one-writer rule, enforced: a Store holds an exclusive flock(2) on
// "<database>-writer.lock" for as long as it is open. A second writer on the
// same file, in this process or another, is refused at once with an
// InputError instead of interleaving its writes with the first. The kernel
// drops the lock when a process dies (even by SIGKILL), so a killed search
// never blocks its own resume. Readers take no lock.
#include <string>

namespace livs::db {

class WriterLock {
 public:
  // Throws InputError naming the database when another writer holds it.
  explicit WriterLock(const std::string& database_path);
  ~WriterLock();  // removes the lock file, then releases the lock
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

  const std::string& path() const { return lock_path_; }

 private:
  std::string lock_path_;
  int fd_ = -1;
};

}  // namespace livs::db
