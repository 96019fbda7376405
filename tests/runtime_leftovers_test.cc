// What a job run leaves in the process that ran it (the C++ job API,
// runner/runtime.h, used in-process): after the Runtime is gone, the same
// descriptors are open as before it, no child process is left, the signal
// mask is as it was, and /dev/shm holds nothing of the run's processes.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runner/runtime.h"
#include "runner/task_function.h"
#include "tests/run_leftovers.h"

namespace taskfork::runner {
namespace {

using ::testing::IsEmpty;

std::string SignalMask() {
  sigset_t mask;
  ::pthread_sigmask(SIG_SETMASK, nullptr, &mask);
  std::string out;
  for (int signo = 1; signo < NSIG; ++signo) {
    if (::sigismember(&mask, signo) == 1) absl::StrAppend(&out, signo, " ");
  }
  return out;
}

absl::Status ForkAndPass(TaskContext&) {
  // A child in the task's process group, left running: ended with the task.
  if (::fork() == 0) {
    while (true) ::pause();
  }
  return absl::OkStatus();
}

absl::Status Hang(TaskContext&) {
  while (true) ::pause();
}

absl::Status Crash(TaskContext&) {
  ::raise(SIGSEGV);
  return absl::OkStatus();
}

// Runs one job of assorted tasks (passing, failing, crashing, timing out,
// leaving children, a command) in this process; returns its runinfo dir.
std::string RunJob(const std::string& name) {
  RuntimeOptions options;
  options.job_name = name;
  options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
  options.console_fd = -1;
  options.screen_log_severity = std::nullopt;
  options.termination_grace = absl::Milliseconds(200);
  options.archive_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/archive");
  auto runtime = Runtime::Create(std::move(options));
  EXPECT_TRUE(runtime.ok()) << runtime.status();
  if (!runtime.ok()) return "";
  std::vector<TaskDefinition> tasks(6);
  tasks[0] = {.id = "ok", .body = [](TaskContext&) { return absl::OkStatus(); }};
  tasks[1] = {.id = "fail", .body = [](TaskContext&) {
                return absl::InternalError("no");
              }};
  tasks[2] = {.id = "crash", .body = Crash};
  tasks[3] = {.id = "slow", .timeout = absl::Milliseconds(300), .body = Hang};
  tasks[4] = {.id = "forks", .body = ForkAndPass};
  tasks[5] = {.id = "command", .argv = {"/bin/sh", "-c", "sleep 60 & exit 0"}};
  for (TaskDefinition& task : tasks) {
    EXPECT_TRUE((*runtime)->AddTask(std::move(task)).ok());
  }
  (*runtime)->RunAll(3);
  EXPECT_EQ((*runtime)->Finish(), kExitSomeDidNotSucceed);
  return (*runtime)->runinfo().dir();
}

TEST(RuntimeLeftovers, NothingOutlivesTheRuntime) {
  // The first run in a process sets up what lives as long as the process
  // (glog, at-fork handlers, tasklog's copy of the screen's stderr for its
  // messages): compare the second run against the state after the first.
  const std::string mask_before = SignalMask();
  RunJob("warmup");
  EXPECT_EQ(SignalMask(), mask_before);
  const std::map<int, std::string> fds_before = tests::OpenDescriptors();

  const std::string run_dir = RunJob("leftovers");
  ASSERT_FALSE(run_dir.empty());

  EXPECT_EQ(tests::OpenDescriptors(), fds_before);
  EXPECT_EQ(SignalMask(), mask_before);
  // No child of ours is left, running or a zombie.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
  // Nor anything of the run's processes: this one, the reporter server, 6
  // tasks, a task's child, ...
  const std::set<pid_t> pids = tests::PidsNamedInRun(run_dir);
  EXPECT_GE(pids.size(), 9u);
  EXPECT_THAT(tests::LivingProcesses(pids, {::getpid()}), IsEmpty());
  EXPECT_THAT(tests::SharedMemorySegmentsOf(pids), IsEmpty());
}

}  // namespace
}  // namespace taskfork::runner
