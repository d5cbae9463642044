#pragma once
// Running the real livsearch binary from a test, the way a user would: from
// the source folder, with stdout and stderr captured separately.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace livs::test {

// Sets an environment variable for the scope (each ctest test is its own
// process), so the commands run meanwhile inherit it.
struct ScopedEnvironment {
  std::string name;
  ScopedEnvironment(std::string n, const std::string& value) : name(std::move(n)) {
    ::setenv(name.c_str(), value.c_str(), 1);
  }
  ~ScopedEnvironment() { ::unsetenv(name.c_str()); }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;
};

// A path as one shell word: in single quotes (the tests' paths hold none).
// Built by append: GCC 12 warns falsely (-Wrestrict) on "'" + path + "'".
inline std::string shell_quoted(const std::filesystem::path& path) {
  std::string word = "'";
  word.append(path.string());
  word.push_back('\'');
  return word;
}

struct CommandResult {
  int exit_code = -1;  // -1 when the process did not exit normally (a crash)
  std::string out;
  std::string err;
};

inline std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs a shell command line in LIVSEARCH_SOURCE_DIR, its output captured.
// `tag` keeps the capture files of tests that ctest runs in parallel apart.
inline CommandResult run_command(const std::string& command_line, const std::string& tag) {
  const auto folder = std::filesystem::temp_directory_path() /
                      ("livsearch_cli_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(folder);
  const auto out_file = folder / "stdout", err_file = folder / "stderr";
  const std::string command = "cd '" LIVSEARCH_SOURCE_DIR "' && " + command_line + " >'" + out_file.string() +
                              "' 2>'" + err_file.string() + "'";
  const int status = std::system(command.c_str());
  CommandResult result;
  if (status != -1 && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = read_file(out_file);
  result.err = read_file(err_file);
  std::filesystem::remove_all(folder);
  return result;
}

#ifdef LIVSEARCH_BINARY  // the CLI tests' build; the GPU suite finds its livsearch at run time
// Runs `livsearch ARGS` in LIVSEARCH_SOURCE_DIR.
inline CommandResult run_livsearch(const std::string& args, const std::string& tag) {
  return run_command("'" LIVSEARCH_BINARY "' " + args, tag);
}
#endif

}  // namespace livs::test
