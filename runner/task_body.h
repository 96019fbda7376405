// The task process's side of a Task (runner-internal): set up the TaskLog and
// the report client, run the function or command, report, and hand the
// outcome back to the runner as bytes (Process::StartWithResultBytes).
#ifndef TASKFORK_RUNNER_TASK_BODY_H_
#define TASKFORK_RUNNER_TASK_BODY_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fork/process.h"
#include "runner/task_definition.h"
#include "runner/task_function.h"
#include "serialize/serialize.h"

namespace taskfork::runner {

// What travels from the task process to the runner (Task.result).
struct TaskOutcome {
  int result = 0;  // reporter::Result value
  std::string reason;
  TASKFORK_SERIALIZE(result, reason);
};

struct TaskBodyConfig {
  const TaskDefinition* definition = nullptr;
  std::string log_path;
  std::string runinfo_dir;
  std::string reporter_socket;  // an address (TaskLaunch); empty: no reporter
  std::string reporter_secret_file;  // with a tcp: reporter_socket
  StdinPolicy command_stdin = StdinPolicy::kDevNull;
  // Whether the task's stdout and stderr go into its TaskLog (the default);
  // false in interactive mode, where they stay the terminal so that a
  // prompt or a debugger is seen (glog lines still go to the TaskLog).
  bool capture_stdio = true;
  // Set for one shard of a sharded GoogleTest task: the command gets the
  // GTEST_* sharding environment and its own JSON output file.
  std::optional<GTestShard> shard;
};

// An INFO line of the runner's own (a task started, a task ended) into the
// log of this process (JobLog in the runner, TaskLog in a task process)
// through TaskLog::Log, not glog: glog's machinery writes a dozen pages per
// line, each a copy-on-write fault right after a task's fork. Without an
// installed log: LOG(INFO).
void RunnerLogLine(const char* file, int line, absl::string_view message);

// Runs in the forked task process; returns the encoded TaskOutcome. Never
// throws (exceptions of the task body become Errored).
std::string RunTaskBody(const TaskBodyConfig& config);

// Decodes what RunTaskBody returned. kDataLoss/kInvalidArgument for bytes
// that are not a TaskOutcome or name no result.
absl::StatusOr<TaskFunctionOutcome> DecodeTaskOutcome(absl::string_view bytes);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_TASK_BODY_H_
