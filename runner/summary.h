// The end of a run in numbers: each task's row for the console summary (its
// own result rolled up with what the report says of it) and the runner's
// exit code.
//
//   std::vector<TaskSummaryRow> rows = SummarizeTasks(records, reported);
//   return RunnerExitCode(rows, /*infrastructure_failed=*/false);
#ifndef TASKFORK_RUNNER_SUMMARY_H_
#define TASKFORK_RUNNER_SUMMARY_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "reporter/report.pb.h"
#include "runner/console.h"
#include "runner/task_definition.h"

namespace taskfork::runner {

// Runner exit codes (pyATS's, docs/DESIGN.md "Exit codes").
inline constexpr int kExitAllSucceeded = 0;
inline constexpr int kExitSomeDidNotSucceed = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitInfrastructure = 3;
inline constexpr int kExitOther = 4;

// One row per task, in order. A task without a result is Blocked ("never
// started"). `reported` (task id -> the report's rolled-up result, e.g. a
// section a forked child left open made it Errored) wins where it is worse,
// so that the summary and the exit code say what results.json says.
std::vector<TaskSummaryRow> SummarizeTasks(
    absl::Span<const TaskRecord> tasks,
    const absl::flat_hash_map<std::string, reporter::ResultInfo>& reported);

// kExitInfrastructure if `infrastructure_failed`; else kExitAllSucceeded
// when there is at least one task and every row succeeded (Passed, Passx,
// Skipped); else kExitSomeDidNotSucceed.
int RunnerExitCode(const std::vector<TaskSummaryRow>& rows,
                   bool infrastructure_failed);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_SUMMARY_H_
