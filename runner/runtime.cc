#include "runner/runtime.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "ipc/shm_check.h"
#include "reporter/report_builder.h"
#include "reporter/writers.h"
#include "runner/archive.h"
#include "runner/task_body.h"
#include "tasklog/tasklog.h"

namespace taskfork::runner {
namespace {

using reporter::Result;

// The signals the runner turns into events (signalfd) instead of dying.
sigset_t InterruptSignals() {
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
// Task

std::optional<pid_t> Task::pid() const {
  if (!process_.has_value()) return std::nullopt;
  return process_->pid();
}

std::string Task::log_path() const {
  return runtime_->runinfo().Path(absl::StrCat("TaskLog.", id()));
}

bool Task::is_alive() const {
  return state_ == State::kRunning && process_.has_value() &&
         process_->is_alive();
}

absl::Status Task::Start() {
  if (state_ != State::kPending) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", id(),
        state_ == State::kDone && !process_.has_value()
            ? " will not run: it is done without having started (blocked "
              "after an interrupt, or it could not start)"
            : " was started already"));
  }
  ProcessOptions options;
  options.name = absl::StrCat("task:", id()).substr(0, 15);
  options.set_cmdline_title = false;
  options.own_process_group = true;
  options.parent_death_signal = SIGKILL;
  options.stdin_policy = runtime_->options().task_stdin;
  options.reset_signals = true;

  TaskBodyConfig config;
  config.definition = &definition_;
  config.log_path = log_path();
  config.runinfo_dir = runtime_->runinfo().dir();
  config.reporter_socket = runtime_->reporter_socket();
  config.command_stdin = runtime_->options().task_stdin == StdinPolicy::kDevNull
                             ? StdinPolicy::kDevNull
                             : StdinPolicy::kInherit;
  config.capture_stdio =
      runtime_->options().task_stdin != StdinPolicy::kControllingTerminal;
  // The task's client may say hello as soon as it runs, on a socket of its
  // own: the server must know the task by then (registered_tasks_only).
  runtime_->SyncReporterRegistrations();
  start_time_ = absl::Now();
  auto process = Process::StartWithResultBytes(
      std::move(options), [config]() { return RunTaskBody(config); });
  if (!process.ok()) {
    LOG(ERROR) << "task " << id() << " could not start: " << process.status();
    SetDone({Result::kErrored,
             absl::StrCat("could not start the task process: ",
                          process.status().ToString()),
             absl::ZeroDuration(), ""});
    return process.status();
  }
  process_.emplace(std::move(*process));
  state_ = State::kRunning;
  runtime_->running_.push_back(this);
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", id(), " started, pid ", process_->pid(),
                             ", log ", config.log_path));
  runtime_->OnStarted(*this);
  return absl::OkStatus();
}

