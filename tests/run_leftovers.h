// Test helpers that find what a job run may have left behind, from what the
// run's own logs say about its processes.
//
//   std::set<pid_t> pids = PidsNamedInRun(run_dir);     // runner, reporter, tasks, children
//   EXPECT_THAT(SharedMemorySegmentsOf(pids), IsEmpty());
//   EXPECT_THAT(LivingProcesses(pids, {::getpid()}), IsEmpty());
#ifndef TASKFORK_TESTS_RUN_LEFTOVERS_H_
#define TASKFORK_TESTS_RUN_LEFTOVERS_H_

#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"

namespace taskfork::tests {

// Every pid the files of the run directory `run_dir` name: the pid column of
// each log line (tasklog/FORMAT.md: "<time>Z <severity> <pid> <tid> ...")
// of JobLog and TaskLog files, and the "<pid>" of forked children's
// "TaskLog.<task>:pid-<pid>" files. That is the runner, the reporter server,
// every task process and every process a task forked. Missing or unreadable
// files are skipped.
std::set<pid_t> PidsNamedInRun(const std::string& run_dir);

// Same over every run directory under `runinfo_root` (not following the
// `latest` link twice).
std::set<pid_t> PidsNamedInRuns(const std::string& runinfo_root);

// Entries of /dev/shm whose name carries one of `pids` the way
// ipc::SharedMemory::UniqueName builds names ("taskfork-<prefix>-<pid>-...").
// Segments of other programs running at the same time are not matched.
std::vector<std::string> SharedMemorySegmentsOf(const std::set<pid_t>& pids);

// The pids of `pids` that are still running (not zombies), except `ignore`.
std::vector<pid_t> LivingProcesses(const std::set<pid_t>& pids,
                                   const std::set<pid_t>& ignore);

// What can be read of `path` ("" if nothing): a file in /proc that vanishes
// with its process mid-read (ESRCH) ends the read instead of throwing, as
// std::ifstream would.
std::string ReadFile(const std::string& path);

// This process's open descriptors: fd number -> readlink of /proc/self/fd/N
// ("/path", "pipe:[123]", "socket:[45]", "anon_inode:[pidfd]", ...).
std::map<int, std::string> OpenDescriptors();

// SIGKILLs `pid` (a process that need not be our child) and returns once it
// has exited (its pidfd turns readable: its descriptors and sockets are
// closed), or an error naming the pid: pidfd_open / kill failed, or it was
// still alive after `timeout`. Exiting can take long for a process with big
// mappings (TSan's shadow), so a test that must order "it is gone" before
// its next step waits here instead of guessing.
absl::Status KillAndAwaitExit(pid_t pid, absl::Duration timeout);

}  // namespace taskfork::tests

#endif  // TASKFORK_TESTS_RUN_LEFTOVERS_H_
