#pragma once
// Errors in what a user gave us (configs, genome files, data files, databases).
// Every message names the file, the place in it and what was expected, so the
// CLI can print it on one line and exit non-zero instead of crashing.
#include <stdexcept>
#include <string>
#include <vector>

namespace livs {

struct InputProblem {
  std::string pointer;  // JSON pointer ("/search/population"), byte offset, or "" for the whole file
  std::string message;  // what was expected and what was found
};

class InputError : public std::runtime_error {
 public:
  InputError(std::string file, std::vector<InputProblem> problems);
  InputError(std::string file, std::string pointer, std::string message);

  const std::string& file() const { return file_; }
  const std::vector<InputProblem>& problems() const { return problems_; }

 private:
  std::string file_;
  std::vector<InputProblem> problems_;
};

// "file: /ptr: message" for each problem, one per line.
std::string format_problems(const std::string& file, const std::vector<InputProblem>& problems);

}  // namespace livs