absl::Status Task::Join(absl::Duration timeout) {
  if (state_ == State::kDone) return absl::OkStatus();
  if (state_ == State::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", id(), " was not started"));
  }
  // Wait for the exit without reaping (Complete() must still reach the
  // process group), draining the result pipe meanwhile. SIGINT/SIGTERM are
  // handled here as in RunAll (a job program may wait in Join, not RunAll):
  // the first aborts the running tasks with a grace, the second kills them.
  const absl::Time deadline = absl::Now() + timeout;
  while (state_ == State::kRunning && process_->is_alive()) {
    const absl::Time now = absl::Now();
    if (kill_deadline_.has_value() && now >= *kill_deadline_) {
      LOG(WARNING) << "task " << id()
                   << " outlived its termination grace: SIGKILL";
      (void)process_->Kill();
      break;
    }
    if (now >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "task ", id(), " still running after ", absl::FormatDuration(timeout)));
    }
    const absl::Time wake =
        kill_deadline_.has_value() ? std::min(deadline, *kill_deadline_)
                                   : deadline;
    const int timeout_ms =
        wake == absl::InfiniteFuture()
            ? -1
            : static_cast<int>(std::min<int64_t>(
                  absl::ToInt64Milliseconds(wake - now) + 1, 1 << 30));
    pollfd fds[3];
    nfds_t count = 0;
    fds[count++] = {process_->pidfd(), POLLIN, 0};
    const int result_index = process_->result_fd() >= 0 ? count : -1;
    if (result_index >= 0) fds[count++] = {process_->result_fd(), POLLIN, 0};
    const int signal_index = runtime_->signal_fd_ >= 0 ? count : -1;
    if (signal_index >= 0) fds[count++] = {runtime_->signal_fd_, POLLIN, 0};
    runtime_->FlushReporter();  // before sleeping: what was posted goes out
    if (::poll(fds, count, timeout_ms) < 0 && errno != EINTR) {
      return ErrnoError(errno, "poll on task", id());
    }
    if (result_index >= 0 && fds[result_index].revents != 0) {
      const absl::Status drained = process_->DrainResult();
      if (!drained.ok()) LOG(WARNING) << id() << ": " << drained;
    }
    if (signal_index >= 0 && fds[signal_index].revents != 0) {
      signalfd_siginfo info;
      while (::read(runtime_->signal_fd_, &info, sizeof(info)) ==
             sizeof(info)) {
        runtime_->OnInterrupt(static_cast<int>(info.ssi_signo));
      }
    }
  }
  if (state_ != State::kDone) Complete();  // a second interrupt completes it
  return absl::OkStatus();
}

absl::Status Task::Wait(absl::Duration max_runtime) {
  const absl::Status joined = Join(max_runtime);
  if (joined.code() != absl::StatusCode::kDeadlineExceeded) return joined;
  TASKFORK_RETURN_IF_ERROR(Terminate(absl::StrCat(
      "exceeded max_runtime ", absl::FormatDuration(max_runtime))));
  return absl::DeadlineExceededError(
      absl::StrCat("task ", id(), " still ran after ",
                   absl::FormatDuration(max_runtime), " and was terminated"));
}

absl::Status Task::Terminate(std::string reason) {
  if (state_ != State::kRunning) return absl::OkStatus();
  if (abort_reason_.empty()) abort_reason_ = std::move(reason);
  const absl::Status status =
      process_->Terminate(runtime_->options().termination_grace);
  Complete();
  return status;
}

void Task::Complete() {
  // Whatever the task left in its process group (a grandchild that ignored
  // SIGTERM, a forgotten background job) ends with it: the zombie of the
  // task process still holds the group id, so this cannot hit a stranger.
  (void)process_->Signal(SIGKILL);
  const absl::StatusOr<ExitStatus> exit = process_->Join();
  TaskResult result;
  result.runtime = absl::Now() - start_time_;
  if (exit.ok()) result.exit_status = exit->ToString();

  absl::StatusOr<std::string> bytes = process_->TakeResultBytes();
  absl::StatusOr<TaskFunctionOutcome> outcome =
      bytes.ok() ? DecodeTaskOutcome(*bytes) : bytes.status();
  if (!abort_reason_.empty()) {
    result.result = Result::kAborted;
    result.reason = abort_reason_;
  } else if (outcome.ok()) {
    result.result = outcome->result;
    result.reason = std::move(outcome->reason);
  } else if (exit.ok() && exit->signaled()) {
    result.result = Result::kErrored;
    result.reason =
        absl::StrCat("task process killed by ", exit->signal_name(),
                     exit->core_dumped ? " (core dumped)" : "",
                     "; see its log for the stack trace");
  } else {
    result.result = Result::kErrored;
    result.reason = absl::StrCat("task process ended without a result: ",
                                 outcome.status().ToString());
  }
  SetDone(std::move(result));
}

void Task::SetDone(TaskResult result) {
  if (state_ == State::kRunning) {
    auto& running = runtime_->running_;
    running.erase(std::find(running.begin(), running.end(), this));
  }
  state_ = State::kDone;
  result_ = std::move(result);
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", id(), " done: ",
                             reporter::ResultName(result_->result),
                             result_->reason.empty() ? "" : ", ",
                             result_->reason,
                             result_->exit_status.empty() ? "" : "; ",
                             result_->exit_status));
  runtime_->OnDone(*this);
}

