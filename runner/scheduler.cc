#include "runner/scheduler.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/errno.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace taskfork::runner {
namespace {

using reporter::Result;

sigset_t InterruptSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

std::string SignalName(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                           : absl::StrCat("signal ", signo);
}

}  // namespace

// ---------------------------------------------------------------------------
// InterruptSignals

absl::StatusOr<InterruptSignals> InterruptSignals::Create() {
  const sigset_t signals = InterruptSet();
  sigset_t old_mask;
  if (const int rc = ::pthread_sigmask(SIG_BLOCK, &signals, &old_mask);
      rc != 0) {
    return ErrnoError(rc, "pthread_sigmask SIG_BLOCK SIGINT SIGTERM");
  }
  InterruptSignals result;
  result.saved_mask_ = old_mask;
  result.fd_.Reset(::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!result.fd_.valid()) return ErrnoError(errno, "signalfd");
  return result;
}

InterruptSignals::InterruptSignals(InterruptSignals&& other) noexcept
    : fd_(std::move(other.fd_)),
      saved_mask_(std::exchange(other.saved_mask_, std::nullopt)) {}

InterruptSignals::~InterruptSignals() {
  if (fd_.valid()) Read();  // nobody handles them any more: the run is over
  fd_.Reset();
  if (saved_mask_.has_value()) {
    ::pthread_sigmask(SIG_SETMASK, &*saved_mask_, nullptr);
  }
}

std::vector<int> InterruptSignals::Read() {
  std::vector<int> signals;
  signalfd_siginfo info;
  while (::read(fd_.get(), &info, sizeof(info)) == sizeof(info)) {
    signals.push_back(static_cast<int>(info.ssi_signo));
  }
  return signals;
}

// ---------------------------------------------------------------------------
// Scheduler

Scheduler::Scheduler(Executor* executor, InterruptSignals* signals,
                     SchedulerOptions options, SchedulerHooks hooks)
    : executor_(executor),
      signals_(signals),
      options_(options),
      hooks_(std::move(hooks)) {}

size_t Scheduler::Add(TaskLaunch launch) {
  tasks_.emplace_back();
  tasks_.back().launch = std::move(launch);
  return tasks_.size() - 1;
}

void Scheduler::WatchFd(int fd) { watched_fds_.push_back(fd); }

void Scheduler::UnwatchFd(int fd) {
  watched_fds_.erase(std::remove(watched_fds_.begin(), watched_fds_.end(), fd),
                     watched_fds_.end());
}

absl::Status Scheduler::Start(size_t index) {
  Task& task = tasks_[index];
  const std::string& id = task.launch.definition->id;
  if (task.state != TaskState::kPending) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", id,
        task.state == TaskState::kDone && !task.started
            ? " will not run: it is done without having started (blocked "
              "after an interrupt, or it could not start)"
            : " was started already"));
  }
  if (hooks_.before_start) hooks_.before_start(index, &task.launch);
  task.start_time = absl::Now();
  const absl::StatusOr<pid_t> pid = executor_->Start(index, task.launch);
  if (!pid.ok()) {
    LOG(ERROR) << "task " << id << " could not start: " << pid.status();
    SetDone(index, {Result::kErrored,
                    absl::StrCat("could not start the task process: ",
                                 pid.status().ToString()),
                    absl::ZeroDuration(), ""});
    return pid.status();
  }
  task.pid = *pid;
  task.started = true;
  task.state = TaskState::kRunning;
  running_.push_back(index);
  if (hooks_.on_started) hooks_.on_started(index);
  return absl::OkStatus();
}

absl::Status Scheduler::Skip(size_t index, std::string reason) {
  if (tasks_[index].state != TaskState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", tasks_[index].launch.definition->id,
                     " cannot be skipped: it is not pending"));
  }
  SetDone(index, {Result::kSkipped, std::move(reason), absl::ZeroDuration(),
                  ""});
  return absl::OkStatus();
}

absl::Status Scheduler::Retry(size_t index, TaskLaunch launch) {
  Task& task = tasks_[index];
  const std::string& id = task.launch.definition->id;
  if (task.state != TaskState::kDone || !task.started) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", id, " cannot run again: it did not run or is not done"));
  }
  if (interrupted()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", id, " does not run again: the job was interrupted"));
  }
  const int attempt = task.attempt + 1;
  task = Task{};
  task.launch = std::move(launch);
  task.attempt = attempt;
  next_ = std::min(next_, index);
  return absl::OkStatus();
}

void Scheduler::RunAll(int max_parallel) {
  CHECK_GE(max_parallel, 1);
  for (;;) {
    // Start what may start, in order.
    while (!interrupted() &&
           static_cast<int>(running_.size()) < max_parallel) {
      while (next_ < tasks_.size() &&
             tasks_[next_].state != TaskState::kPending) {
        ++next_;
      }
      if (next_ >= tasks_.size()) break;
      (void)Start(next_++);  // a failure marks the task Errored
    }
    if (running_.empty()) return;
    if (const absl::Status waited = WaitOnce(absl::InfiniteFuture());
        !waited.ok()) {
      LOG(ERROR) << "waiting for the tasks: " << waited;
      return;
    }
  }
}

absl::Status Scheduler::Join(size_t index, absl::Duration timeout) {
  const Task& task = tasks_[index];
  if (task.state == TaskState::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task.launch.definition->id, " was not started"));
  }
  const absl::Time deadline = absl::Now() + timeout;
  while (tasks_[index].state == TaskState::kRunning) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("task ", tasks_[index].launch.definition->id,
                       " still running after ", absl::FormatDuration(timeout)));
    }
    TASKFORK_RETURN_IF_ERROR(WaitOnce(deadline));
  }
  return absl::OkStatus();
}

