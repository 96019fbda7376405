#include "runner/runtime.h"

#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "glog/logging.h"
#include "ipc/shm_check.h"
#include "runner/archive.h"
#include "runner/gtest_sections.h"
#include "runner/local_executor.h"
#include "runner/task_body.h"
#include "runner/task_selection.h"
#include "tasklog/tasklog.h"

namespace taskfork::runner {

using reporter::Result;

// ---------------------------------------------------------------------------
// Task: a view of the Runtime's scheduler entry.

const Scheduler::Task& Task::scheduled() const {
  return runtime_->scheduler_->task(index_);
}
const Scheduler::Task& Task::shard(int k) const {
  return runtime_->scheduler_->task(index_ + k);
}
Task::State Task::state() const {
  if (!sharded()) return scheduled().state;
  int pending = 0;
  int done = 0;
  for (int k = 0; k < shards(); ++k) {
    pending += shard(k).state == State::kPending;
    done += shard(k).state == State::kDone;
  }
  if (done == shards()) return State::kDone;
  return pending == shards() ? State::kPending : State::kRunning;
}
std::optional<pid_t> Task::pid() const {
  std::optional<pid_t> first;
  absl::Time first_start = absl::InfiniteFuture();
  for (int k = 0; k < shards(); ++k) {
    const Scheduler::Task& run = shard(k);
    if (run.started && run.start_time < first_start) {
      first = run.pid;
      first_start = run.start_time;
    }
  }
  return first;
}
std::string Task::log_path() const {
  return sharded() ? shard_index_log_ : scheduled().launch.log_path;
}
const std::optional<TaskResult>& Task::result() const {
  return sharded() ? merged_result_ : scheduled().result;
}
bool Task::is_alive() const { return state() == State::kRunning; }
int Task::attempt() const { return scheduled().attempt; }

absl::Status Task::Start() {
  Scheduler& scheduler = *runtime_->scheduler_;
  if (!sharded() || state() == State::kDone) return scheduler.Start(index_);
  if (state() != State::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", id(), " was started already"));
  }
  // Every shard, even if one cannot start (it is then done: Errored).
  absl::Status first_error;
  for (int k = 0; k < shards(); ++k) {
    const absl::Status started = scheduler.Start(index_ + k);
    if (first_error.ok()) first_error = started;
  }
  return first_error;
}

absl::Status Task::Skip(std::string reason) {
  if (state() != State::kPending) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", id(), " cannot be skipped: it is not pending"));
  }
  for (int k = 0; k < shards(); ++k) {
    TASKFORK_RETURN_IF_ERROR(runtime_->scheduler_->Skip(index_ + k, reason));
  }
  return absl::OkStatus();
}

absl::Status Task::Join(absl::Duration timeout) {
  Scheduler& scheduler = *runtime_->scheduler_;
  if (!sharded()) return scheduler.Join(index_, timeout);
  const absl::Time deadline = absl::Now() + timeout;
  for (int k = 0; k < shards(); ++k) {
    const absl::Status joined = scheduler.Join(
        index_ + k, std::max(deadline - absl::Now(), absl::ZeroDuration()));
    if (joined.code() == absl::StatusCode::kDeadlineExceeded) {
      return absl::DeadlineExceededError(
          absl::StrCat("task ", id(), " still running after ",
                       absl::FormatDuration(timeout)));
    }
    TASKFORK_RETURN_IF_ERROR(joined);
  }
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
  absl::Status first_error;
  for (int k = 0; k < shards(); ++k) {
    const absl::Status terminated =
        runtime_->scheduler_->Terminate(index_ + k, reason);
    if (first_error.ok()) first_error = terminated;
  }
  return first_error;
}