// ---------------------------------------------------------------------------
// Runtime

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Create(
    RuntimeOptions options) {
  if (!IsValidRunInfoName(options.job_name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid job name \"", options.job_name,
                     "\": use letters, digits, '-', '_', '.', ':'"));
  }
  const absl::Time start = absl::Now();
  TASKFORK_ASSIGN_OR_RETURN(
      RunInfo runinfo,
      RunInfo::Create({.root = options.runinfo_root,
                       .job_name = options.job_name,
                       .start = start}));
  std::unique_ptr<Runtime> runtime(
      new Runtime(std::move(options), std::move(runinfo)));
  runtime->start_time_ = start;
  const RuntimeOptions& opts = runtime->options_;
  const RunInfo& info = runtime->runinfo_;

  tasklog::TaskLogOptions log_options;
  log_options.capture_stdio = false;
  log_options.install_failure_handler = true;
  log_options.screen_severity = opts.screen_log_severity;
  TASKFORK_RETURN_IF_ERROR(
      tasklog::JobLog::Install(info.Path(absl::StrCat("JobLog.", opts.job_name)),
                               log_options)
          .status());
  runtime->joblog_installed_ = true;
  LOG(INFO) << "job " << opts.job_name << " (" << info.uid() << "), runinfo "
            << info.dir() << ", pid " << ::getpid();

  TASKFORK_RETURN_IF_ERROR(info.WriteEnvironment(opts.argv));
  if (!opts.spec_file_name.empty()) {
    TASKFORK_RETURN_IF_ERROR(info.WriteFile(opts.spec_file_name, opts.spec_text));
  }
  if (opts.check_shared_memory) {
    const absl::Status shm = ipc::CheckSharedMemory();
    if (!shm.ok()) {
      LOG(ERROR) << shm;
      return shm;
    }
  }

  auto supervisor = Supervisor::Create();
  if (supervisor.ok()) {
    runtime->supervisor_.emplace(std::move(*supervisor));
  } else {
    LOG(WARNING) << "not a subreaper, escaped task descendants cannot be "
                    "found: "
                 << supervisor.status();
  }

  reporter::ReporterServerOptions server_options;
  server_options.runinfo_dir = info.dir();
  server_options.job_name = opts.job_name;
  server_options.job_id = info.uid();
  server_options.registered_tasks_only = true;  // AddTask registers each
  auto server = reporter::ReporterServer::Start(std::move(server_options));
  if (!server.ok()) {
    LOG(ERROR) << "reporter: " << server.status();
    return absl::Status(server.status().code(),
                        absl::StrCat("cannot start the reporter server: ",
                                     server.status().message()));
  }
  runtime->reporter_.emplace(std::move(*server));
  LOG(INFO) << "reporter server pid " << runtime->reporter_->pid() << " on "
            << runtime->reporter_->socket_path();

  // SIGINT / SIGTERM become events of RunAll's loop. Task processes reset
  // their mask and dispositions (ProcessOptions::reset_signals).
  const sigset_t signals = InterruptSignals();
  sigset_t old_mask;
  if (::pthread_sigmask(SIG_BLOCK, &signals, &old_mask) != 0) {
    return absl::InternalError("pthread_sigmask failed");
  }
  runtime->saved_signal_mask_ = old_mask;
  runtime->signal_fd_ = ::signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK);
  if (runtime->signal_fd_ < 0) return ErrnoError(errno, "signalfd");
  if (opts.console_fd >= 0) {
    runtime->progress_.emplace(opts.console_fd, opts.console_is_tty, 0);
  }
  return runtime;
}

