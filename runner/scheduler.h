// Scheduler: what runs when. It starts tasks through an Executor, at most
// max_parallel at a time and in order, enforces their timeouts (SIGTERM to
// the group, SIGKILL after the grace: Aborted), and turns SIGINT/SIGTERM
// into the job's interrupt (the first aborts the running tasks and blocks
// the pending ones, the second kills every running task at once). Both
// RunAll() and the one-task waits (Join, Terminate) run the same loop, so a
// job program waiting on one task still sees timeouts and Ctrl-C.
//
//   Scheduler scheduler(&executor, {.termination_grace = absl::Seconds(5)}, hooks);
//   size_t t = scheduler.Add(launch);
//   scheduler.RunAll(/*max_parallel=*/2);
//   const TaskResult& result = *scheduler.task(t).result;
//
// Task life cycle:
//
//   | state    | event                              | next     |
//   |----------|------------------------------------|----------|
//   | pending  | Start()                            | running  |
//   | pending  | the job is interrupted             | done (Blocked) |
//   | pending  | the executor cannot start it       | done (Errored) |
//   | pending  | Skip()                             | done (Skipped) |
//   | running  | its process ends                   | done     |
//   | running  | Terminate() / timeout / Ctrl-C     | done (Aborted) |
//   | done     | Retry() (it ran; no interrupt)     | pending  |
#ifndef TASKFORK_RUNNER_SCHEDULER_H_
#define TASKFORK_RUNNER_SCHEDULER_H_

#include <signal.h>
#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "runner/executor.h"
#include "runner/task_definition.h"

namespace taskfork::runner {

enum class TaskState { kPending, kRunning, kDone };

// SIGINT and SIGTERM as events: blocked in this thread and read from a
// signalfd while it lives; the previous mask comes back (with what arrived
// meanwhile discarded) when it is destroyed. Move-only.
class InterruptSignals {
 public:
  // Errors: pthread_sigmask or signalfd failures, with the errno.
  static absl::StatusOr<InterruptSignals> Create();
  InterruptSignals(InterruptSignals&& other) noexcept;
  InterruptSignals& operator=(InterruptSignals&&) = delete;
  ~InterruptSignals();

  int fd() const { return fd_.get(); }
  // The signals that arrived since the last call, in order (never blocks).
  std::vector<int> Read();

 private:
  InterruptSignals() = default;
  OwnedFd fd_;
  std::optional<sigset_t> saved_mask_;
};

struct SchedulerOptions {
  // Time between SIGTERM and SIGKILL when a task is stopped.
  absl::Duration termination_grace = absl::Seconds(5);
  // Wake up at least once a second (on_tick), e.g. to redraw a status line.
  bool tick_every_second = false;
};

// What the scheduler tells its owner (each may be empty).
struct SchedulerHooks {
  // Right before the executor starts it; may complete its launch (e.g.
  // the reporter socket as it is now).
  std::function<void(size_t task, TaskLaunch* launch)> before_start;
  std::function<void(size_t task)> on_started;
  std::function<void(size_t task)> on_done;
  std::function<void()> before_wait;     // before it sleeps: flush what waits
  std::function<void(int fd)> on_fd;     // a watched descriptor is ready
  std::function<void(absl::Time now)> on_tick;  // after every wake-up
};

// Thread-compatible (the runner's thread).
class Scheduler {
 public:
  struct Task {
    TaskLaunch launch;
    TaskState state = TaskState::kPending;
    pid_t pid = 0;            // 0 until started (or without a local pid)
    absl::Time start_time;
    // Set when the scheduler decided to stop it (timeout, Ctrl-C, job).
    std::string abort_reason;
    bool started = false;     // the executor started it
    bool stopping = false;    // SIGTERM sent, waiting for the end
    bool timed_out = false;   // stopped because its timeout passed
    int attempt = 1;          // 1 + the times Retry() put it back
    std::optional<TaskResult> result;  // once done
    // How its process ended, once done (when the executor knows).
    std::optional<ExitStatus> exit;
  };

  // `executor` and `signals` (may be null: no interrupts) outlive this.
  Scheduler(Executor* executor, InterruptSignals* signals,
            SchedulerOptions options, SchedulerHooks hooks);
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // A new pending task; returns its index.
  size_t Add(TaskLaunch launch);
  const Task& task(size_t index) const { return tasks_[index]; }
  size_t size() const { return tasks_.size(); }
  // Running tasks, in start order.
  const std::vector<size_t>& running() const { return running_; }

  // Watches `fd` while waiting (hooks.on_fd when it is ready).
  void WatchFd(int fd);
  void UnwatchFd(int fd);

  // Starts a pending task. kFailedPrecondition unless pending; the
  // executor's error otherwise (the task is then done: Errored).
  absl::Status Start(size_t index);
  // Marks a pending task done without running it: Skipped with `reason`.
  // kFailedPrecondition unless pending.
  absl::Status Skip(size_t index, std::string reason);
  // Puts a task that ran and is done back to pending, to run again with
  // `launch` (its attempt count goes up); RunAll starts it before the
  // tasks after it, so called from on_done it runs again right away.
  // kFailedPrecondition unless it is done after having started, or after
  // an interrupt.
  absl::Status Retry(size_t index, TaskLaunch launch);
  // Runs every pending task, at most `max_parallel` (>= 1) at a time, in
  // order, until none is running and none will start.
  void RunAll(int max_parallel);
  // Waits up to `timeout` for a running task to end (other tasks' ends,
  // timeouts and interrupts are handled meanwhile). OK once it is done
  // (also when it was already); kFailedPrecondition when it was not
  // started; kDeadlineExceeded when it still runs (it keeps running).
  absl::Status Join(size_t index, absl::Duration timeout);
  // Stops a running task (SIGTERM, SIGKILL after the grace) and waits for
  // its end: Aborted with `reason` (unless an earlier reason stands). No-op
  // unless running.
  absl::Status Terminate(size_t index, std::string reason);
  // Stops every running task with `reason` and waits until all ended.
  void TerminateAll(const std::string& reason);

  // True after the first SIGINT/SIGTERM.
  bool interrupted() const { return interrupts_ > 0; }
  // What the job should say about interrupts ("job interrupted by SIGINT").
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  // One wake-up: waits for an end, a signal, a watched fd, a timeout or
  // `deadline`, and handles what happened.
  // Errors: the executor's (waiting failed).
  absl::Status WaitOnce(absl::Time deadline);
  void Complete(size_t index, TaskEnd end);
  void SetDone(size_t index, TaskResult result);
  void OnInterrupt(int signo);
  // Stops running tasks whose timeout passed.
  void CheckTimeouts(absl::Time now);

  Executor* executor_;
  InterruptSignals* signals_;
  SchedulerOptions options_;
  SchedulerHooks hooks_;
  std::vector<Task> tasks_;
  std::vector<size_t> running_;
  size_t next_ = 0;  // RunAll's next candidate
  int interrupts_ = 0;
  std::vector<std::string> warnings_;
  // Reused from one wake-up to the next.
  std::vector<int> wait_fds_;
  std::vector<int> watched_fds_;
  Executor::Events events_;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_SCHEDULER_H_
