#include "fork/internal/child_syscalls.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <cwchar>
#include <mutex>  // NOLINT: what ResetHeldMutexInChild repairs.
#include <string>

#include "gtest/gtest.h"

namespace taskfork::fork_internal {
namespace {

namespace sys = child_syscalls;

// Runs `body` in a forked child and returns its exit code (-1: not exited).
template <typename Body>
int InChild(Body body) {
  const pid_t pid = ::fork();
  if (pid == 0) sys::Exit(body());
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(ChildSyscallsTest, FailuresReturnMinusErrnoAndLeaveErrnoAlone) {
  errno = 0;
  EXPECT_EQ(sys::Close(-1), -EBADF);
  EXPECT_EQ(sys::Open("/nonexistent/taskfork", O_RDONLY), -ENOENT);
  EXPECT_EQ(sys::Dup2(-1, 100), -EBADF);
  EXPECT_EQ(sys::Fcntl(-1, F_GETFL, 0), -EBADF);
  EXPECT_EQ(sys::Write(-1, "x", 1), -EBADF);
  EXPECT_EQ(sys::SetSignalDefault(SIGKILL), -EINVAL);
  EXPECT_EQ(sys::SetSignalDefault(NSIG + 1), -EINVAL);
  EXPECT_EQ(sys::Prctl(-1, 0), -EINVAL);
  EXPECT_EQ(sys::Kill(INT_MAX, 0), -ESRCH);
  EXPECT_EQ(sys::SetPgid(INT_MAX, 0), -ESRCH);
  EXPECT_EQ(errno, 0);
}

TEST(ChildSyscallsTest, OpenDupCloseFcntl) {
  const long fd = sys::Open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(::fcntl(static_cast<int>(fd), F_GETFD), 0);  // no O_CLOEXEC
  EXPECT_EQ(sys::Fcntl(static_cast<int>(fd), F_GETFL, 0) & O_ACCMODE,
            O_RDONLY);
  const int copy = ::fcntl(static_cast<int>(fd), F_DUPFD, 0);
  ASSERT_GE(copy, 0);
  const long target = sys::Dup2(static_cast<int>(fd), copy);
  EXPECT_EQ(target, copy);
  EXPECT_EQ(sys::Close(copy), 0);
  EXPECT_EQ(sys::Close(static_cast<int>(fd)), 0);
  EXPECT_EQ(::fcntl(static_cast<int>(fd), F_GETFD), -1);
  EXPECT_EQ(errno, EBADF);
}

TEST(ChildSyscallsTest, WriteAndWritevReachThePipe) {
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  EXPECT_EQ(sys::Write(ends[1], "ab", 2), 2);
  char c = 'c', d[2] = {'d', 'e'};
  const iovec parts[2] = {{&c, 1}, {d, 2}};
  EXPECT_EQ(sys::Writev(ends[1], parts, 2), 3);
  char got[8] = {};
  EXPECT_EQ(::read(ends[0], got, sizeof(got)), 5);
  EXPECT_STREQ(got, "abcde");
  ::close(ends[0]);
  // No reader: EPIPE (SIGPIPE ignored here, as a child's writer would see).
  struct sigaction ignore {}, old {};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &old), 0);
  EXPECT_EQ(sys::Write(ends[1], "x", 1), -EPIPE);
  ::sigaction(SIGPIPE, &old, nullptr);
  ::close(ends[1]);
}

TEST(ChildSyscallsTest, PidsAndKill) {
  EXPECT_EQ(sys::GetPid(), ::getpid());
  EXPECT_EQ(sys::GetPpid(), ::getppid());
  EXPECT_EQ(sys::Kill(::getpid(), 0), 0);
}

void CountSignal(int) {}

TEST(ChildSyscallsTest, SignalsBackToDefaultAndUnblocked) {
  EXPECT_EQ(InChild([] {
              struct sigaction handler {};
              handler.sa_handler = &CountSignal;
              sigemptyset(&handler.sa_mask);
              sigaddset(&handler.sa_mask, SIGUSR2);
              handler.sa_flags = SA_RESTART;
              if (::sigaction(SIGUSR1, &handler, nullptr) != 0) return 1;
              sigset_t blocked;
              sigemptyset(&blocked);
              sigaddset(&blocked, SIGUSR2);
              sigaddset(&blocked, SIGTERM);
              if (::sigprocmask(SIG_BLOCK, &blocked, nullptr) != 0) return 2;

              if (sys::SetSignalDefault(SIGUSR1) != 0) return 3;
              if (sys::UnblockAllSignals() != 0) return 4;

              struct sigaction now {};
              if (::sigaction(SIGUSR1, nullptr, &now) != 0) return 5;
              if (now.sa_handler != SIG_DFL) return 6;
              if ((now.sa_flags & SA_RESTART) != 0) return 7;
              if (sigismember(&now.sa_mask, SIGUSR2)) return 8;
              sigset_t mask;
              if (::sigprocmask(SIG_SETMASK, nullptr, &mask) != 0) return 9;
              for (int s = 1; s < NSIG; ++s) {
                if (sigismember(&mask, s) == 1) return 10;
              }
              return 0;
            }),
            0);
}

TEST(ChildSyscallsTest, PrctlSetsTheName) {
  EXPECT_EQ(InChild([] {
              const char name[] = "cs-test";
              if (sys::Prctl(PR_SET_NAME, reinterpret_cast<unsigned long>(
                                              name)) != 0) {
                return 1;
              }
              char got[17] = {};
              if (::prctl(PR_GET_NAME, got) != 0) return 2;
              return std::strcmp(got, name) == 0 ? 0 : 3;
            }),
            0);
}

TEST(ChildSyscallsTest, SetPgidAndExitCode) {
  EXPECT_EQ(InChild([] {
              if (sys::SetPgid(0, 0) != 0) return 1;
              return ::getpgrp() == ::getpid() ? 42 : 2;
            }),
            42);
  EXPECT_EQ(InChild([] { return 255; }), 255);
}

TEST(ChildSyscallsTest, HasPendingOutputAgreesWithFpending) {
  FILE* f = std::fopen("/dev/null", "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(std::setvbuf(f, nullptr, _IOFBF, 4096), 0);
  EXPECT_FALSE(sys::HasPendingOutput(f));
  std::fputs("buffered", f);
  EXPECT_EQ(::__fpending(f), 8u);
  EXPECT_TRUE(sys::HasPendingOutput(f));
  std::fflush(f);
  EXPECT_FALSE(sys::HasPendingOutput(f));
  std::fclose(f);

  FILE* wide = std::fopen("/dev/null", "w");
  ASSERT_NE(wide, nullptr);
  ASSERT_EQ(std::setvbuf(wide, nullptr, _IOFBF, 4096), 0);
  ASSERT_GT(std::fwide(wide, 1), 0);
  EXPECT_FALSE(sys::HasPendingOutput(wide));
  std::fputws(L"wide", wide);
  EXPECT_GT(::__fpending(wide), 0u);
  EXPECT_TRUE(sys::HasPendingOutput(wide));
  std::fflush(wide);
  EXPECT_FALSE(sys::HasPendingOutput(wide));
  std::fclose(wide);
}

TEST(ChildSyscallsTest, ResetHeldMutexInChildLeavesItUsable) {
  std::mutex mu;
  mu.lock();  // as a prepare handler holds it across the fork
  const int code = InChild([&mu] {
    ResetHeldMutexInChild(&mu);
    if (!mu.try_lock()) return 1;
    mu.unlock();
    std::lock_guard<std::mutex> again(mu);
    return 0;
  });
  mu.unlock();
  EXPECT_EQ(code, 0);
}

}  // namespace
}  // namespace taskfork::fork_internal