Runtime::~Runtime() {
  for (auto& task : tasks_) {
    if (task->state_ == Task::State::kRunning && task->process_.has_value()) {
      (void)task->process_->Kill();
    }
  }
  supervisor_.reset();  // ends escaped descendants, if Finish() did not
  reporter_.reset();
  if (signal_fd_ >= 0) {
    // Interrupts nobody handled any more: the run is over.
    signalfd_siginfo info;
    while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    }
    ::close(signal_fd_);
  }
  if (saved_signal_mask_.has_value()) {
    ::pthread_sigmask(SIG_SETMASK, &*saved_signal_mask_, nullptr);
  }
  if (joblog_installed_) {
    const absl::Status uninstalled = tasklog::TaskLog::Uninstall();
    if (!uninstalled.ok()) {
      LOG(WARNING) << "JobLog: " << uninstalled;
    }
  }
}

std::string Runtime::reporter_socket() const {
  return reporter_.has_value() ? reporter_->socket_path() : "";
}

absl::StatusOr<Task*> Runtime::AddTask(TaskDefinition definition) {
  if (!IsValidRunInfoName(definition.id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid task id \"", definition.id,
                     "\": use letters, digits, '-', '_', '.', ':'"));
  }
  for (const auto& task : tasks_) {
    if (task->id() == definition.id) {
      return absl::InvalidArgumentError(
          absl::StrCat("duplicate task id \"", definition.id, "\""));
    }
  }
  if (!definition.body && definition.argv.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task \"", definition.id, "\" has neither a body nor an argv"));
  }
  tasks_.push_back(
      std::unique_ptr<Task>(new Task(this, std::move(definition))));
  Task* task = tasks_.back().get();
  if (reporter_.has_value()) {
    reporter::TaskInfo info;
    info.set_id(task->id());
    info.set_name(task->id());
    info.set_description(task->definition().description);
    info.set_logfile(task->log_path());
    // Posted: sent with the next batch, and applied by the server before
    // the next task starts (SyncReporterRegistrations), one round trip for
    // all the tasks added until then.
    const absl::Status status = reporter_->PostRegisterTask(info);
    registrations_unsynced_ = true;
    if (!status.ok()) {
      LOG(WARNING) << "reporter: cannot register task " << task->id() << ": "
                   << status;
      CheckReporter();
    }
  }
  if (progress_.has_value()) {
    progress_.emplace(options_.console_fd, options_.console_is_tty,
                      static_cast<int>(tasks_.size()));
  }
  return task;
}

void Runtime::CheckReporter() {
  if (!reporter_.has_value()) return;
  const absl::Status alive = reporter_->CheckAlive();
  if (alive.ok()) return;
  const std::string warning =
      absl::StrCat("reporter server died mid-run (", alive.message(),
                   "); results.json was written from the tasks' results");
  LOG(ERROR) << warning;
  warnings_.push_back(warning);
  infrastructure_failed_ = true;
  reporter_.reset();
}

void Runtime::SyncReporterRegistrations() {
  if (!registrations_unsynced_ || !reporter_.has_value()) return;
  registrations_unsynced_ = false;
  const absl::Status status = reporter_->SyncPosted();
  if (!status.ok()) {
    LOG(WARNING) << "reporter: cannot register the tasks: " << status;
    CheckReporter();
  }
}

void Runtime::FlushReporter() {
  if (!reporter_.has_value()) return;
  const absl::Status status = reporter_->FlushPosted();
  if (!status.ok()) {
    LOG(WARNING) << "reporter: " << status;
    CheckReporter();
  }
}

void Runtime::OnStarted(Task& task) {
  if (reporter_.has_value()) {
    // The task's start as its own client would report it, so that a task
    // process that reports nothing never connects to the reporter.
    reporter::TaskStart start;
    start.set_name(task.id());
    start.set_description(task.definition().description);
    start.set_logfile(task.log_path());
    *start.mutable_time() = reporter::ToProtoTime(task.start_time_);
    const absl::Status status =
        reporter_->PostTaskStarted(task.id(), task.process_->pid(), start);
    if (!status.ok()) {
      LOG(WARNING) << "reporter: cannot record the start of " << task.id()
                   << ": " << status;
      CheckReporter();
    }
  }
  if (progress_.has_value()) {
    progress_->Started(task.id(), task.process_->pid(), absl::Now());
  }
}

