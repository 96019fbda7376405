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
#ifndef TASKFORK_RUNNER_RUNTIME_H_
#define TASKFORK_RUNNER_RUNTIME_H_

#include <signal.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fork/process.h"
#include "fork/supervisor.h"
#include "glog/logging.h"
#include "reporter/result.h"
#include "reporter/server.h"
#include "runner/console.h"
#include "runner/runinfo.h"
#include "runner/task_function.h"

namespace taskfork::runner {

// Runner exit codes (pyATS's, DESIGN.md "Results").
inline constexpr int kExitAllSucceeded = 0;
inline constexpr int kExitSomeDidNotSucceed = 1;
inline constexpr int kExitBadInput = 2;
inline constexpr int kExitInfrastructure = 3;
inline constexpr int kExitOther = 4;

// Environment of command tasks: the reporter socket and the task id, for
// binaries linking //reporter:gtest_listener.
inline constexpr char kReporterSocketEnv[] = "TASKFORK_REPORTER_SOCKET";
inline constexpr char kTaskIdEnv[] = "TASKFORK_TASK_ID";

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
  // JobLog lines of this severity and above also go to the screen.
  std::optional<google::LogSeverity> screen_log_severity = google::GLOG_WARNING;
};

class Runtime;

// What a task runs: a function (registered or a lambda) or a command.
struct TaskDefinition {
  std::string id;  // required, unique in the Runtime
  std::string description;
  // Aborted with SIGTERM (then SIGKILL after the grace) when exceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // A function task: `body` runs in the forked task process.
  std::function<absl::Status(TaskContext&)> body;
  std::vector<std::string> args;  // TaskContext::args()
  // A command task (when `argv` is not empty): fork + exec of argv[0] (an
  // absolute path) from the task process; exit code 0 is Passed.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_directory;  // empty: the runinfo directory
  // A GoogleTest binary: --gtest_output=json is added and each test is
  // reported as a section of the task.
  bool gtest = false;
};

// What became of a task (Task.result).
struct TaskResult {
  reporter::Result result = reporter::Result::kPassed;
  std::string reason;
  absl::Duration runtime;
  // How the task process ended ("pid 12 exited with code 0 (...)").
  std::string exit_status;
};

// One task: a forked process. Created by Runtime::AddTask, owned by the
// Runtime. Thread-compatible (the runner's thread).
//
//   | state    | event                              | next     |
//   |----------|------------------------------------|----------|
//   | pending  | Start()                            | running  |
//   | pending  | the job is interrupted             | done (Blocked) |
//   | running  | the process ends, Join()/Wait()    | done     |
//   | running  | Terminate() / timeout / Ctrl-C     | done (Aborted) |
class Task {
 public:
  enum class State { kPending, kRunning, kDone };

  const std::string& id() const { return definition_.id; }
  const TaskDefinition& definition() const { return definition_; }
  State state() const { return state_; }
  // The task process, once started (pyATS: None until started).
  std::optional<pid_t> pid() const;
  // The task's log file.
  std::string log_path() const;
  // Set once the task is done (pyATS: None until terminated).
  const std::optional<TaskResult>& result() const { return result_; }
  bool is_alive() const;

  // Forks the task process. kFailedPrecondition unless pending (also for a
  // task blocked by an interrupt: check Runtime::interrupted()); fork errors
  // (see Process::Start) otherwise, and the task is then done: Errored.
  absl::Status Start();
  // Waits up to `timeout` for the process to end and records its result.
  // kDeadlineExceeded if it is still running (it keeps running). Handles
  // SIGINT/SIGTERM meanwhile as RunAll does: the first aborts every running
  // task (SIGTERM, SIGKILL after the grace; this Join returns once this task
  // ended) and blocks the pending ones, the second kills every running task.
  absl::Status Join(absl::Duration timeout = absl::InfiniteDuration());
  // pyATS Task.wait(max_runtime): Join(max_runtime); if it is still running
  // then, Terminate()s it (result Aborted) and returns kDeadlineExceeded.
  absl::Status Wait(absl::Duration max_runtime);
  // SIGTERM to the task's process group, SIGKILL after the runtime's grace;
  // result Aborted with `reason`. No-op unless running.
  absl::Status Terminate(std::string reason = "terminated by the job");

 private:
  friend class Runtime;
  Task(Runtime* runtime, TaskDefinition definition)
      : runtime_(runtime), definition_(std::move(definition)) {}

  // Records the result of a process that has ended (Join() succeeded or it
  // was killed); `abort_reason_` turns it into Aborted.
  void Complete();
  void SetDone(TaskResult result);

  Runtime* runtime_;
  TaskDefinition definition_;
  State state_ = State::kPending;
  std::optional<Process> process_;
  absl::Time start_time_;
  // Set when the runner decided to stop the task (timeout, Ctrl-C).
  std::string abort_reason_;
  std::optional<absl::Time> kill_deadline_;
  std::optional<TaskResult> result_;
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
  // duplicate id, or a definition with neither body nor argv.
  absl::StatusOr<Task*> AddTask(TaskDefinition definition);

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
  // The reporter's socket ("" once it died).
  std::string reporter_socket() const;
  // True after the first SIGINT/SIGTERM.
  bool interrupted() const { return interrupts_ > 0; }

 private:
  friend class Task;
  Runtime(RuntimeOptions options, RunInfo runinfo)
      : options_(std::move(options)), runinfo_(std::move(runinfo)) {}

  // Checks the reporter after a failed call or a hang-up on its control
  // socket; on death, logs it and keeps a warning (exit code 3).
  void CheckReporter();
  // Sends what was posted to the reporter (task registrations, starts and
  // ends); called before the runner sleeps in poll().
  void FlushReporter();
  // Waits until the reporter applied the registrations posted since the
  // last call (one round trip), so that a task's client is known to it.
  void SyncReporterRegistrations();
  void OnStarted(Task& task);
  void OnDone(Task& task);
  // First signal: abort running tasks, block pending ones. Second: kill all.
  void OnInterrupt(int signo);

  RuntimeOptions options_;
  RunInfo runinfo_;
  absl::Time start_time_ = absl::Now();
  std::optional<reporter::ReporterServer> reporter_;
  // The runner is a child subreaper: descendants that escaped their task's
  // process group (setsid, double fork) end up here and are killed at Finish.
  std::optional<Supervisor> supervisor_;
  std::vector<std::unique_ptr<Task>> tasks_;
  // The tasks in State::kRunning, in start order.
  std::vector<Task*> running_;
  // AddTask posted a registration not known to be applied yet.
  bool registrations_unsynced_ = false;
  std::optional<Progress> progress_;
  std::vector<std::string> warnings_;
  bool infrastructure_failed_ = false;
  int interrupts_ = 0;
  int signal_fd_ = -1;
  // The signal mask before Create() blocked SIGINT and SIGTERM.
  std::optional<sigset_t> saved_signal_mask_;
  bool joblog_installed_ = false;
  bool finished_ = false;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_RUNTIME_H_
