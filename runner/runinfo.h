// The runinfo directory of one job run (pyATS's runinfo):
//   <root>/<job>.<YYYYmmdd-HHMMSS.ffffff>/   this run: logs, reports, env.txt, spec copy
//   <root>/latest -> <job>.<...>             the last run started (replaced atomically)
//
//   TASKFORK_ASSIGN_OR_RETURN(RunInfo info, RunInfo::Create({.root = "runs", .job_name = "demo"}));
//   std::string log = info.Path("TaskLog.t1");
#ifndef TASKFORK_RUNNER_RUNINFO_H_
#define TASKFORK_RUNNER_RUNINFO_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace taskfork::runner {

struct RunInfoOptions {
  // Parent directory of all runs; created (with parents) if missing.
  std::string root = "runs";
  // Job name (already checked: no '/').
  std::string job_name;
  // Names the directory; two runs of one job started within the same
  // microsecond get "-2", "-3" suffixes.
  absl::Time start = absl::Now();
};

// One run's directory. Thread-compatible; plain data, copyable.
class RunInfo {
 public:
  // Creates the directories and the `latest` symlink. Errors name the path:
  // kPermissionDenied (EACCES/EROFS), kResourceExhausted (ENOSPC),
  // kFailedPrecondition (a path component is not a directory), ...
  static absl::StatusOr<RunInfo> Create(const RunInfoOptions& options);

  // "<job>.<YYYYmmdd-HHMMSS.ffffff>": the job uid (pyATS's job.uid).
  const std::string& uid() const { return uid_; }
  // Absolute path of this run's directory.
  const std::string& dir() const { return dir_; }
  // dir() + "/" + name.
  std::string Path(absl::string_view name) const;

  // Writes `contents` to dir()/name through a temporary file and rename, so a
  // reader never sees half a file. Errors name the path.
  absl::Status WriteFile(absl::string_view name,
                         absl::string_view contents) const;

  // env.txt: argv, user, host, kernel, cwd, start time, then the environment
  // sorted, one VAR=value a line.
  absl::Status WriteEnvironment(const std::vector<std::string>& argv) const;

 private:
  RunInfo(std::string uid, std::string dir)
      : uid_(std::move(uid)), dir_(std::move(dir)) {}

  std::string uid_;
  std::string dir_;
};

// Whether `name` may be a job name or task id: it names files in the runinfo
// directory (JobLog.<job>, TaskLog.<task>), so letters, digits, '-', '_', '.'
// and ':' only, and not empty.
bool IsValidRunInfoName(absl::string_view name);

// mkdir -p; errors name the first path that could not be made.
absl::Status MakeDirectories(const std::string& path, mode_t mode = 0755);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_RUNINFO_H_
