// Loading and checking a job spec (runner/job.proto, protobuf text format).
//
//   JobSpecContext context{.known_functions = TaskRegistry::Global().Names()};
//   TASKFORK_ASSIGN_OR_RETURN(Job job, LoadJobSpec("runner/examples/demo.textpb", context));
//   for (const JobTask& task : job.tasks) ...
#ifndef TASKFORK_RUNNER_JOB_SPEC_H_
#define TASKFORK_RUNNER_JOB_SPEC_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runner/job.pb.h"

namespace taskfork::runner {

// One task of a checked job: defaults applied, durations parsed, the command's
// executable resolved.
struct JobTask {
  enum class Kind { kFunction, kCommand };

  std::string id;
  std::string description;
  absl::Duration timeout = absl::InfiniteDuration();
  Kind kind = Kind::kFunction;
  // kFunction: the registered name and its string arguments.
  std::string function;
  std::vector<std::string> args;
  // kCommand: argv with argv[0] an absolute path to an executable file.
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_directory;  // empty: the task's runinfo directory
  bool gtest = false;
  // gtest: the number of shards (>= 1; 1: not sharded).
  int shards = 1;
};

// The most shards one task may have.
inline constexpr int kMaxShards = 1000;

// A job spec that passed every check.
struct Job {
  std::string name;
  std::string spec_path;  // as given
  std::string spec_text;  // the bytes parsed (copied into the runinfo dir)
  int max_parallel = 1;   // >= 1
  absl::Duration termination_grace = absl::Seconds(5);
  std::vector<JobTask> tasks;
};

// What the checks need to know about the world.
struct JobSpecContext {
  // Names registered with TASKFORK_TASK; an unknown FunctionTask.name is an
  // error that lists them.
  std::vector<std::string> known_functions;
  // Directory relative command paths are tried against after the spec's own
  // directory (the runner's runfiles under `bazel run`); empty: none.
  std::string runfiles_dir;
  // $PATH for commands given without '/'.
  std::string path_env = "/usr/local/bin:/usr/bin:/bin";
  // max_parallel 0 means this many.
  int cpu_count = 1;
};

// Reads and checks the spec at `path`. Errors (all found, one per line, each
// "<path>:<line>:<column>: <problem>"):
//   kNotFound / kPermissionDenied  the file cannot be read;
//   kInvalidArgument               syntax errors, unknown fields, bad
//                                  durations, invalid or duplicate task ids,
//                                  a task without a kind, an unknown function
//                                  (the message lists the known ones), a
//                                  command without argv or whose executable
//                                  does not exist or is not executable,
//                                  shards < 1 or > kMaxShards or without
//                                  gtest, no tasks at all, negative
//                                  max_parallel.
absl::StatusOr<Job> LoadJobSpec(const std::string& path,
                                const JobSpecContext& context);

// As LoadJobSpec, for a spec already in memory; `display_path` names it in
// errors and its directory resolves relative command paths.
absl::StatusOr<Job> ParseJobSpec(absl::string_view text,
                                 const std::string& display_path,
                                 const JobSpecContext& context);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_JOB_SPEC_H_