void Runtime::OnDone(Task& task) {
  const TaskResult& result = *task.result();
  if (reporter_.has_value()) {
    // With its pid (0 if it never ran) the task's stop is recorded too.
    const pid_t pid = task.process_.has_value() ? task.process_->pid() : 0;
    const absl::Status status = reporter_->PostTaskEnded(
        task.id(), pid, reporter::MakeResultInfo(result.result, result.reason),
        absl::Now());
    if (!status.ok()) {
      LOG(WARNING) << "reporter: cannot record the result of " << task.id()
                   << ": " << status;
      CheckReporter();
    }
  }
  if (progress_.has_value()) {
    progress_->Finished(task.id(), result.result, result.runtime, result.reason,
                        absl::Now());
  }
}

void Runtime::OnInterrupt(int signo) {
  ++interrupts_;
  if (interrupts_ == 1) {
    LOG(WARNING) << SignalName(signo)
                 << ": aborting running tasks, starting no new ones (again to "
                    "kill everything at once)";
    warnings_.push_back(
        absl::StrCat("job interrupted by ", SignalName(signo)));
    const absl::Time kill_at = absl::Now() + options_.termination_grace;
    for (auto& task : tasks_) {
      if (task->state_ == Task::State::kRunning) {
        task->abort_reason_ = absl::StrCat("aborted by ", SignalName(signo));
        (void)task->process_->Signal(SIGTERM);
        task->kill_deadline_ = kill_at;
      } else if (task->state_ == Task::State::kPending) {
        task->SetDone({Result::kBlocked,
                       absl::StrCat("not started: the job was interrupted by ",
                                    SignalName(signo)),
                       absl::ZeroDuration(), ""});
      }
    }
    return;
  }
  LOG(WARNING) << SignalName(signo) << " again: killing every task now";
  for (auto& task : tasks_) {
    if (task->state_ != Task::State::kRunning) continue;
    task->abort_reason_ =
        absl::StrCat("killed by a second ", SignalName(signo));
    (void)task->process_->Kill();
    task->Complete();
  }
}

