#include "runner/fallback_report.h"

#include <string>

#include "reporter/report_builder.h"

namespace taskfork::runner {

absl::StatusOr<reporter::ReportPaths> WriteFallbackReport(
    const FallbackJob& job, absl::Span<const TaskRecord> tasks,
    const std::string& dir) {
  reporter::ReportBuilder builder({.job_name = job.job_name,
                                   .job_id = job.job_id,
                                   .start_time = job.start});
  for (const TaskRecord& task : tasks) {
    reporter::TaskInfo info;
    info.set_id(task.id);
    info.set_name(task.id);
    info.set_description(task.description);
    info.set_logfile(task.log_path);
    (void)builder.RegisterTask(info);
    if (task.result.has_value()) {
      builder.RecordTaskResult(task.id,
                               reporter::MakeResultInfo(task.result->result,
                                                        task.result->reason));
    }
  }
  return reporter::WriteReport(builder.Build(job.stop), dir);
}

}  // namespace taskfork::runner