void Task::MergeShardResults() {
  TaskResult merged;
  merged.result = Result::kSkipped;  // the identity of RollUp
  for (int k = 0; k < shards(); ++k) {
    merged.result = reporter::RollUp(merged.result, shard(k).result->result);
  }
  int first = -1;  // the first shard with the merged result
  bool same_reason = true;
  for (int k = 0; k < shards(); ++k) {
    const TaskResult& result = *shard(k).result;
    if (first < 0 && result.result == merged.result) first = k;
    same_reason = same_reason && result.reason == shard(0).result->reason;
  }
  merged.reason = shard(first).result->reason;
  if (merged.result == Result::kFailed) {
    // A shard's reason may be just its exit code: name the first failing
    // test of the first failing shard, from its JSON output.
    const auto tests = ReadGTestJson(GTestJsonPath(
        shard(first).launch.runinfo_dir, id(), first));
    if (tests.ok()) {
      const auto failed = std::find_if(
          tests->begin(), tests->end(), [](const GTestSection& test) {
            return test.result == Result::kFailed;
          });
      if (failed != tests->end()) {
        merged.reason = absl::StrCat(failed->name, ": ", failed->reason);
        same_reason = false;
      }
    }
  }
  if (!same_reason && !merged.reason.empty()) {
    absl::StrAppend(&merged.reason, " (shard ", first, " of ", shards(), ")");
  }
  absl::Time start = absl::InfiniteFuture();
  absl::Time end = absl::InfinitePast();
  int exited_zero = 0;
  for (int k = 0; k < shards(); ++k) {
    const Scheduler::Task& run = shard(k);
    if (run.started) {
      start = std::min(start, run.start_time);
      end = std::max(end, run.start_time + run.result->runtime);
    }
    if (run.exit.has_value() && run.exit->exited() && run.exit->exit_code == 0) {
      ++exited_zero;
      continue;
    }
    absl::StrAppend(&merged.exit_status, merged.exit_status.empty() ? "" : "; ",
                    "shard ", k, ": ",
                    !run.started             ? "not started"
                    : run.exit.has_value()   ? run.result->exit_status
                                             : "no exit status");
  }
  merged.runtime = start < end ? end - start : absl::ZeroDuration();
  if (start == absl::InfiniteFuture()) {
    merged.exit_status.clear();  // no shard ran (skipped, blocked)
  } else if (exited_zero > 0) {
    absl::StrAppend(&merged.exit_status, merged.exit_status.empty() ? "" : "; ",
                    exited_zero == shards() ? "all " : "", exited_zero, " of ",
                    shards(), " shard processes exited with code 0");
  }
  merged_result_ = std::move(merged);
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

  // Tasks on cluster nodes reach the reporter over TCP (with the run's
  // secret), on the host the workers connect to.
  const std::string reporter_listen =
      !opts.reporter_listen.empty() || opts.executor != ExecutorKind::kSlurm
          ? opts.reporter_listen
          : absl::StrCat(opts.slurm.listen_host, ":0");
  TASKFORK_ASSIGN_OR_RETURN(
      JobReporter reporter,
      JobReporter::Start(info, opts.job_name, reporter_listen));
  runtime->reporter_.emplace(std::move(reporter));

  // SIGINT / SIGTERM become events of the scheduler's loop. Task processes
  // reset their mask and dispositions (ProcessOptions::reset_signals).
  TASKFORK_ASSIGN_OR_RETURN(InterruptSignals signals, InterruptSignals::Create());
  runtime->signals_.emplace(std::move(signals));
  if (opts.executor == ExecutorKind::kSlurm) {
    if (opts.task_stdin != StdinPolicy::kDevNull) {
      return absl::InvalidArgumentError(
          "interactive mode needs the local executor (a Slurm worker has no "
          "terminal)");
    }
    SlurmExecutorOptions slurm = opts.slurm;
    slurm.job_name = opts.job_name;
    slurm.run_uid = info.uid();
    slurm.runinfo_dir = info.dir();
    TASKFORK_ASSIGN_OR_RETURN(runtime->executor_,
                              SlurmExecutor::Create(std::move(slurm)));
    LOG(INFO) << "executor: slurm, job name "
              << static_cast<SlurmExecutor*>(runtime->executor_.get())
                     ->slurm_job_name()
              << ", " << opts.slurm.nodes << " node(s)";
  } else {
    runtime->executor_ = std::make_unique<LocalExecutor>();
  }
  Runtime* r = runtime.get();
  SchedulerHooks hooks;
  // The task's client may say hello as soon as it runs, on a socket of its
  // own: the server must know the task by then (registered_tasks_only).
  hooks.before_start = [r](size_t, TaskLaunch* launch) {
    r->reporter_->Sync();
    launch->reporter_socket = r->reporter_socket();  // "" once it died
    launch->reporter_secret_file = r->reporter_->secret_file();
  };
  hooks.on_started = [r](size_t index) { r->OnStarted(index); };
  hooks.on_done = [r](size_t index) { r->OnDone(index); };
  hooks.before_wait = [r] { r->reporter_->Flush(); };
  hooks.on_fd = [r](int) { r->reporter_->Check(); };  // the control socket
  hooks.on_tick = [r](absl::Time now) {
    if (r->progress_.has_value()) r->progress_->Refresh(now);
  };
  runtime->scheduler_ = std::make_unique<Scheduler>(
      runtime->executor_.get(), &*runtime->signals_,
      SchedulerOptions{.termination_grace = opts.termination_grace,
                       .tick_every_second = opts.console_is_tty},
      std::move(hooks));
  if (runtime->reporter_->control_fd() >= 0) {
    runtime->scheduler_->WatchFd(runtime->reporter_->control_fd());
  }
  runtime->reporter_->set_on_death(
      [r](int fd) { r->scheduler_->UnwatchFd(fd); });
  if (opts.console_fd >= 0) {
    runtime->progress_.emplace(opts.console_fd, opts.console_is_tty, 0);
  }
  return runtime;
}

