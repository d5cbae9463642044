#include "db/records.hpp"

#include <stdexcept>
#include <string>

namespace livs::db {

const char* to_string(RunStatus status) {
  switch (status) {
    case RunStatus::running:
      return "running";
    case RunStatus::finished:
      return "finished";
    case RunStatus::interrupted:
      return "interrupted";
  }
  return "?";
}

const char* to_string(EvaluationStatus status) {
  switch (status) {
    case EvaluationStatus::running:
      return "running";
    case EvaluationStatus::ok:
      return "ok";
    case EvaluationStatus::failed:
      return "failed";
    case EvaluationStatus::interrupted:
      return "interrupted";
  }
  return "?";
}

RunStatus parse_run_status(std::string_view text) {
  for (auto status : {RunStatus::running, RunStatus::finished, RunStatus::interrupted})
    if (text == to_string(status)) return status;
  throw std::runtime_error("unknown run status '" + std::string(text) + "' in the database");
}

EvaluationStatus parse_evaluation_status(std::string_view text) {
  for (auto status : {EvaluationStatus::running, EvaluationStatus::ok, EvaluationStatus::failed,
                      EvaluationStatus::interrupted})
    if (text == to_string(status)) return status;
  throw std::runtime_error("unknown evaluation status '" + std::string(text) + "' in the database");
}

}  // namespace livs::db