void Runtime::RunAll(int max_parallel) {
  CHECK_GE(max_parallel, 1);
  size_t next = 0;
  // Reused from one wake-up to the next (no allocation per task: each heap
  // page the runner writes after a task's fork is a copy-on-write fault).
  std::vector<Task*> active;
  std::vector<pollfd> fds;
  std::vector<Task*> owners;
  while (true) {
    // Start what may start, in order.
    while (!interrupted()) {
      while (next < tasks_.size() &&
             tasks_[next]->state_ != Task::State::kPending) {
        ++next;
      }
      if (next >= tasks_.size() ||
          static_cast<int>(running_.size()) >= max_parallel) {
        break;
      }
      (void)tasks_[next++]->Start();  // A failure marks the task Errored.
    }
    active.assign(running_.begin(), running_.end());
    if (active.empty()) break;

    // Wait for a task to end, a signal, a deadline or a progress tick.
    fds.clear();
    owners.clear();
    for (Task* task : active) {
      fds.push_back({task->process_->pidfd(), POLLIN, 0});
      owners.push_back(task);
      if (task->process_->result_fd() >= 0) {
        fds.push_back({task->process_->result_fd(), POLLIN, 0});
        owners.push_back(task);
      }
    }
    fds.push_back({signal_fd_, POLLIN, 0});
    owners.push_back(nullptr);
    const int reporter_index = static_cast<int>(fds.size());
    if (reporter_.has_value() && reporter_->control_fd() >= 0) {
      fds.push_back({reporter_->control_fd(), POLLIN, 0});
      owners.push_back(nullptr);
    }

    const absl::Time now = absl::Now();
    absl::Time wake = absl::InfiniteFuture();
    for (Task* task : active) {
      if (task->kill_deadline_.has_value()) {
        wake = std::min(wake, *task->kill_deadline_);
      } else if (task->definition_.timeout != absl::InfiniteDuration()) {
        wake = std::min(wake, task->start_time_ + task->definition_.timeout);
      }
    }
    if (options_.console_is_tty) wake = std::min(wake, now + absl::Seconds(1));
    int timeout_ms = -1;
    if (wake != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(std::max<int64_t>(
          0, absl::ToInt64Milliseconds(wake - now + absl::Milliseconds(1))));
    }
    FlushReporter();  // before sleeping: what was posted goes out
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0 && errno != EINTR) {
      PLOG(ERROR) << "poll";
      break;
    }

    for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == signal_fd_) {
        signalfd_siginfo info;
        while (::read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
          OnInterrupt(static_cast<int>(info.ssi_signo));
        }
      } else if (static_cast<int>(i) == reporter_index) {
        CheckReporter();
      } else if (Task* task = owners[i];
                 task != nullptr && task->state_ == Task::State::kRunning) {
        if (fds[i].fd == task->process_->result_fd()) {
          const absl::Status drained = task->process_->DrainResult();
          if (!drained.ok()) LOG(WARNING) << task->id() << ": " << drained;
        } else {
          (void)task->Join(absl::ZeroDuration());
        }
      }
    }

    // Timeouts: SIGTERM to the group, SIGKILL after the grace.
    const absl::Time after = absl::Now();
    active.assign(running_.begin(), running_.end());
    for (Task* task : active) {
      if (task->kill_deadline_.has_value()) {
        if (after >= *task->kill_deadline_) {
          LOG(WARNING) << "task " << task->id()
                       << " outlived its termination grace: SIGKILL";
          (void)task->process_->Kill();
          task->Complete();
        }
      } else if (task->definition_.timeout != absl::InfiniteDuration() &&
                 after >= task->start_time_ + task->definition_.timeout) {
        task->abort_reason_ =
            absl::StrCat("timed out after ",
                         absl::FormatDuration(task->definition_.timeout));
        LOG(WARNING) << "task " << task->id() << " " << task->abort_reason_
                     << ": SIGTERM to its process group";
        (void)task->process_->Signal(SIGTERM);
        task->kill_deadline_ = after + options_.termination_grace;
      }
    }
    if (progress_.has_value()) progress_->Refresh(absl::Now());
  }
}

