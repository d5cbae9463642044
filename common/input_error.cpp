#include "common/input_error.hpp"

namespace livs {

std::string format_problems(const std::string& file, const std::vector<InputProblem>& problems) {
  std::string out;
  for (const auto& p : problems) {
    if (!out.empty()) out += '\n';
    out += file.empty() ? std::string("<input>") : file;
    out += ": ";
    if (!p.pointer.empty()) out += p.pointer + ": ";
    out += p.message;
  }
  return out;
}

InputError::InputError(std::string file, std::vector<InputProblem> problems)
    : std::runtime_error(format_problems(file, problems)),
      file_(std::move(file)),
      problems_(std::move(problems)) {}

InputError::InputError(std::string file, std::string pointer, std::string message)
    : InputError(std::move(file), std::vector<InputProblem>{{std::move(pointer), std::move(message)}}) {}

}  // namespace livs
