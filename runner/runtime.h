// The C++ job API (pyATS's job file `main(runtime)` with `Task`): a Runtime
// owns one job run (runinfo directory, JobLog, reporter server, tasks); each
// Task is a forked process with its own TaskLog and report client whose
// result comes back to the runner through a pipe (Task.result).
//
//   TASKFORK_ASSIGN_OR_RETURN(auto runtime, Runtime::Create({.job_name = "nightly"}));
//   Task* t = *runtime->AddTask({.id = "t1", .body = [](TaskContext& c) { ...; return absl::OkStatus(); }});
//   runtime->RunAll(/*max_parallel=*/2);         // or t->Start(); t->Wait(absl::Minutes(5));
//   return runtime->Finish();                    // report files, summary, exit code
//
// The //runner binary is this API driven by a job spec (runner/job.proto).
//
// A Runtime is a composition: RunInfo (the directory), JobLog, the reporter
// server, a Supervisor (subreaper), InterruptSignals, an Executor (the
// LocalExecutor: a forked process per task; or the SlurmExecutor) and the Scheduler (order,
// max_parallel, timeouts, Ctrl-C), plus the summary, the fallback report
// and the archive at Finish().
#ifndef TASKFORK_RUNNER_RUNTIME_H_
#define TASKFORK_RUNNER_RUNTIME_H_

#include <sys/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fork/process.h"
#include "fork/supervisor.h"
#include "glog/logging.h"
#include "runner/job_reporter.h"
#include "runner/console.h"
#include "runner/executor.h"
#include "runner/runinfo.h"
#include "runner/scheduler.h"
#include "runner/slurm_executor.h"
#include "runner/summary.h"
#include "runner/task_definition.h"
#include "runner/task_function.h"

namespace taskfork::runner {

// Where tasks run: forked here, or on a Slurm cluster's nodes.
enum class ExecutorKind {
  kLocal,  // LocalExecutor: a forked process per task on this machine
  kSlurm,  // SlurmExecutor: pilot workers started by srun (see its header)
};

struct RuntimeOptions {
  // Job name (runinfo directory, JobLog.<name>, report). Required; letters,
  // digits, '-', '_', '.', ':'.
  std::string job_name;
  // Parent of the runinfo directories (see RunInfo).
  std::string runinfo_root = "runs";
  // Recorded in env.txt.
  std::vector<std::string> argv;
  // If set, copied into the runinfo directory under this file name.
  std::string spec_file_name;
  std::string spec_text;
  // Check /dev/shm before anything runs (kFailedPrecondition etc. from
  // ipc::CheckSharedMemory otherwise).
  bool check_shared_memory = true;
  // Time between SIGTERM and SIGKILL when a task is stopped.
  absl::Duration termination_grace = absl::Seconds(5);
  // If set, Finish() writes `<archive_dir>/<uid>.tar.gz` of the runinfo
  // directory (see runner/archive.h) once the report files are written,
  // creating archive_dir (with parents) if it is missing.
  std::string archive_dir;
  // Standard input of tasks: /dev/null, or the terminal (interactive mode:
  // with kControllingTerminal the task's stdout and stderr also stay the
  // runner's instead of going into its TaskLog, so a prompt or debugger is
  // seen; run such tasks one at a time).
  StdinPolicy task_stdin = StdinPolicy::kDevNull;
  // Where progress lines and the summary go; -1: nowhere.
  int console_fd = 1;
  // Redraw a status line (a terminal); false: one line per finished task.
  bool console_is_tty = false;
  // RunAll runs a task that ended Failed, Errored or Aborted by its timeout
  // again, right after it ended, up to this many more times (not after an
  // interrupt). A GoogleTest task runs only its tests that did not pass
  // (from its JSON; all of them when the binary wrote none). Each attempt
  // has its own TaskLog (TaskLog.<id>:attempt-<n> from the second); the
  // report keeps every attempt, and what passed after failing is flaky.
  // Sharded tasks are not retried.
  int retries = 0;
  // If set ("HOST:PORT", e.g. "0.0.0.0:0"), the reporter also listens on
  // TCP there (reporter/server.h: tcp_listen, with the run's secret in
  // reporter.secret) and tasks report over TCP: TaskLaunch carries the
  // "tcp:HOST:PORT" address and the secret file instead of the Unix socket,
  // for task processes on other hosts. TCP is not encrypted. With the
  // slurm executor it defaults to "<slurm.listen_host>:0".
  std::string reporter_listen;
  // Where the tasks run. kSlurm needs the runinfo directory on storage
  // every node sees and task_stdin kDevNull.
  ExecutorKind executor = ExecutorKind::kLocal;
  // With kSlurm: nodes, srun arguments, listen host, ...; job_name,
  // run_uid and runinfo_dir are filled in by Create().
  SlurmExecutorOptions slurm;
  // JobLog lines of this severity and above also go to the screen.
  std::optional<google::LogSeverity> screen_log_severity = google::GLOG_WARNING;
};

class Runtime;

// One task: a forked process. Created by Runtime::AddTask, owned by the
// Runtime. Thread-compatible (the runner's thread).
//
// A sharded GoogleTest task (TaskDefinition::shards = N > 1) is N scheduled
// runs, one per shard, each a process of its own with its own slot of
// max_parallel, timeout and TaskLog.<id>.shard-<k>; the Task is their sum:
// pending until a shard starts, running until every shard is done, then
// done with the merged result (see result()).
//
//   | state    | event                              | next     |
//   |----------|------------------------------------|----------|
//   | pending  | Start()                            | running  |
//   | pending  | the job is interrupted             | done (Blocked) |
//   | pending  | Runtime::SelectTasks() leaves it   | done (Skipped) |
//   | running  | the process ends, Join()/Wait()    | done     |
//   | running  | Terminate() / timeout / Ctrl-C     | done (Aborted) |
class Task {
 public:
  using State = TaskState;

