#include "fork/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>  // NOLINT
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/sanitizers.h"
#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "fork/at_fork.h"
#include "fork/testing/gate.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::Gate;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// ---------------------------------------------------------------- helpers

// Sends one int from a child to the test (e.g. a grandchild's pid).
struct IntPipe {
  IntPipe() {
    auto ends = OwnedFd::Pipe();
    CHECK(ends.ok()) << ends.status();
    read = std::move(ends->read);
    write = std::move(ends->write);
  }
  void Send(int v) const {
    CHECK_EQ(::write(write.get(), &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
  }
  int Receive() const {
    int v = -1;
    CHECK_EQ(::read(read.get(), &v, sizeof(v)), static_cast<ssize_t>(sizeof(v)));
    return v;
  }
  OwnedFd read;
  OwnedFd write;
};

int PidfdOpen(pid_t pid) {
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// Whether the process behind `pidfd` exits within `timeout`.
bool ExitsWithin(int pidfd, absl::Duration timeout) {
  pollfd fd{pidfd, POLLIN, 0};
  return ::poll(&fd, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) == 1;
}

// Blocks until a signal ends the process.
[[noreturn]] void BlockForever() {
  for (;;) ::pause();
}

std::vector<int> OpenFds() {
  std::vector<int> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  CHECK(dir != nullptr);
  while (dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    if (fd != ::dirfd(dir)) fds.push_back(fd);
  }
  ::closedir(dir);
  return fds;
}

std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// Makes this test process a child subreaper, so orphaned grandchildren are
// re-parented to it and the tests can check they were killed and reap them.
void BecomeSubreaper() { CHECK_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }

// ---------------------------------------------------------------- exits

TEST(Process, ExitCodeZeroIsSuccess) {
  auto p = Process::Start({}, [] { return 0; });
  ASSERT_THAT(p, IsOk());
  EXPECT_GT(p->pid(), 0);
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success());
  EXPECT_TRUE(status->exited());
  EXPECT_EQ(status->exit_code, 0);
  EXPECT_EQ(status->signal, 0);
  EXPECT_EQ(status->pid, p->pid());
  EXPECT_GT(status->max_rss_bytes, 0);
  EXPECT_TRUE(p->reaped());
  EXPECT_FALSE(p->is_alive());
  EXPECT_EQ(p->pidfd(), -1);
}

TEST(Process, NonZeroExitCode) {
  auto p = Process::Start({}, [] { return 3; });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_FALSE(status->success());
  EXPECT_EQ(status->exit_code, 3);
  EXPECT_THAT(status->ToString(), HasSubstr("exited with code 3"));
  // Joining again returns the cached status.
  EXPECT_THAT(p->Join(), IsOk());
  EXPECT_EQ(p->Join()->exit_code, 3);
}

TEST(Process, KilledBySignalHasItsName) {
  auto p = Process::Start({}, [] {
    ::kill(::getpid(), SIGKILL);
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->signaled());
  EXPECT_EQ(status->signal, SIGKILL);
  EXPECT_EQ(status->exit_code, -1);
  EXPECT_EQ(status->signal_name(), "SIGKILL");
  EXPECT_THAT(status->ToString(), HasSubstr("killed by SIGKILL"));
}

TEST(Process, CrashIsReportedWithTheSignal) {
  auto p = Process::Start({}, [] {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);  // no core file from the test
    std::abort();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->signal, SIGABRT);
  EXPECT_FALSE(status->core_dumped);
  EXPECT_THAT(status->ToString(), HasSubstr("killed by SIGABRT"));
}

TEST(Process, CpuTimeIsReported) {
  // Spins until the child itself has used 20 ms of CPU (however loaded the
  // machine is), so wait4's figure must be at least that.
  auto p = Process::Start({}, [] {
    volatile uint64_t x = 0;
    timespec used{};
    do {
      for (int i = 0; i < 100000; ++i) x = x + 1;
      ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
    } while (absl::DurationFromTimespec(used) < absl::Milliseconds(20));
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  // (rusage has microsecond resolution; allow for rounding.)
  EXPECT_GE(status->user_cpu + status->system_cpu, absl::Milliseconds(19));
}

TEST(Process, UncaughtExceptionCarriesTypeAndWhat) {
  auto p = Process::Start({}, []() -> int { throw std::runtime_error("boom"); });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, kUncaughtExceptionExitCode);
  EXPECT_EQ(status->uncaught_exception, "std::runtime_error: boom");
  EXPECT_THAT(status->ToString(), HasSubstr("threw std::runtime_error: boom"));
}

TEST(Process, HugeExceptionMessageIsCutAndDoesNotBlockTheChild) {
  auto p = Process::Start({}, []() -> int {
    throw std::runtime_error(std::string(1 << 20, 'w'));
  });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join(absl::Seconds(60));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, kUncaughtExceptionExitCode);
  EXPECT_THAT(status->uncaught_exception, StartsWith("std::runtime_error: www"));
  EXPECT_LE(status->uncaught_exception.size(), 4096u + 1);
}

TEST(Process, NonStdExceptionCarriesItsType) {
  auto p = Process::Start({}, []() -> int { throw 42; });
  ASSERT_THAT(p, IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->uncaught_exception, "int");
}

TEST(ExitStatus, SignalNames) {
  ExitStatus s;
  EXPECT_EQ(s.signal_name(), "");
  s.signal = SIGSEGV;
  EXPECT_EQ(s.signal_name(), "SIGSEGV");
  s.signal = SIGRTMIN + 3;
  EXPECT_THAT(s.signal_name(), StartsWith("SIG"));
  s.core_dumped = true;
  EXPECT_THAT(s.ToString(), HasSubstr("(core dumped)"));
}

// ---------------------------------------------------------------- waiting

TEST(Process, JoinTimesOutWhileRunningThenSucceeds) {
  Gate gate;
  auto p = Process::Start({}, [&gate] {
    gate.Wait();
    return 7;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(p->Join(absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr(absl::StrCat("pid ", p->pid()))));
  EXPECT_THAT(p->Join(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_TRUE(p->is_alive());
  EXPECT_FALSE(p->reaped());
  gate.Open();
  auto status = p->Join(absl::Seconds(60));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, 7);
}

TEST(Process, PidfdsOfManyProcessesCanBePolledTogether) {
  Gate gate;
  std::vector<Process> processes;
  for (int i = 0; i < 4; ++i) {
    auto p = Process::Start({}, [&gate, i] {
      if (i == 2) return 0;  // only this one ends by itself
      gate.Wait();
      return 0;
    });
    ASSERT_THAT(p, IsOk());
    processes.push_back(*std::move(p));
  }
  std::vector<pollfd> fds;
  for (const Process& p : processes) fds.push_back({p.pidfd(), POLLIN, 0});
  ASSERT_EQ(::poll(fds.data(), fds.size(), 60000), 1);
  EXPECT_EQ(fds[2].revents & POLLIN, POLLIN);
  EXPECT_FALSE(processes[2].is_alive());
  EXPECT_THAT(processes[2].Join(absl::ZeroDuration()), IsOk());
  gate.Open();
  gate.Open();
  gate.Open();
  for (Process& p : processes) EXPECT_THAT(p.Join(), IsOk());
}

// ---------------------------------------------------------------- ending it

TEST(Process, TerminateSendsSigterm) {
  Gate started;
  auto p = Process::Start({}, [&started] {
    started.Open();
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  started.Wait();
  ASSERT_THAT(p->Terminate(absl::Seconds(60)), IsOk());
  auto status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->signal, SIGTERM);
  EXPECT_THAT(p->Terminate(absl::Seconds(1)), IsOk());  // no-op once reaped
}

TEST(Process, TerminateKillsAfterTheGrace) {
  Gate started;
  auto p = Process::Start({}, [&started] {
    ::signal(SIGTERM, SIG_IGN);
    started.Open();
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  started.Wait();
  ASSERT_THAT(p->Terminate(absl::Milliseconds(50)), IsOk());
  EXPECT_EQ(p->Join()->signal, SIGKILL);
}

TEST(Process, TerminateEndsGrandchildrenInTheGroup) {
  BecomeSubreaper();
  IntPipe grandchild_pid;
  auto p = Process::Start({}, [&grandchild_pid] {
    if (::fork() == 0) {
      ::signal(SIGTERM, SIG_IGN);  // only SIGKILL ends it
      grandchild_pid.Send(::getpid());
      BlockForever();
    }
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  const pid_t g = grandchild_pid.Receive();
  ASSERT_GT(g, 0);
  OwnedFd g_pidfd(PidfdOpen(g));
  ASSERT_TRUE(g_pidfd.valid());
  ASSERT_THAT(p->Terminate(absl::Seconds(60)), IsOk());
  EXPECT_EQ(p->Join()->signal, SIGTERM);
  EXPECT_TRUE(ExitsWithin(g_pidfd.get(), absl::Seconds(60)));
  int status = 0;
  ASSERT_EQ(::waitpid(g, &status, 0), g);  // re-parented to us
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST(Process, KillEndsTheGroup) {
  BecomeSubreaper();
  IntPipe grandchild_pid;
  auto p = Process::Start({}, [&grandchild_pid] {
    const pid_t g = ::fork();
    if (g == 0) BlockForever();
    grandchild_pid.Send(g);
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  const pid_t g = grandchild_pid.Receive();
  OwnedFd g_pidfd(PidfdOpen(g));
  ASSERT_THAT(p->Kill(), IsOk());
  EXPECT_EQ(p->Join()->signal, SIGKILL);
  EXPECT_TRUE(ExitsWithin(g_pidfd.get(), absl::Seconds(60)));
  ASSERT_EQ(::waitpid(g, nullptr, 0), g);
}

TEST(Process, WithoutOwnGroupOnlyTheChildIsSignalled) {
  ProcessOptions options;
  options.own_process_group = false;
  Gate started;
  auto p = Process::Start(options, [&started] {
    EXPECT_EQ(::getpgrp(), ::getpgid(::getppid()));
    started.Open();
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  started.Wait();
  // The test process shares the group and survives.
  ASSERT_THAT(p->Terminate(absl::Seconds(60)), IsOk());
  EXPECT_EQ(p->Join()->signal, SIGTERM);
}

TEST(Process, SignalSendsWithoutWaiting) {
  auto p = Process::Start({}, [] {
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(p->Signal(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(p->Signal(NSIG), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(p->Signal(SIGUSR1), IsOk());
  EXPECT_EQ(p->Join()->signal, SIGUSR1);
  EXPECT_THAT(p->Signal(SIGUSR1),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(Process, DestructorKillsAndReapsALiveChild) {
  pid_t pid;
  OwnedFd watch;
  {
    auto p = Process::Start({}, [] {
      BlockForever();
      return 0;
    });
    ASSERT_THAT(p, IsOk());
    pid = p->pid();
    watch.Reset(::fcntl(p->pidfd(), F_DUPFD_CLOEXEC, 0));
  }
  EXPECT_TRUE(ExitsWithin(watch.get(), absl::ZeroDuration()));
  errno = 0;
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);  // already reaped
  EXPECT_EQ(errno, ECHILD);
}

TEST(Process, LeaveRunningPolicyLetsTheChildRunOn) {
  Gate release;
  pid_t pid;
  OwnedFd watch;
  {
    ProcessOptions options;
    options.on_destruction = DestructionPolicy::kLeaveRunning;
    auto p = Process::Start(options, [&release] {
      release.Wait();
      return 7;
    });
    ASSERT_THAT(p, IsOk());
    pid = p->pid();
    watch.Reset(PidfdOpen(pid));
  }
  // The handle is gone and the child runs on, still our child.
  EXPECT_FALSE(ExitsWithin(watch.get(), absl::ZeroDuration()));
  release.Open();
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
}

TEST(Process, HandleDestroyedInAForkChildLeavesTheChildAlone) {
  Gate release;
  std::optional<Process> sibling;
  auto started = Process::Start({}, [&release] {
    release.Wait();
    return 3;
  });
  ASSERT_THAT(started, IsOk());
  sibling.emplace(*std::move(started));
  // A second child inherits a copy of the handle and destroys it: it is not
  // the sibling's parent, so that must neither kill nor wait for it.
  auto copier = Process::Start({}, [&sibling] {
    sibling.reset();
    return 0;
  });
  ASSERT_THAT(copier, IsOk());
  ASSERT_THAT(copier->Join(absl::Seconds(30)),
              IsOkAndHolds(::testing::Field(&ExitStatus::exit_code, 0)));
  EXPECT_TRUE(sibling->is_alive());
  release.Open();
  const absl::StatusOr<ExitStatus> exit = sibling->Join(absl::Seconds(30));
  ASSERT_THAT(exit, IsOk());
  EXPECT_EQ(exit->signal, 0);
  EXPECT_EQ(exit->exit_code, 3);
}

TEST(ExitStatus, FromWaitReadsExitCodesSignalsAndUsage) {
  rusage usage{};
  usage.ru_utime = {1, 500000};
  usage.ru_stime = {0, 250000};
  usage.ru_maxrss = 2048;  // KiB
  const ExitStatus exited = ExitStatus::FromWait(12, 3 << 8, usage);
  EXPECT_EQ(exited.pid, 12);
  EXPECT_EQ(exited.exit_code, 3);
  EXPECT_EQ(exited.signal, 0);
  EXPECT_EQ(exited.user_cpu, absl::Milliseconds(1500));
  EXPECT_EQ(exited.system_cpu, absl::Milliseconds(250));
  EXPECT_EQ(exited.max_rss_bytes, 2048 * 1024);
  const ExitStatus killed = ExitStatus::FromWait(13, SIGSEGV | 0x80, usage);
  EXPECT_EQ(killed.exit_code, -1);
  EXPECT_EQ(killed.signal, SIGSEGV);
  EXPECT_TRUE(killed.core_dumped);
  EXPECT_EQ(killed.signal_name(), "SIGSEGV");
}

TEST(Process, MoveKeepsTheChild) {
  auto p = Process::Start({}, [] { return 5; });
  ASSERT_THAT(p, IsOk());
  Process moved = *std::move(p);
  Process assigned = std::move(moved);
  EXPECT_EQ(assigned.Join()->exit_code, 5);
}

// ---------------------------------------------------------------- options

TEST(Process, OwnProcessGroupByDefault) {
  IntPipe pgrp;
  auto p = Process::Start({}, [&pgrp] {
    pgrp.Send(::getpgrp());
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(pgrp.Receive(), p->pid());
  EXPECT_THAT(p->Join(), IsOk());
}

TEST(Process, InvalidOptionsAreRejected) {
  ProcessOptions bad_env;
  bad_env.env = {{"A=B", "x"}};
  EXPECT_THAT(Process::Start(bad_env, [] { return 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("A=B")));
  ProcessOptions empty_env;
  empty_env.env = {{"", "x"}};
  EXPECT_THAT(Process::Start(empty_env, [] { return 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
  ProcessOptions bad_signal;
  bad_signal.parent_death_signal = 1000;
  EXPECT_THAT(
      Process::Start(bad_signal, [] { return 0; }),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("1000")));
  ProcessOptions bad_name;
  bad_name.name = std::string("a\0b", 3);
  EXPECT_THAT(Process::Start(bad_name, [] { return 0; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Process, EnvironmentAdditions) {
  ::setenv("TASKFORK_TEST_REPLACED", "old", 1);
  ProcessOptions options;
  options.env = {{"TASKFORK_TEST_ADDED", "a b"},
                 {"TASKFORK_TEST_REPLACED", "new"}};
  auto p = Process::Start(options, [] {
    const char* added = ::getenv("TASKFORK_TEST_ADDED");
    const char* replaced = ::getenv("TASKFORK_TEST_REPLACED");
    return (added != nullptr && std::string(added) == "a b" &&
            replaced != nullptr && std::string(replaced) == "new" &&
            ::getenv("PATH") != nullptr)
               ? 0
               : 1;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->Join()->exit_code, 0);
  EXPECT_STREQ(::getenv("TASKFORK_TEST_REPLACED"), "old");  // parent unchanged
  ::unsetenv("TASKFORK_TEST_REPLACED");
}

TEST(Process, NameSetsCommAndOptionallyTheCommandLine) {
  ProcessOptions options;
  options.name = "taskfork task: t1";
  auto p = Process::StartWithResultBytes(options, [] {
    return ReadFileOrDie("/proc/self/comm") + "|" +
           ReadFileOrDie("/proc/self/cmdline");
  });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(), IsOk());
  auto out = p->TakeResultBytes();
  ASSERT_THAT(out, IsOk());
  EXPECT_THAT(*out, StartsWith("taskfork task: \n|"));  // 15 bytes kept
  EXPECT_THAT(*out, Not(HasSubstr("|taskfork task: t1")));

  options.set_cmdline_title = true;
  auto titled = Process::StartWithResultBytes(
      options, [] { return ReadFileOrDie("/proc/self/cmdline"); });
  ASSERT_THAT(titled, IsOk());
  ASSERT_THAT(titled->Join(), IsOk());
  auto cmdline = titled->TakeResultBytes();
  ASSERT_THAT(cmdline, IsOk());
  // (The test binary's path is longer than the title, so nothing is cut.)
  EXPECT_THAT(*cmdline, StartsWith(std::string("taskfork task: t1\0", 18)));
}

TEST(Process, ResetSignalsUnblocksSigtermInTheChild) {
  sigset_t term, old;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old), 0);
  auto reset = Process::Start({}, [] {
    BlockForever();
    return 0;
  });
  ProcessOptions inherit;
  inherit.reset_signals = false;
  auto inherited = Process::Start(inherit, [] {
    BlockForever();
    return 0;
  });
  ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, &old, nullptr), 0);
  ASSERT_THAT(reset, IsOk());
  ASSERT_THAT(inherited, IsOk());
  ASSERT_THAT(reset->Terminate(absl::Seconds(60)), IsOk());
  EXPECT_EQ(reset->Join()->signal, SIGTERM);
  // SIGTERM stays blocked in this one: it takes the SIGKILL after the grace.
  ASSERT_THAT(inherited->Terminate(absl::Milliseconds(50)), IsOk());
  EXPECT_EQ(inherited->Join()->signal, SIGKILL);
}

TEST(Process, ParentDeathSignalReachesTheChild) {
  BecomeSubreaper();
  IntPipe child_pid;
  Gate release_parent;
  // The intermediate parent starts a Process that should die with it.
  auto parent = Process::Start({}, [&] {
    ProcessOptions options;
    options.parent_death_signal = SIGKILL;
    auto child = Process::Start(options, [] {
      BlockForever();
      return 0;
    });
    if (!child.ok()) return 1;
    child_pid.Send(child->pid());
    release_parent.Wait();
    ::_exit(0);  // without the destructor's kill
  });
  ASSERT_THAT(parent, IsOk());
  const pid_t c = child_pid.Receive();
  OwnedFd c_pidfd(PidfdOpen(c));
  ASSERT_TRUE(c_pidfd.valid());
  EXPECT_FALSE(ExitsWithin(c_pidfd.get(), absl::ZeroDuration()));
  release_parent.Open();
  EXPECT_EQ(parent->Join()->exit_code, 0);
  EXPECT_TRUE(ExitsWithin(c_pidfd.get(), absl::Seconds(60)));
  int status = 0;
  ASSERT_EQ(::waitpid(c, &status, 0), c);  // re-parented to this subreaper
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

// The documented caveat: the kernel sends the parent-death signal when the
// forking *thread* exits, even though the parent process lives on.
TEST(Process, ParentDeathSignalFiresWhenTheForkingThreadExits) {
  ProcessOptions options;
  options.parent_death_signal = SIGTERM;
  absl::StatusOr<Process> p = absl::UnknownError("not started");
  Gate child_ready;
  std::thread starter([&] {
    p = Process::Start(options, [&child_ready] {
      child_ready.Open();  // PR_SET_PDEATHSIG is set by now
      BlockForever();
      return 0;
    });
    if (p.ok()) child_ready.Wait();
  });
  starter.join();
  ASSERT_THAT(p, IsOk());
  auto status = p->Join(absl::Seconds(60));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->signal, SIGTERM);
}

TEST(Process, StdinIsDevNullByDefault) {
  auto p = Process::Start({}, [] {
    char c;
    return ::read(0, &c, 1) == 0 ? 0 : 1;  // immediate end of file
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->Join()->exit_code, 0);
}

TEST(Process, StdinCanBeInherited) {
  auto ends = OwnedFd::Pipe();
  ASSERT_THAT(ends, IsOk());
  const int saved = ::dup(0);
  ASSERT_EQ(::dup2(ends->read.get(), 0), 0);
  ProcessOptions options;
  options.stdin_policy = StdinPolicy::kInherit;
  auto p = Process::StartWithResultBytes(options, [] {
    char buf[16];
    const ssize_t n = ::read(0, buf, sizeof(buf));
    return std::string(buf, n > 0 ? n : 0);
  });
  ASSERT_EQ(::dup2(saved, 0), 0);
  ::close(saved);
  ASSERT_THAT(p, IsOk());
  ASSERT_EQ(::write(ends->write.get(), "hello", 5), 5);
  ASSERT_THAT(p->Join(), IsOk());
  EXPECT_THAT(p->TakeResultBytes(), IsOkAndHolds("hello"));
}

TEST(Process, ControllingTerminalWithoutOneIsAFailedPrecondition) {
  // A new session has no controlling terminal, wherever the test runs.
  ProcessOptions not_leader;
  not_leader.own_process_group = false;  // setsid() fails for a group leader
  auto session = Process::StartWithResultBytes(not_leader, [] {
    if (::setsid() < 0) return std::string("setsid failed");
    ProcessOptions options;
    options.stdin_policy = StdinPolicy::kControllingTerminal;
    auto p = Process::Start(options, [] { return 0; });
    if (!p.ok()) return p.status().ToString();
    return p->Join().status().ToString();
  });
  ASSERT_THAT(session, IsOk());
  ASSERT_THAT(session->Join(), IsOk());
  auto out = session->TakeResultBytes();
  ASSERT_THAT(out, IsOk());
  EXPECT_THAT(*out, StartsWith("FAILED_PRECONDITION"));
  EXPECT_THAT(*out, HasSubstr("no usable controlling terminal"));
}

TEST(Process, ControllingTerminalIsReopenedAndMadeForeground) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const std::string slave_name = ::ptsname(master);
  // Canonical mode delivers "hi\n" as one line; no echo keeps the master quiet.
  ProcessOptions not_leader;
  not_leader.own_process_group = false;  // setsid() fails for a group leader
  auto session = Process::StartWithResultBytes(not_leader, [&slave_name] {
    if (::setsid() < 0) return std::string("setsid failed");
    // The first terminal a session leader opens becomes its controlling one.
    const int slave = ::open(slave_name.c_str(), O_RDWR);
    if (slave < 0) return std::string("open slave failed");
    termios t;
    ::tcgetattr(slave, &t);
    t.c_lflag &= ~ECHO;
    ::tcsetattr(slave, TCSANOW, &t);
    ProcessOptions options;
    options.stdin_policy = StdinPolicy::kControllingTerminal;
    auto p = Process::StartWithResultBytes(options, [] {
      const bool foreground = ::tcgetpgrp(0) == ::getpgrp();
      char buf[16];
      const ssize_t n = ::read(0, buf, sizeof(buf));
      return std::string(foreground ? "fg:" : "bg:") +
             std::string(buf, n > 0 ? n : 0);
    });
    if (!p.ok()) return p.status().ToString();
    auto status = p->Join();
    if (!status.ok()) return status.status().ToString();
    auto line = p->TakeResultBytes();
    if (!line.ok()) return line.status().ToString();
    // The foreground is ours again.
    return *line + (::tcgetpgrp(slave) == ::getpgrp() ? "restored" : "lost");
  });
  ASSERT_THAT(session, IsOk());
  ASSERT_EQ(::write(master, "hi\n", 3), 3);
  ASSERT_THAT(session->Join(absl::Seconds(60)), IsOk());
  auto out = session->TakeResultBytes();
  EXPECT_THAT(out, IsOkAndHolds("fg:hi\nrestored")) << out.value_or("");
  ::close(master);
}

TEST(Process, AtForkHandlersRunForStart) {
  static int child_marker = 0;
  AtForkHandlers handlers;
  handlers.child = [] { child_marker = 42; };
  AtForkRegistration registration = RegisterAtFork(0, std::move(handlers));
  auto p = Process::Start({}, [] { return child_marker; });
  ASSERT_THAT(p, IsOk());
  EXPECT_EQ(p->Join()->exit_code, 42);
  EXPECT_EQ(child_marker, 0);
}

// ---------------------------------------------------------------- results

TEST(Process, ResultBytesComeBack) {
  auto p = Process::StartWithResultBytes({}, [] { return std::string("abc"); });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(p->TakeResultBytes(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("Join() it first")));
  ASSERT_THAT(p->Join(), IsOk());
  EXPECT_THAT(p->TakeResultBytes(), IsOkAndHolds("abc"));
  EXPECT_THAT(p->TakeResultBytes(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("taken already")));
}

TEST(Process, EmptyResultIsAResult) {
  auto p = Process::StartWithResultBytes({}, [] { return std::string(); });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(), IsOk());
  EXPECT_THAT(p->TakeResultBytes(), IsOkAndHolds(""));
}

TEST(Process, ResultIntoStartsEmptyInEveryChild) {
  // The string a child writes into was allocated before the first fork and
  // is never written by the parent: each child fills its own copy, so no
  // child sees what an earlier one wrote.
  for (int i = 0; i < 3; ++i) {
    auto p = Process::StartWithResultInto({}, [i](std::string* out) {
      const std::string seen = *out;  // what the child was handed
      out->append("child ").append(std::to_string(i));
      out->append(seen.empty() ? " got an empty string" : " got: " + seen);
    });
    ASSERT_THAT(p, IsOk());
    ASSERT_THAT(p->Join(), IsOk());
    EXPECT_THAT(p->TakeResultBytes(),
                IsOkAndHolds(absl::StrCat("child ", i, " got an empty string")));
  }
}

TEST(Process, ResultIntoGrowsPastItsReserve) {
  // Far past the room allocated before the fork: the child's copy grows.
  auto p = Process::StartWithResultInto({}, [](std::string* out) {
    for (int i = 0; i < (1 << 20) / 8; ++i) out->append("01234567");
  });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(), IsOk());
  absl::StatusOr<std::string> bytes = p->TakeResultBytes();
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(bytes->size(), size_t{1} << 20);
  EXPECT_EQ(bytes->substr(bytes->size() - 8), "01234567");
}

TEST(Process, ResultIntoOfANestedChildIsItsOwn) {
  // A child half-way through writing its result starts a result child of
  // its own: the grandchild is handed an empty string (not the child's
  // half-written one), and the child's bytes are untouched by it.
  auto p = Process::StartWithResultInto({}, [](std::string* out) {
    out->append("child before;");
    auto grandchild = Process::StartWithResultInto({}, [](std::string* g) {
      g->append(g->empty() ? "grandchild got an empty string" : "not empty");
    });
    if (!grandchild.ok() || !grandchild->Join().ok()) {
      out->append("grandchild failed");
      return;
    }
    absl::StatusOr<std::string> theirs = grandchild->TakeResultBytes();
    out->append(theirs.ok() ? *theirs : theirs.status().ToString());
    out->append(";child after");
  });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(), IsOk());
  EXPECT_THAT(p->TakeResultBytes(),
              IsOkAndHolds("child before;grandchild got an empty string;"
                           "child after"));
}

TEST(Process, ResultIntoChildThatThrowsReportsTheException) {
  // Bytes written before the throw are not sent as a result.
  auto p = Process::StartWithResultInto({}, [](std::string* out) {
    out->append("partial");
    throw std::runtime_error("half-way");
  });
  ASSERT_THAT(p, IsOk());
  absl::StatusOr<ExitStatus> status = p->Join();
  ASSERT_THAT(status, IsOk());
  EXPECT_THAT(status->uncaught_exception, HasSubstr("half-way"));
  EXPECT_THAT(p->TakeResultBytes(), Not(IsOk()));
}

TEST(Process, HundredMebibyteResultDoesNotDeadlock) {
  constexpr size_t kSize = size_t{100} << 20;
  auto p = Process::StartWithResultBytes({}, [] {
    std::string big(kSize, '\0');
    for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>(i >> 12);
    big.back() = 'z';
    return big;
  });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(absl::Seconds(120)), IsOk());
  auto bytes = p->TakeResultBytes();
  ASSERT_THAT(bytes, IsOk());
  ASSERT_EQ(bytes->size(), kSize);
  for (size_t i = 0; i < kSize; i += 4096) {
    ASSERT_EQ((*bytes)[i], static_cast<char>(i >> 12)) << i;
  }
  EXPECT_EQ(bytes->back(), 'z');
}

TEST(Process, ResultErrorsSayHowTheChildEnded) {
  auto plain = Process::Start({}, [] { return 0; });
  ASSERT_THAT(plain, IsOk());
  ASSERT_THAT(plain->Join(), IsOk());
  EXPECT_THAT(plain->TakeResultBytes(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("StartWithResultBytes")));

  auto threw = Process::StartWithResultBytes(
      {}, []() -> std::string { throw std::out_of_range("index 9"); });
  ASSERT_THAT(threw, IsOk());
  ASSERT_THAT(threw->Join(), IsOk());
  EXPECT_THAT(threw->TakeResultBytes(),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("threw std::out_of_range: index 9")));

  auto crashed = Process::StartWithResultBytes({}, [] {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::abort();  // (sanitizers turn SIGSEGV into an exit code; not abort)
    return std::string("never");
  });
  ASSERT_THAT(crashed, IsOk());
  ASSERT_THAT(crashed->Join(), IsOk());
  EXPECT_THAT(crashed->TakeResultBytes(),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("SIGABRT")));

  auto exited = Process::StartWithResultBytes({}, [] {
    ::_exit(4);
    return std::string("never");
  });
  ASSERT_THAT(exited, IsOk());
  ASSERT_THAT(exited->Join(), IsOk());
  EXPECT_THAT(exited->TakeResultBytes(),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("exited with code 4")));
}

TEST(Process, LargeResultWhileTheRunnerPollsPidfdAndResultFd) {
  constexpr size_t kSize = 8 << 20;
  auto p = Process::StartWithResultBytes({}, [] {
    return std::string(kSize, 'r');
  });
  ASSERT_THAT(p, IsOk());
  // What a runner multiplexing many processes does.
  while (p->is_alive() || p->result_fd() >= 0) {
    pollfd fds[2] = {{p->pidfd(), POLLIN, 0}, {p->result_fd(), POLLIN, 0}};
    ASSERT_GE(::poll(fds, p->result_fd() >= 0 ? 2 : 1, 60000), 1);
    if (p->result_fd() >= 0 && fds[1].revents != 0) {
      ASSERT_THAT(p->DrainResult(), IsOk());
    }
    if (fds[0].revents != 0) break;
  }
  ASSERT_THAT(p->Join(absl::ZeroDuration()), IsOk());
  auto bytes = p->TakeResultBytes();
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(bytes->size(), kSize);
}

// ---------------------------------------------------------------- hygiene

std::string InheritableFds() {
  std::string fds;
  for (int fd : OpenFds()) {
    if (fd > 2 && !(::fcntl(fd, F_GETFD) & FD_CLOEXEC)) {
      fds += absl::StrCat(fd, " ");
    }
  }
  return fds;
}

TEST(Process, DescriptorsAreCloseOnExec) {
  // Whatever the test runner passed down stays as it is; nothing is added.
  const std::string before = InheritableFds();
  auto p = Process::StartWithResultBytes({}, [] { return InheritableFds(); });
  ASSERT_THAT(p, IsOk());
  EXPECT_TRUE(::fcntl(p->pidfd(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(p->result_fd(), F_GETFD) & FD_CLOEXEC);
  ASSERT_THAT(p->Join(), IsOk());
  EXPECT_THAT(p->TakeResultBytes(), IsOkAndHolds(before));
}

// Sanitizer runtimes make each fork 10-30x slower; 1000 runs there would
// take minutes on a shared 2-core machine, so they run 200.
constexpr int kHygieneRuns = kAddressSanitizer || kThreadSanitizer ? 200 : 1000;

TEST(Process, NoZombieAndNoLeakedDescriptorAfterAThousandRuns) {
  const std::vector<int> fds_before = OpenFds();
  for (int i = 0; i < kHygieneRuns; ++i) {
    switch (i % 4) {
      case 0: {
        auto p = Process::Start({}, [i] { return i % 256; });
        ASSERT_THAT(p, IsOk());
        ASSERT_EQ(p->Join()->exit_code, i % 256);
        break;
      }
      case 1: {
        auto p = Process::StartWithResultBytes(
            {}, [i] { return absl::StrCat(i); });
        ASSERT_THAT(p, IsOk());
        ASSERT_THAT(p->Join(), IsOk());
        ASSERT_THAT(p->TakeResultBytes(), IsOkAndHolds(absl::StrCat(i)));
        break;
      }
      case 2: {
        auto p = Process::Start({}, [] {
          BlockForever();
          return 0;
        });
        ASSERT_THAT(p, IsOk());
        ASSERT_THAT(p->Kill(), IsOk());
        break;
      }
      case 3: {
        auto p = Process::Start({}, []() -> int { throw 1; });
        ASSERT_THAT(p, IsOk());
        // Destroyed without Join(): killed (if still running) and reaped.
        break;
      }
    }
  }
  EXPECT_EQ(OpenFds(), fds_before);
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // no child left at all
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
}  // namespace taskfork