Runtime::~Runtime() {
  scheduler_.reset();
  executor_.reset();      // SIGKILLs and reaps what still runs
  supervisor_.reset();    // ends escaped descendants, if Finish() did not
  reporter_.reset();
  signals_.reset();       // drops unhandled interrupts, restores the mask
  if (joblog_installed_) {
    const absl::Status uninstalled = tasklog::TaskLog::Uninstall();
    if (!uninstalled.ok()) {
      LOG(WARNING) << "JobLog: " << uninstalled;
    }
  }
}

std::string Runtime::reporter_socket() const {
  if (!reporter_.has_value()) return "";
  const std::string tcp = reporter_->tcp_address();
  return tcp.empty() ? reporter_->socket_path() : tcp;
}

TaskRecord Runtime::Record(const Task& task) const {
  return {task.id(), task.definition().description, task.log_path(),
          task.result()};
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
  if (definition.shards < 1 ||
      (definition.shards > 1 &&
       (!definition.gtest || definition.argv.empty()))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task \"", definition.id, "\": shards ", definition.shards,
        " (shards must be >= 1, and > 1 only for a gtest command)"));
  }
  tasks_.push_back(std::unique_ptr<Task>(
      new Task(this, scheduler_->size(), std::move(definition))));
  Task* task = tasks_.back().get();
  const std::string log_name = absl::StrCat("TaskLog.", task->id());
  std::string shard_logs;
  for (int k = 0; k < task->shards(); ++k) {
    TaskLaunch launch;
    launch.definition = &task->definition_;
    launch.log_path = runinfo_.Path(log_name);
    if (task->sharded()) {
      launch.shard = GTestShard{.index = k, .total = task->shards()};
      const std::string shard_log = absl::StrCat(log_name, ".shard-", k);
      launch.log_path = runinfo_.Path(shard_log);
      absl::StrAppend(&shard_logs, shard_log, "\n");
    }
    launch.runinfo_dir = runinfo_.dir();
    launch.task_stdin = options_.task_stdin;
    CHECK_EQ(scheduler_->Add(std::move(launch)), task->index_ + k);
    task_of_entry_.push_back(task);
  }
  if (task->sharded()) {
    // The task's own log names its shards' logs (in the same directory).
    task->shard_index_log_ = runinfo_.Path(log_name);
    const absl::Status written = runinfo_.WriteFile(
        log_name, absl::StrCat("task ", task->id(), " runs as ",
                               task->shards(),
                               " GoogleTest shards, each with its own log:\n",
                               shard_logs));
    if (!written.ok()) LOG(WARNING) << "task " << task->id() << ": " << written;
  }
  reporter_->RegisterTask(Record(*task));
  if (progress_.has_value()) {
    progress_.emplace(options_.console_fd, options_.console_is_tty,
                      static_cast<int>(tasks_.size()));
  }
  return task;
}

