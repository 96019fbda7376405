// Supervisor: the runner's subreaper mode. Descendants that escape their
// Process's group (setsid, setpgid, a double fork) are re-parented to this
// process instead of init, so they can still be found, killed and reaped, as
// Bazel's process-wrapper does.
//
//   TASKFORK_ASSIGN_OR_RETURN(Supervisor supervisor, Supervisor::Create());
//   ... start, join and terminate Processes ...
//   TASKFORK_RETURN_IF_ERROR(supervisor.KillOrphans(absl::Seconds(5)).status());
//
// What counts as an orphan: any child of this process that no live Process
// handle owns (fork/process.h keeps that set; a Process's own child is never
// touched here). That is every descendant re-parented to us by the kernel,
// and also children made by code that forks without Process (raw fork(),
// posix_spawn): in supervisor mode, make children through Process, or reap
// your own before the Supervisor sees them.
//
// Waiting uses pidfds (no polling loop); signals go through pidfd_send_signal
// to the pid we are the parent of, so a recycled pid is never hit.
#ifndef TASKFORK_FORK_SUPERVISOR_H_
#define TASKFORK_FORK_SUPERVISOR_H_

#include <sys/types.h>

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fork/process.h"

namespace taskfork {

// The subreaper role of this process. At most one exists at a time.
// Move-only RAII handle. Thread-safe (its operations may run concurrently
// with Process operations in other threads; two KillOrphans() at once are
// allowed but pointless). Not inherited by fork children: a child is not a
// subreaper (the kernel clears the flag on fork).
class Supervisor {
 public:
  // Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER).
  // kFailedPrecondition when another Supervisor exists in this process; the
  // prctl's errno otherwise.
  static absl::StatusOr<Supervisor> Create();

  Supervisor(Supervisor&& other) noexcept;
  Supervisor& operator=(Supervisor&& other) noexcept;
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;
  // SIGKILLs and reaps every orphan left (blocking until they are gone), and
  // clears the subreaper flag unless the process was a subreaper before
  // Create().
  ~Supervisor();

  // Current orphans (children of this process that no Process owns),
  // running or exited-but-unreaped, from /proc/self/task/*/children.
  // kInternal when /proc cannot be read.
  absl::StatusOr<std::vector<pid_t>> Orphans() const;

  // Reaps every orphan that has exited, without blocking; returns how each
  // ended (pid, exit code or signal; CPU and RSS from wait4).
  absl::StatusOr<std::vector<ExitStatus>> ReapExitedOrphans();

  // Ends every orphan: SIGTERM, up to `grace` for it to exit, then SIGKILL,
  // and reaps it. Repeats while ending orphans re-parents their own children
  // to us, until none is left. Returns how the ended ones ended. Errors:
  // kInternal for /proc, pidfd or wait failures.
  absl::StatusOr<std::vector<ExitStatus>> KillOrphans(absl::Duration grace);

 private:
  Supervisor() = default;
  bool active_ = false;
  bool was_subreaper_ = false;
};

}  // namespace taskfork

#endif  // TASKFORK_FORK_SUPERVISOR_H_
