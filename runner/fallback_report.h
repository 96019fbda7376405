// The report the runner writes itself when the reporter server is gone
// (died mid-run, or could not finalize): every task's own result (Task.result
// as the runner saw it), without sections, in the same files and formats.
//
//   auto paths = WriteFallbackReport({.job_name = "nightly", ...}, records, dir);
#ifndef TASKFORK_RUNNER_FALLBACK_REPORT_H_
#define TASKFORK_RUNNER_FALLBACK_REPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "reporter/writers.h"
#include "runner/task_definition.h"

namespace taskfork::runner {

struct FallbackJob {
  std::string job_name;
  std::string job_id;  // the run's uid
  absl::Time start;
  absl::Time stop;
};

// Writes results.json and xunit.xml (reporter::WriteReport) into `dir`: one
// task per record, registered with its description and log file, with its
// result when it has one (Blocked otherwise). Errors: those of WriteReport.
absl::StatusOr<reporter::ReportPaths> WriteFallbackReport(
    const FallbackJob& job, absl::Span<const TaskRecord> tasks,
    const std::string& dir);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_FALLBACK_REPORT_H_