  const std::string& id() const { return definition_.id; }
  const TaskDefinition& definition() const { return definition_; }
  State state() const;
  // The task process, once started (pyATS: None until started); sharded:
  // the process of the first shard that started.
  std::optional<pid_t> pid() const;
  // The task's log file; sharded: TaskLog.<id>, which names the shards'
  // logs.
  std::string log_path() const;
  // Set once the task is done (pyATS: None until terminated). Sharded: the
  // shards' worst result (reporter::RollUp) with the reason of the first
  // shard that has it ("(shard k of N)" appended unless every shard gives
  // that reason), the runtime from the first start to the last end, and an
  // exit status naming each shard whose process did not exit with code 0.
  const std::optional<TaskResult>& result() const;
  // Running: started and its end not handled yet.
  bool is_alive() const;
  // Which run of the task this is: 1, or more after retries.
  int attempt() const;

  // Forks the task process (sharded: every shard's at once, regardless of
  // max_parallel). kFailedPrecondition unless pending (also for a
  // task blocked by an interrupt: check Runtime::interrupted()); fork errors
  // (see Process::Start) otherwise, and the task is then done: Errored.
  absl::Status Start();
  // Marks a pending task done without running it: Skipped with `reason`
  // (it stays in the report and the summary). kFailedPrecondition unless
  // pending.
  absl::Status Skip(std::string reason);
  // Waits up to `timeout` for the process to end and records its result.
  // kDeadlineExceeded if it is still running (it keeps running). Meanwhile
  // the job goes on as in RunAll: other tasks' ends are recorded, timeouts
  // enforced, and SIGINT/SIGTERM handled (the first aborts every running
  // task, SIGTERM then SIGKILL after the grace, and blocks the pending ones;
  // the second kills every running task).
  absl::Status Join(absl::Duration timeout = absl::InfiniteDuration());
  // pyATS Task.wait(max_runtime): Join(max_runtime); if it is still running
  // then, Terminate()s it (result Aborted) and returns kDeadlineExceeded.
  absl::Status Wait(absl::Duration max_runtime);
  // SIGTERM to the task's process group, SIGKILL after the runtime's grace;
  // result Aborted with `reason`. No-op unless running.
  absl::Status Terminate(std::string reason = "terminated by the job");

 private:
  friend class Runtime;
  Task(Runtime* runtime, size_t index, TaskDefinition definition)
      : runtime_(runtime), index_(index), definition_(std::move(definition)) {}
  const Scheduler::Task& scheduled() const;
  // The scheduler entry of shard `k` (0 when not sharded).
  const Scheduler::Task& shard(int k) const;
  int shards() const { return definition_.shards; }
  bool sharded() const { return definition_.shards > 1; }
  // Sharded: merges the shards' results into merged_result_ (all done).
  void MergeShardResults();