namespace {

// " shard <k> of <n>" for a shard's entry, "" for a task's own.
std::string ShardName(const Scheduler::Task& run) {
  if (!run.launch.shard.has_value()) return "";
  return absl::StrCat(" shard ", run.launch.shard->index, " of ",
                      run.launch.shard->total);
}

}  // namespace

void Runtime::OnStarted(size_t index) {
  const Task& task = *task_of_entry_[index];
  const Scheduler::Task& run = scheduler_->task(index);
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", task.id(), ShardName(run), " started, pid ",
                             run.pid, ", log ", run.launch.log_path));
  if (task.sharded()) {
    int started = 0;
    for (int k = 0; k < task.shards(); ++k) started += task.shard(k).started;
    if (started > 1) return;  // the task started with its first shard
  }
  reporter_->TaskStarted(task.id(), task.definition().description,
                         task.log_path(), run.pid, run.start_time);
  if (progress_.has_value()) progress_->Started(task.id(), run.pid, absl::Now());
}

void Runtime::OnDone(size_t index) {
  Task& task = *task_of_entry_[index];
  if (task.sharded()) {
    const Scheduler::Task& run = scheduler_->task(index);
    RunnerLogLine(__FILE__, __LINE__,
                  absl::StrCat("task ", task.id(), ShardName(run), " done: ",
                               reporter::ResultName(run.result->result),
                               run.result->reason.empty() ? "" : ", ",
                               run.result->reason,
                               run.result->exit_status.empty() ? "" : "; ",
                               run.result->exit_status));
    if (task.state() != Task::State::kDone) return;
    task.MergeShardResults();
  }
  const TaskResult& result = *task.result();
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", task.id(), " done: ",
                             reporter::ResultName(result.result),
                             result.reason.empty() ? "" : ", ", result.reason,
                             result.exit_status.empty() ? "" : "; ",
                             result.exit_status));
  reporter_->TaskEnded(task.id(), task.pid().value_or(0), result);
  const bool retrying = ShouldRetry(task);
  if (progress_.has_value()) {
    if (retrying) {
      progress_->Retrying(task.id(), result.result, result.runtime,
                          result.reason, task.attempt() + 1,
                          options_.retries + 1, absl::Now());
    } else {
      progress_->Finished(task.id(), result.result, result.runtime,
                          result.reason, absl::Now());
    }
  }
  if (retrying) Retry(task);  // resets the entry: `result` is gone after
}

namespace {

// The tests of a GoogleTest task's last run that did not pass or skip, as a
// --gtest_filter (none: all of them); when its JSON cannot be read (it
// crashed), the tests it was to run.
std::string FailedGTests(const RunInfo& runinfo, const TaskDefinition& task) {
  const auto tests = ReadGTestJson(GTestJsonPath(runinfo.dir(), task.id));
  if (!tests.ok()) return task.gtest_filter;  // the same tests again
  std::vector<std::string> failed;
  for (const GTestSection& test : *tests) {
    if (!reporter::IsSuccess(test.result)) failed.push_back(test.name);
  }
  return absl::StrJoin(failed, ":");
}

}  // namespace

bool Runtime::ShouldRetry(const Task& task) const {
  // A sharded task is not retried: its shards' tests are one task's
  // sections, which one shard's attempt cannot set apart.
  if (task.sharded()) return false;
  const Scheduler::Task& run = task.scheduled();
  const reporter::Result result = run.result->result;
  const bool retriable = result == reporter::Result::kFailed ||
                         result == reporter::Result::kErrored ||
                         (result == reporter::Result::kAborted && run.timed_out);
  return in_run_all_ && retriable && run.started && !interrupted() &&
         run.attempt <= options_.retries;
}

