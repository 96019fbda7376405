// Executor: the seam between the scheduler (what runs when, timeouts,
// interrupts) and the machinery that runs a task's process. The local fork
// executor (runner/local_executor.h) is the implementation used today; an
// executor for a cluster implements the same calls.
//
//   LocalExecutor executor;
//   TASKFORK_ASSIGN_OR_RETURN(pid_t pid, executor.Start(run, launch));
//   executor.Stop(run, absl::Seconds(5));          // SIGTERM now, SIGKILL later
//   TASKFORK_RETURN_IF_ERROR(executor.Wait(deadline, {signal_fd}, &events));
//   for (auto& [run, end] : events.ended) ...      // how each run ended
#ifndef TASKFORK_RUNNER_EXECUTOR_H_
#define TASKFORK_RUNNER_EXECUTOR_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fork/process.h"
#include "runner/task_definition.h"
#include "runner/task_function.h"

namespace taskfork::runner {

// Everything an executor needs to start one task.
struct TaskLaunch {
  const TaskDefinition* definition = nullptr;  // outlives the run
  std::string log_path;                        // the task's TaskLog
  std::string runinfo_dir;
  // The reporter's address: its socket path, or "tcp:HOST:PORT" (then with
  // the run's secret file) when the runtime listens on TCP
  // (RuntimeOptions::reporter_listen). Empty: no reporter.
  std::string reporter_socket;
  std::string reporter_secret_file;
  StdinPolicy task_stdin = StdinPolicy::kDevNull;
  // Set for one shard of a sharded GoogleTest task.
  std::optional<GTestShard> shard;
};

// How one run ended, as its executor saw it.
struct TaskEnd {
  // What the task process sent back (its result and reason), or why there
  // is nothing (it crashed, was killed, sent malformed bytes).
  absl::StatusOr<TaskFunctionOutcome> outcome =
      absl::UnknownError("no outcome");
  // How the task's process ended, when known.
  std::optional<ExitStatus> exit;
};

// Thread-compatible: one thread (the runner's) drives an executor.
class Executor {
 public:
  // Names one run; chosen by the caller, unique among the runs not ended.
  using RunId = uint64_t;

  struct Events {
    std::vector<std::pair<RunId, TaskEnd>> ended;  // runs that ended
    std::vector<int> ready_fds;                    // watched fds ready
  };

  virtual ~Executor() = default;

  // Starts the task's process. Returns its pid (0 where there is no local
  // one). Errors: why it could not start (the run does not exist then).
  virtual absl::StatusOr<pid_t> Start(RunId run, const TaskLaunch& launch) = 0;
  // SIGTERM to the run's process group now, SIGKILL once `grace` passed if
  // it has not ended by then. No-op for a run that ended.
  virtual void Stop(RunId run, absl::Duration grace) = 0;
  // SIGKILL to the run's process group now. No-op for a run that ended.
  virtual void Kill(RunId run) = 0;
  // Waits until a run ends, one of `fds` is readable (or hung up), or
  // `deadline`; fills `events` (cleared first; both lists empty: the
  // deadline passed). Each run's end is delivered exactly once.
  // Errors: the waiting itself failed (e.g. ppoll), with the errno.
  virtual absl::Status Wait(absl::Time deadline, absl::Span<const int> fds,
                            Events* events) = 0;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_EXECUTOR_H_
