// JobReporter: the runner's side of the reporter server for one run. It
// starts the server, registers tasks and posts their starts and ends
// (batched, sent before the runner sleeps), notices the server's death (a
// warning and exit code 3; the run goes on), and at the end writes the report
// through the server, or the fallback report from the tasks' own results when
// the server is gone.
//
//   TASKFORK_ASSIGN_OR_RETURN(JobReporter reporter, JobReporter::Start(runinfo, "nightly"));
//   reporter.RegisterTask(record);  reporter.Sync();  // before the task starts
//   std::vector<std::string> files = reporter.WriteReport(job, records, &reported);
#ifndef TASKFORK_RUNNER_JOB_REPORTER_H_
#define TASKFORK_RUNNER_JOB_REPORTER_H_

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "reporter/report.pb.h"
#include "reporter/server.h"
#include "runner/fallback_report.h"
#include "runner/runinfo.h"
#include "runner/task_definition.h"

namespace taskfork::runner {

// Move-only; thread-compatible (the runner's thread).
class JobReporter {
 public:
  // Starts the server for `runinfo` (only registered tasks may report),
  // also listening on TCP at `tcp_listen` ("HOST:PORT") unless it is empty.
  // Errors: ReporterServer::Start's, prefixed "cannot start the reporter
  // server: ".
  static absl::StatusOr<JobReporter> Start(const RunInfo& runinfo,
                                           const std::string& job_name,
                                           const std::string& tcp_listen = "");

  // Called once with the server's control descriptor when the server is
  // found dead (stop watching it).
  void set_on_death(std::function<void(int control_fd)> on_death) {
    on_death_ = std::move(on_death);
  }

  // The socket clients connect to; "" once the server is gone.
  std::string socket_path() const;
  // With TCP: "tcp:HOST:PORT" and the secret file; "" without TCP or once
  // the server is gone.
  std::string tcp_address() const;
  std::string secret_file() const;
  // Readable when the server died; -1 once gone.
  int control_fd() const;
  pid_t pid() const;

  // Posts a task's registration; Sync() waits until the server applied the
  // registrations posted so far (one round trip), so that the task's client
  // is known when it says hello.
  void RegisterTask(const TaskRecord& task);
  void Sync();
  // Sends what was posted (before the runner sleeps).
  void Flush();
  // Checks the server (its control socket is readable: it died).
  void Check();
  void TaskStarted(const std::string& id, const std::string& description,
                   const std::string& log_path, pid_t pid, absl::Time start);
  void TaskEnded(const std::string& id, pid_t pid, const TaskResult& result);
  // The task runs again (a retry) with its TaskLog at `log_path`.
  void BeginAttempt(const std::string& id, const std::string& log_path);

  // Finalizes the server and returns the report files; the fallback report
  // when the server is gone or cannot finalize. `reported` gets each task's
  // result as the server's report rolled it up (empty for the fallback).
  std::vector<std::string> WriteReport(
      const FallbackJob& job, absl::Span<const TaskRecord> tasks,
      const std::string& dir,
      absl::flat_hash_map<std::string, reporter::ResultInfo>* reported);

  // Something failed (server death, no report written): exit code 3.
  bool failed() const { return failed_; }
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  JobReporter() = default;
  void Warn(std::string warning);
  // On a failed call: logs "reporter: <what><id>: <status>" (no ": " after
  // an empty id) and checks whether the server died. Builds nothing when
  // `status` is OK: it is called for every task start and end.
  void CheckAfter(const absl::Status& status, absl::string_view what,
                  absl::string_view id = {});

  std::optional<reporter::ReporterServer> server_;
  bool registrations_unsynced_ = false;
  bool failed_ = false;
  std::vector<std::string> warnings_;
  std::function<void(int)> on_death_;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_JOB_REPORTER_H_
