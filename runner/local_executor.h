// LocalExecutor: runs each task in a process forked from this one (the
// Executor of a job on one machine). The task process gets its own process
// group, SIGKILL when the runner dies, reset signals, the configured stdin,
// and runs RunTaskBody (TaskLog, report client, the function or command);
// its outcome comes back through the Process's result pipe.
//
//   LocalExecutor executor;
//   absl::StatusOr<pid_t> pid = executor.Start(/*run=*/0, launch);
#ifndef TASKFORK_RUNNER_LOCAL_EXECUTOR_H_
#define TASKFORK_RUNNER_LOCAL_EXECUTOR_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fork/process.h"
#include "fork/process_set.h"
#include "runner/executor.h"

namespace taskfork::runner {

// Destroying it SIGKILLs every task process still running (with its group)
// and reaps it. Thread-compatible.
class LocalExecutor : public Executor {
 public:
  LocalExecutor() = default;
  LocalExecutor(const LocalExecutor&) = delete;
  LocalExecutor& operator=(const LocalExecutor&) = delete;
  ~LocalExecutor() override = default;

  // Errors: those of Process::StartWithResultBytes (fork, pipe, pidfd).
  absl::StatusOr<pid_t> Start(RunId run, const TaskLaunch& launch) override;
  void Stop(RunId run, absl::Duration grace) override;
  void Kill(RunId run) override;
  absl::Status Wait(absl::Time deadline, absl::Span<const int> fds,
                    Events* events) override;

 private:
  struct Run {
    RunId id = 0;
    std::string task_id;
    std::optional<Process> process;
    std::optional<absl::Time> kill_at;  // set by Stop()
  };
  Run* Find(RunId run);
  // Ends what the task left in its group, reaps it and decodes its outcome.
  TaskEnd Finish(Run& run);

  // Slots are reused: no allocation per task once the job reached its
  // parallelism (each heap page the runner writes after a fork is a
  // copy-on-write fault).
  std::vector<std::unique_ptr<Run>> runs_;
  ProcessSet waiting_;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_LOCAL_EXECUTOR_H_
