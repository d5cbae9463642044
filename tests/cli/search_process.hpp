#pragma once
// A `livsearch search` running in the background, for the tests that kill
// it, signal it or read its database while it writes: started with fork and
// exec from the source folder, stderr kept in a file.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace livs::test {

class SearchProcess {
 public:
  // `in_child` runs in the child before exec (resource limits, environment).
  SearchProcess(const std::string& config, const std::filesystem::path& db,
                std::vector<std::string> extra_args, const std::filesystem::path& stderr_file,
                const std::function<void()>& in_child = {}) {
    std::vector<std::string> args = {LIVSEARCH_BINARY, "search", config, "--db", db.string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    // The child would otherwise write out a copy of what the test buffered.
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      if (::chdir(LIVSEARCH_SOURCE_DIR) != 0) ::_exit(127);
      if (!std::freopen(stderr_file.c_str(), "w", stderr)) ::_exit(127);
      if (!std::freopen("/dev/null", "w", stdout)) ::_exit(127);
      if (in_child) in_child();
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(LIVSEARCH_BINARY, argv.data());
      ::_exit(127);
    }
  }
  ~SearchProcess() {
    if (!status_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  SearchProcess(const SearchProcess&) = delete;
  SearchProcess& operator=(const SearchProcess&) = delete;

  pid_t pid() const { return pid_; }
  void signal(int number) const { ::kill(pid_, number); }

  // The wait status once the process has ended, else nullopt (polls every 5 ms).
  std::optional<int> wait_for(std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!status_) {
      int status = 0;
      const pid_t done = ::waitpid(pid_, &status, WNOHANG);
      if (done == pid_) {
        status_ = status;
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return status_;
  }
  bool running() { return !wait_for(std::chrono::milliseconds(0)); }
  // SIGKILL; true when it was still running (killed mid-run).
  bool kill_now() {
    const bool was_running = running();
    ::kill(pid_, SIGKILL);
    wait_for(std::chrono::minutes(1));
    return was_running && status_ && WIFSIGNALED(*status_);
  }

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace livs::test