  Runtime* runtime_;
  // In the Runtime's scheduler: its entry, or the first of its shards'
  // consecutive entries.
  size_t index_;
  TaskDefinition definition_;
  std::string shard_index_log_;  // sharded: TaskLog.<id>
  std::optional<TaskResult> merged_result_;  // sharded, once done
};

// One job run. Create() sets up the run; tasks are added and run; Finish()
// writes the report and returns the exit code. Thread-compatible.
class Runtime {
 public:
  // Creates the runinfo directory (env.txt, spec copy), installs the JobLog,
  // checks /dev/shm and starts the reporter server. Errors (all mean exit
  // code 3): those of RunInfo::Create, tasklog::JobLog::Install,
  // ipc::CheckSharedMemory and ReporterServer::Start, with what to fix.
  static absl::StatusOr<std::unique_ptr<Runtime>> Create(RuntimeOptions options);

  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
  // Kills what is still running (SIGKILL to each task's group), ends
  // escaped descendants (if Finish() did not), and undoes what Create() did
  // to the process: uninstalls the JobLog (a TaskLog installed before
  // Create() is not restored), closes its descriptors, and restores the
  // signal mask (a SIGINT/SIGTERM that arrived after the last one RunAll()
  // handled is discarded first). Afterwards the process has the descriptors
  // and children it had before Create() (tests/runtime_leftovers_test.cc).
  ~Runtime();

  // Declares a task (registered with the reporter, so it appears in the
  // report even if it never runs). kInvalidArgument for an empty or
  // duplicate id, a definition with neither body nor argv, or shards < 1
  // or > 1 without a gtest command.
  absl::StatusOr<Task*> AddTask(TaskDefinition definition);

  // Runs only the tasks whose id `pattern` (an ECMAScript regular
  // expression, matching the whole id) selects: the others are done at
  // once, Skipped with the reason "not selected by --task=<pattern>" (the
  // runner's flag), so they stay in the report and the summary. Call after
  // the AddTask()s, before anything starts. kInvalidArgument for an invalid
  // pattern or one that selects no task (see SelectTaskIds);
  // kFailedPrecondition once a task left its pending state.
  absl::Status SelectTasks(const std::string& pattern);

  // Runs every pending task, at most `max_parallel` at a time, in order;
  // enforces timeouts; handles SIGINT/SIGTERM (the first aborts running tasks
  // and blocks pending ones, the second kills everything at once); shows
  // progress. Returns when no task is running and none will start.
  void RunAll(int max_parallel);

  // Writes results.json and xunit.xml (through the reporter, or in-process
  // from the tasks' results when the reporter died), writes the archive
  // (options().archive_dir), prints the summary and returns the exit code
  // (kExit*). Running tasks are killed first. kExitInfrastructure when the
  // reporter died or the report or the archive could not be written (the
  // summary says which and why; the runinfo directory is always kept).
  int Finish();

  const RunInfo& runinfo() const { return runinfo_; }
  const RuntimeOptions& options() const { return options_; }
  const std::vector<std::unique_ptr<Task>>& tasks() const { return tasks_; }
  // The reporter's address for tasks: its socket, or "tcp:HOST:PORT" with
  // reporter_listen ("" once it died).
  std::string reporter_socket() const;
  // True after the first SIGINT/SIGTERM.
  bool interrupted() const { return scheduler_->interrupted(); }

 private:
  friend class Task;
  Runtime(RuntimeOptions options, RunInfo runinfo)
      : options_(std::move(options)), runinfo_(std::move(runinfo)) {}

  // `index`: a scheduler entry (a task, or one shard of one).
  void OnStarted(size_t index);
  void OnDone(size_t index);
  // Whether the task, just done, runs again (RuntimeOptions::retries).
  bool ShouldRetry(const Task& task) const;
  // Puts it back to run again (its next attempt's log and test filter).
  void Retry(Task& task);
  TaskRecord Record(const Task& task) const;
  // Ends descendants that escaped their task's process group.
  void KillEscapedProcesses();
  // Writes the archive; its path, or "" (with a warning) on failure.
  std::string WriteArchive(std::vector<std::string>* warnings);

  RuntimeOptions options_;
  RunInfo runinfo_;
  absl::Time start_time_ = absl::Now();
  std::optional<JobReporter> reporter_;
  // The runner is a child subreaper: descendants that escaped their task's
  // process group (setsid, double fork) end up here and are killed at Finish.
  std::optional<Supervisor> supervisor_;
  std::optional<InterruptSignals> signals_;
  std::unique_ptr<Executor> executor_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<Task>> tasks_;
  // The task of each scheduler entry (several entries for a sharded task).
  std::vector<Task*> task_of_entry_;
  std::optional<Progress> progress_;
  std::vector<std::string> warnings_;
  bool infrastructure_failed_ = false;
  bool joblog_installed_ = false;
  bool finished_ = false;
  bool in_run_all_ = false;  // retries happen in RunAll only
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_RUNTIME_H_