void Runtime::Retry(Task& task) {
  const Scheduler::Task& run = task.scheduled();
  const int next = run.attempt + 1;
  if (task.definition_.gtest) {
    task.definition_.gtest_filter = FailedGTests(runinfo_, task.definition_);
  }
  TaskLaunch launch = run.launch;
  launch.log_path = runinfo_.Path(
      absl::StrCat("TaskLog.", task.id(), ":attempt-", next));
  const absl::Status retried =
      scheduler_->Retry(task.index_, std::move(launch));
  if (!retried.ok()) {
    LOG(WARNING) << retried;
    return;
  }
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", task.id(), " runs again: attempt ", next,
                             " of ", options_.retries + 1,
                             task.definition_.gtest_filter.empty()
                                 ? ""
                                 : ", tests " + task.definition_.gtest_filter));
  reporter_->BeginAttempt(task.id(), task.log_path());
}

void Runtime::RunAll(int max_parallel) {
  in_run_all_ = true;
  scheduler_->RunAll(max_parallel);
  in_run_all_ = false;
}

absl::Status Runtime::SelectTasks(const std::string& pattern) {
  std::vector<std::string> ids;
  for (const auto& task : tasks_) {
    if (task->state() != Task::State::kPending) {
      return absl::FailedPreconditionError(absl::StrCat(
          "cannot select tasks by \"", pattern, "\": task ", task->id(),
          " is no longer pending"));
    }
    ids.push_back(task->id());
  }
  TASKFORK_ASSIGN_OR_RETURN(const std::vector<bool> selected,
                            SelectTaskIds(pattern, ids));
  const std::string reason =
      absl::StrCat("not selected by --task=", pattern);
  for (size_t i = 0; i < tasks_.size(); ++i) {
    if (selected[i]) continue;
    TASKFORK_RETURN_IF_ERROR(tasks_[i]->Skip(reason));
  }
  return absl::OkStatus();
}

void Runtime::KillEscapedProcesses() {
  if (!supervisor_.has_value()) return;
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

std::string Runtime::WriteArchive(std::vector<std::string>* warnings) {
  const std::string archive =
      absl::StrCat(options_.archive_dir, "/", runinfo_.uid(), ".tar.gz");
  absl::Status archived = MakeDirectories(options_.archive_dir);
  if (archived.ok()) archived = WriteTarGz(runinfo_.dir(), archive);
  if (archived.ok()) {
    LOG(INFO) << "archive written: " << archive;
    return archive;
  }
  const std::string warning =
      absl::StrCat("no archive written: ", archived.ToString(),
                   " (the run directory is complete)");
  LOG(ERROR) << warning;
  warnings->push_back(warning);
  infrastructure_failed_ = true;
  return "";
}

int Runtime::Finish() {
  CHECK(!finished_) << "Runtime::Finish() called twice";
  finished_ = true;
  scheduler_->TerminateAll("still running when the job finished");
  const absl::Time stop = absl::Now();

  std::vector<TaskRecord> records;
  for (const auto& task : tasks_) records.push_back(Record(*task));
  absl::flat_hash_map<std::string, reporter::ResultInfo> reported;
  JobSummary summary;
  summary.report_files = reporter_->WriteReport(
      {.job_name = options_.job_name,
       .job_id = runinfo_.uid(),
       .start = start_time_,
       .stop = stop},
      records, runinfo_.dir(), &reported);
  // Descendants that escaped their task's group were re-parented to us.
  KillEscapedProcesses();

  summary.job_name = options_.job_name;
  summary.uid = runinfo_.uid();
  summary.start = start_time_;
  summary.stop = stop;
  summary.runinfo_dir = runinfo_.dir();
  summary.warnings = scheduler_->warnings();
  summary.warnings.insert(summary.warnings.end(),
                          reporter_->warnings().begin(),
                          reporter_->warnings().end());
  summary.warnings.insert(summary.warnings.end(), warnings_.begin(),
                          warnings_.end());
  summary.tasks = SummarizeTasks(records, reported);
  if (progress_.has_value()) progress_->Clear();
  LOG(INFO) << "summary:\n" << FormatSummary(summary);
  // Last, so that the archive holds the whole run, JobLog summary included.
  if (!options_.archive_dir.empty()) {
    const std::string archive = WriteArchive(&summary.warnings);
    if (!archive.empty()) summary.report_files.push_back(archive);
  }
  if (progress_.has_value()) progress_->Print(FormatSummary(summary));
  return RunnerExitCode(summary.tasks,
                        infrastructure_failed_ || reporter_->failed());
}

}  // namespace taskfork::runner
