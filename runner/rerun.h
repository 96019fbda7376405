// --rerun_failed: what to run again, from the last finished run of a job
// (ctest --rerun-failed, pytest --lf).
//
//   TASKFORK_ASSIGN_OR_RETURN(RerunPlan plan, PlanRerun("runs", "nightly"));
//   for each task of the spec: plan.Find(id) -> run it (with plan's failed
//   tests as its --gtest_filter), or skip it with plan's reason.
#ifndef TASKFORK_RUNNER_RERUN_H_
#define TASKFORK_RUNNER_RERUN_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork::runner {

struct RerunPlan {
  // The run it is based on: its directory and uid.
  std::string previous_dir;
  std::string previous_uid;
  struct TaskPlan {
    // Failed, Errored, Aborted or Blocked last time: runs again.
    bool rerun = false;
    // Its top-level sections (tests) that did not pass or skip; empty: the
    // whole task (it failed outside its sections, or had none).
    std::vector<std::string> failed_tests;
    // Why it does not run again: "passed in run <uid>".
    std::string skip_reason;
  };
  // By task id; a task of the spec that is not here did not run last time
  // and runs.
  absl::flat_hash_map<std::string, TaskPlan> tasks;
  // How many tasks run again.
  int rerun_count = 0;
};

// Reads the results.json of the newest run directory of `job_name` under
// `runinfo_root` (<job>.<YYYYmmdd-HHMMSS.ffffff>[-n]) that has one (a run
// killed before its report is passed over). Errors: kNotFound (no such run;
// the message says where it looked), those of reading it (path and errno),
// kInvalidArgument for a malformed results.json or one of another job.
absl::StatusOr<RerunPlan> PlanRerun(const std::string& runinfo_root,
                                    absl::string_view job_name);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_RERUN_H_
