// What a task is (TaskDefinition) and what became of it (TaskResult): the
// vocabulary shared by the job API (runner/runtime.h), the scheduler and
// the executors.
//
//   TaskDefinition t{.id = "t1", .timeout = absl::Minutes(5)};
//   t.argv = {"/bin/sh", "-c", "make check"};
//   // a Runtime runs it; its Task::result() is a TaskResult once done.
#ifndef TASKFORK_RUNNER_TASK_DEFINITION_H_
#define TASKFORK_RUNNER_TASK_DEFINITION_H_

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "reporter/result.h"
#include "runner/task_function.h"

namespace taskfork::runner {

// Environment of command tasks: the reporter's address (socket path or
// tcp:HOST:PORT), its secret file (over TCP) and the task id, for binaries
// linking //reporter:gtest_listener.
inline constexpr char kReporterSocketEnv[] = "TASKFORK_REPORTER_SOCKET";
inline constexpr char kReporterSecretFileEnv[] =
    "TASKFORK_REPORTER_SECRET_FILE";
inline constexpr char kTaskIdEnv[] = "TASKFORK_TASK_ID";
// The task id under the name //reporter:gtest_listener reads (without it
// the listener reports as the program's name, which the runner's reporter
// refuses: not a registered task).
inline constexpr char kReporterTaskIdEnv[] = "TASKFORK_REPORTER_TASK_ID";

// One shard of a sharded GoogleTest task (TaskDefinition::shards > 1).
struct GTestShard {
  int index = 0;  // 0-based: GTEST_SHARD_INDEX
  int total = 1;  // GTEST_TOTAL_SHARDS
};

// What a task runs: a function (registered or a lambda) or a command.
struct TaskDefinition {
  std::string id;  // required, unique in the Runtime
  std::string description;
  // Aborted with SIGTERM (then SIGKILL after the grace) when exceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // A function task: `body` runs in the forked task process.
  std::function<absl::Status(TaskContext&)> body;
  // The TaskRegistry name of `body` (TASKFORK_TASK), set for the functions a
  // job spec names: an executor that runs tasks in another process of this
  // binary (the Slurm executor's workers) looks the function up by it. A
  // function task without one (a lambda) runs only locally.
  std::string function_name;
  std::vector<std::string> args;  // TaskContext::args()
  // A command task (when `argv` is not empty): fork + exec of argv[0] (an
  // absolute path) from the task process; exit code 0 is Passed.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_directory;  // empty: the runinfo directory
  // A GoogleTest binary: --gtest_output=json is added and each test is
  // reported as a section of the task.
  bool gtest = false;
  // With gtest: run as this many GoogleTest shards (>= 1; 1: not sharded),
  // each a process of its own (see Runtime::AddTask).
  int shards = 1;
  // A GoogleTest task runs only these tests (--gtest_filter=<value> after
  // argv) when set: by --retries and --rerun_failed, "Suite.a:Suite.b".
  std::string gtest_filter;
};

// What became of a task (Task.result).
struct TaskResult {
  reporter::Result result = reporter::Result::kPassed;
  std::string reason;
  absl::Duration runtime;
  // How the task process ended ("pid 12 exited with code 0 (...)").
  std::string exit_status;
};

// A task as the end of a run sees it: for the summary and the fallback
// report.
struct TaskRecord {
  std::string id;
  std::string description;
  std::string log_path;
  std::optional<TaskResult> result;  // none: never started
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_TASK_DEFINITION_H_
