#include "runner/summary.h"

#include <optional>
#include <string>
#include <vector>

namespace taskfork::runner {

using reporter::Result;

std::vector<TaskSummaryRow> SummarizeTasks(
    absl::Span<const TaskRecord> tasks,
    const absl::flat_hash_map<std::string, reporter::ResultInfo>& reported) {
  std::vector<TaskSummaryRow> rows;
  rows.reserve(tasks.size());
  for (const TaskRecord& task : tasks) {
    TaskSummaryRow row;
    row.id = task.id;
    row.description = task.description;
    row.log_path = task.log_path;
    if (task.result.has_value()) {
      row.result = task.result->result;
      row.reason = task.result->reason;
      row.runtime = task.result->runtime;
    } else {
      row.result = Result::kBlocked;
      row.reason = "never started";
    }
    if (auto it = reported.find(task.id); it != reported.end()) {
      const std::optional<Result> rolled =
          reporter::ResultFromCode(it->second.value());
      if (rolled.has_value() && *rolled > row.result) {
        row.result = *rolled;
        row.reason = it->second.reason();
      }
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

int RunnerExitCode(const std::vector<TaskSummaryRow>& rows,
                   bool infrastructure_failed) {
  if (infrastructure_failed) return kExitInfrastructure;
  bool all_succeeded = !rows.empty();
  for (const TaskSummaryRow& row : rows) {
    all_succeeded = all_succeeded && reporter::IsSuccess(row.result);
  }
  return all_succeeded ? kExitAllSucceeded : kExitSomeDidNotSucceed;
}

}  // namespace taskfork::runner