absl::Status Scheduler::Terminate(size_t index, std::string reason) {
  Task& task = tasks_[index];
  if (task.state != TaskState::kRunning) return absl::OkStatus();
  if (task.abort_reason.empty()) task.abort_reason = std::move(reason);
  task.stopping = true;
  executor_->Stop(index, options_.termination_grace);
  return Join(index, absl::InfiniteDuration());
}

void Scheduler::TerminateAll(const std::string& reason) {
  for (size_t index : running_) {
    Task& task = tasks_[index];
    if (task.abort_reason.empty()) task.abort_reason = reason;
    task.stopping = true;
    executor_->Stop(index, options_.termination_grace);
  }
  while (!running_.empty()) {
    if (const absl::Status waited = WaitOnce(absl::InfiniteFuture());
        !waited.ok()) {
      LOG(ERROR) << "waiting for the tasks to end: " << waited;
      return;
    }
  }
}

absl::Status Scheduler::WaitOnce(absl::Time deadline) {
  const absl::Time now = absl::Now();
  absl::Time wake = deadline;
  for (size_t index : running_) {
    const Task& task = tasks_[index];
    const absl::Duration timeout = task.launch.definition->timeout;
    if (!task.stopping && timeout != absl::InfiniteDuration()) {
      wake = std::min(wake, task.start_time + timeout);
    }
  }
  if (options_.tick_every_second) wake = std::min(wake, now + absl::Seconds(1));

  wait_fds_.assign(watched_fds_.begin(), watched_fds_.end());
  if (signals_ != nullptr) wait_fds_.push_back(signals_->fd());
  if (hooks_.before_wait) hooks_.before_wait();
  TASKFORK_RETURN_IF_ERROR(executor_->Wait(wake, wait_fds_, &events_));
  for (auto& [run, end] : events_.ended) Complete(run, std::move(end));
  for (int fd : events_.ready_fds) {
    if (signals_ != nullptr && fd == signals_->fd()) {
      for (int signo : signals_->Read()) {
        OnInterrupt(signo);
      }
    } else if (hooks_.on_fd) {
      hooks_.on_fd(fd);
    }
  }
  const absl::Time after = absl::Now();
  CheckTimeouts(after);
  if (hooks_.on_tick) hooks_.on_tick(after);
  return absl::OkStatus();
}

void Scheduler::CheckTimeouts(absl::Time now) {
  for (size_t index : running_) {
    Task& task = tasks_[index];
    const absl::Duration timeout = task.launch.definition->timeout;
    if (task.stopping || timeout == absl::InfiniteDuration() ||
        now < task.start_time + timeout) {
      continue;
    }
    task.abort_reason =
        absl::StrCat("timed out after ", absl::FormatDuration(timeout));
    task.timed_out = true;
    LOG(WARNING) << "task " << task.launch.definition->id << " "
                 << task.abort_reason << ": SIGTERM to its process group";
    task.stopping = true;
    executor_->Stop(index, options_.termination_grace);
  }
}

void Scheduler::Complete(size_t index, TaskEnd end) {
  Task& task = tasks_[index];
  task.exit = end.exit;
  TaskResult result;
  result.runtime = absl::Now() - task.start_time;
  if (end.exit.has_value()) result.exit_status = end.exit->ToString();
  if (!task.abort_reason.empty()) {
    result.result = Result::kAborted;
    result.reason = task.abort_reason;
  } else if (end.outcome.ok()) {
    result.result = end.outcome->result;
    result.reason = std::move(end.outcome->reason);
  } else if (end.exit.has_value() && end.exit->signaled()) {
    result.result = Result::kErrored;
    result.reason =
        absl::StrCat("task process killed by ", end.exit->signal_name(),
                     end.exit->core_dumped ? " (core dumped)" : "",
                     "; see its log for the stack trace");
  } else {
    result.result = Result::kErrored;
    result.reason = absl::StrCat("task process ended without a result: ",
                                 end.outcome.status().ToString());
  }
  SetDone(index, std::move(result));
}

void Scheduler::SetDone(size_t index, TaskResult result) {
  Task& task = tasks_[index];
  if (task.state == TaskState::kRunning) {
    running_.erase(std::find(running_.begin(), running_.end(), index));
  }
  task.state = TaskState::kDone;
  task.stopping = false;
  task.result = std::move(result);
  if (hooks_.on_done) hooks_.on_done(index);
}

void Scheduler::OnInterrupt(int signo) {
  ++interrupts_;
  if (interrupts_ == 1) {
    LOG(WARNING) << SignalName(signo)
                 << ": aborting running tasks, starting no new ones (again to "
                    "kill everything at once)";
    warnings_.push_back(absl::StrCat("job interrupted by ", SignalName(signo)));
    for (size_t index = 0; index < tasks_.size(); ++index) {
      Task& task = tasks_[index];
      if (task.state == TaskState::kRunning) {
        task.abort_reason = absl::StrCat("aborted by ", SignalName(signo));
        task.stopping = true;
        executor_->Stop(index, options_.termination_grace);
      } else if (task.state == TaskState::kPending) {
        SetDone(index, {Result::kBlocked,
                        absl::StrCat("not started: the job was interrupted by ",
                                     SignalName(signo)),
                        absl::ZeroDuration(), ""});
      }
    }
    return;
  }
  LOG(WARNING) << SignalName(signo) << " again: killing every task now";
  for (size_t index : running_) {
    tasks_[index].abort_reason =
        absl::StrCat("killed by a second ", SignalName(signo));
    executor_->Kill(index);
  }
}

}  // namespace taskfork::runner