int Runtime::Finish() {
  CHECK(!finished_) << "Runtime::Finish() called twice";
  finished_ = true;
  for (auto& task : tasks_) {
    if (task->state_ == Task::State::kRunning) {
      (void)task->Terminate("still running when the job finished");
    }
  }
  const absl::Time stop = absl::Now();

  std::vector<std::string> report_files;
  bool report_written = false;
  // Each task's result as the report has it: its own result rolled up with
  // its sections' (a section a forked child left open is Errored, say). The
  // summary and the exit code must say what results.json says.
  absl::flat_hash_map<std::string, reporter::ResultInfo> reported;
  if (reporter_.has_value()) {
    auto finalized = reporter_->Finalize();
    if (finalized.ok()) {
      report_files = {finalized->paths.results_json, finalized->paths.xunit_xml};
      report_written = true;
      for (const reporter::TaskReport& task : finalized->report.tasks()) {
        reported[task.id()] = task.result();
      }
    } else {
      const std::string warning = absl::StrCat(
          "reporter could not finalize (", finalized.status().ToString(),
          "); results.json was written from the tasks' results");
      LOG(ERROR) << warning;
      warnings_.push_back(warning);
      infrastructure_failed_ = true;
    }
    reporter_.reset();
  }
  if (!report_written) {
    // The runner's own view: every task's Task.result.
    reporter::ReportBuilder builder({.job_name = options_.job_name,
                                     .job_id = runinfo_.uid(),
                                     .start_time = start_time_});
    for (const auto& task : tasks_) {
      reporter::TaskInfo info;
      info.set_id(task->id());
      info.set_name(task->id());
      info.set_description(task->definition().description);
      info.set_logfile(task->log_path());
      (void)builder.RegisterTask(info);
      if (task->result().has_value()) {
        builder.RecordTaskResult(
            task->id(), reporter::MakeResultInfo(task->result()->result,
                                                 task->result()->reason));
      }
    }
    auto paths = reporter::WriteReport(builder.Build(stop), runinfo_.dir());
    if (paths.ok()) {
      report_files = {paths->results_json, paths->xunit_xml};
    } else {
      LOG(ERROR) << "cannot write the report: " << paths.status();
      warnings_.push_back(
          absl::StrCat("no report written: ", paths.status().ToString()));
      infrastructure_failed_ = true;
    }
  }

  // Descendants that escaped their task's group were re-parented to us; the
  // reporter server (forked without a Process handle) is gone by now.
  if (supervisor_.has_value()) {
    const auto killed = supervisor_->KillOrphans(options_.termination_grace);
    if (!killed.ok()) {
      LOG(ERROR) << "cannot end escaped processes: " << killed.status();
    } else if (!killed->empty()) {
      std::string pids;
      for (const ExitStatus& orphan : *killed) {
        absl::StrAppend(&pids, pids.empty() ? "" : ", ", orphan.pid);
      }
      const std::string warning = absl::StrCat(
          killed->size(), " process(es) that escaped their task's process "
                          "group were still running and were killed (pid ",
          pids, ")");
      LOG(WARNING) << warning;
      warnings_.push_back(warning);
    }
    supervisor_.reset();
  }

  JobSummary summary;
  summary.job_name = options_.job_name;
  summary.uid = runinfo_.uid();
  summary.start = start_time_;
  summary.stop = stop;
  summary.runinfo_dir = runinfo_.dir();
  summary.report_files = report_files;
  summary.warnings = warnings_;
  bool all_succeeded = !tasks_.empty();
  for (const auto& task : tasks_) {
    TaskSummaryRow row;
    row.id = task->id();
    row.description = task->definition().description;
    row.log_path = task->log_path();
    if (task->result().has_value()) {
      row.result = task->result()->result;
      row.reason = task->result()->reason;
      row.runtime = task->result()->runtime;
    } else {
      row.result = Result::kBlocked;
      row.reason = "never started";
    }
    if (auto it = reported.find(task->id()); it != reported.end()) {
      const std::optional<Result> rolled =
          reporter::ResultFromCode(it->second.value());
      if (rolled.has_value() && *rolled > row.result) {
        row.result = *rolled;
        row.reason = it->second.reason();
      }
    }
    all_succeeded = all_succeeded && reporter::IsSuccess(row.result);
    summary.tasks.push_back(std::move(row));
  }
  if (progress_.has_value()) progress_->Clear();
  LOG(INFO) << "summary:\n" << FormatSummary(summary);
  // Last, so that the archive holds the whole run, JobLog summary included.
  if (!options_.archive_dir.empty()) {
    const std::string archive =
        absl::StrCat(options_.archive_dir, "/", runinfo_.uid(), ".tar.gz");
    absl::Status archived = MakeDirectories(options_.archive_dir);
    if (archived.ok()) archived = WriteTarGz(runinfo_.dir(), archive);
    if (archived.ok()) {
      LOG(INFO) << "archive written: " << archive;
      summary.report_files.push_back(archive);
    } else {
      const std::string warning =
          absl::StrCat("no archive written: ", archived.ToString(),
                       " (the run directory is complete)");
      LOG(ERROR) << warning;
      summary.warnings.push_back(warning);
      infrastructure_failed_ = true;
    }
  }
  if (progress_.has_value()) progress_->Print(FormatSummary(summary));
  if (infrastructure_failed_) return kExitInfrastructure;
  return all_succeeded ? kExitAllSucceeded : kExitSomeDidNotSucceed;
}

}  // namespace taskfork::runner
