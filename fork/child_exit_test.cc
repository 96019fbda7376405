// Child-exit handlers (AtForkHandlers::child_exit, RunChildExitHooks,
// ExitChild): run by Process and Pcall children, and by raw forks that end
// with ExitChild(), just before _exit(); in reverse priority order, once.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <stdexcept>
#include <string>
#include <thread>  // NOLINT
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/at_fork.h"
#include "fork/pcall.h"
#include "fork/process.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

// What the handlers of a test write: a pipe every child inherits. Handlers
// write one string each (a single write(2): atomic below PIPE_BUF).
class Trace {
 public:
  Trace() {
    auto ends = OwnedFd::Pipe(O_CLOEXEC);
    CHECK(ends.ok()) << ends.status();
    read_ = std::move(ends->read);
    write_ = std::move(ends->write);
  }
  int fd() const { return write_.get(); }
  void Write(const std::string& what) const {
    CHECK_EQ(::write(write_.get(), what.data(), what.size()),
             static_cast<ssize_t>(what.size()));
  }
  // Everything written so far (children must have exited).
  std::string Take() {
    std::string out;
    char buf[4096];
    for (;;) {
      pollfd p{read_.get(), POLLIN, 0};
      if (::poll(&p, 1, 0) != 1) break;
      const ssize_t n = ::read(read_.get(), buf, sizeof(buf));
      if (n <= 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  OwnedFd read_;
  OwnedFd write_;
};

// A registration whose only handler is child_exit, writing `name` and ";".
AtForkRegistration Writing(Trace& trace, int priority, std::string name) {
  AtForkHandlers h;
  h.child_exit = [&trace, name] { trace.Write(name + ";"); };
  return RegisterAtFork(priority, std::move(h));
}

int ExitCode(absl::StatusOr<Process> process) {
  EXPECT_THAT(process, IsOk());
  if (!process.ok()) return -1;
  absl::StatusOr<ExitStatus> status = process->Join(absl::Seconds(60));
  EXPECT_THAT(status, IsOk());
  if (!status.ok()) return -1;
  return status->signaled() ? 128 + status->signal : status->exit_code;
}

class ChildExitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // //fork's own registrations are made on first use: make them now, so
    // that the count in TearDown sees only what a test left behind.
    (void)ExitCode(Process::Start({}, [] { return 0; }));
    (void)Pcall([](int i) { return i; }, std::vector<int>{1});
  }
  void SetUp() override { base_count_ = AtForkRegistrationCount(); }
  void TearDown() override {
    EXPECT_EQ(AtForkRegistrationCount(), base_count_);
  }
  Trace trace_;
  int base_count_ = 0;
};

TEST_F(ChildExitTest, ProcessChildRunsThemAfterItsBodyInReversePriorityOrder) {
  // Out of order; b1 and b2 tie: the later registration runs first.
  AtForkRegistration b1 = Writing(trace_, 20, "b1");
  AtForkRegistration a = Writing(trace_, 10, "a");
  AtForkRegistration b2 = Writing(trace_, 20, "b2");
  AtForkRegistration c = Writing(trace_, 30, "c");
  AtForkHandlers other;  // no child_exit: skipped
  other.child = [] {};
  AtForkRegistration no_exit = RegisterAtFork(25, std::move(other));
  EXPECT_EQ(ExitCode(Process::Start({}, [this] {
              trace_.Write("body;");
              return 7;
            })),
            7);
  EXPECT_EQ(trace_.Take(), "body;c;b2;b1;a;");
}

TEST_F(ChildExitTest, ResultChildRunsThemBeforeItsResultIsSent) {
  AtForkRegistration r = Writing(trace_, 0, "exit");
  absl::StatusOr<Process> p =
      Process::StartWithResultBytes({}, [] { return std::string("value"); });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(absl::Seconds(60)), IsOk());
  EXPECT_THAT(p->TakeResultBytes(), ::taskfork::testing::IsOkAndHolds("value"));
  EXPECT_EQ(trace_.Take(), "exit;");
}

TEST_F(ChildExitTest, EveryPcallChildRunsThem) {
  AtForkRegistration r = Writing(trace_, 0, "x");
  absl::StatusOr<std::vector<int>> got =
      Pcall([](int i) { return i * 2; }, std::vector<int>{1, 2, 3});
  ASSERT_THAT(got, IsOk());
  EXPECT_THAT(*got, ::testing::ElementsAre(2, 4, 6));
  EXPECT_EQ(trace_.Take(), "x;x;x;");
}

TEST_F(ChildExitTest, TheyRunAfterAnExceptionWhichStillComesBack) {
  AtForkRegistration r = Writing(trace_, 0, "exit");
  absl::StatusOr<Process> p = Process::StartWithResultBytes(
      {}, []() -> std::string { throw std::runtime_error("boom"); });
  ASSERT_THAT(p, IsOk());
  ASSERT_THAT(p->Join(absl::Seconds(60)), IsOk());
  EXPECT_THAT(p->TakeResultBytes(),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("std::runtime_error: boom")));
  EXPECT_EQ(trace_.Take(), "exit;");
}

TEST_F(ChildExitTest, NotRunWhenTheChildExitsByItselfOrIsKilled) {
  AtForkRegistration r = Writing(trace_, 0, "exit");
  EXPECT_EQ(ExitCode(Process::Start({}, []() -> int { ::_exit(3); })), 3);
  EXPECT_EQ(ExitCode(Process::Start({}, []() -> int {
              ::raise(SIGKILL);
              return 0;
            })),
            128 + SIGKILL);
  EXPECT_EQ(trace_.Take(), "");
}

TEST_F(ChildExitTest, NotRunInTheProcessThatRegistered) {
  std::atomic<int> runs{0};
  AtForkHandlers h;
  h.child_exit = [&runs] { runs.fetch_add(1); };
  AtForkRegistration r = RegisterAtFork(0, std::move(h));
  EXPECT_EQ(ExitCode(Process::Start({}, [] { return 0; })), 0);
  // The child's increment happened in its copy of `runs`.
  EXPECT_EQ(runs.load(), 0);
}

TEST_F(ChildExitTest, RegistrationsMadeOrRemovedInTheChildCount) {
  AtForkRegistration removed_before_fork = Writing(trace_, 0, "removed");
  removed_before_fork.Reset();
  AtForkRegistration removed_in_child = Writing(trace_, 0, "removed in child");
  EXPECT_EQ(ExitCode(Process::Start({}, [this, &removed_in_child] {
              removed_in_child.Reset();
              // Lives until _exit: the handle is never destroyed there.
              new AtForkRegistration(Writing(trace_, 0, "made in child"));
              return 0;
            })),
            0);
  EXPECT_EQ(trace_.Take(), "made in child;");
}

TEST_F(ChildExitTest, RunAtMostOncePerProcessAndAgainInAGrandchild) {
  AtForkRegistration r = Writing(trace_, 0, "exit");
  EXPECT_EQ(ExitCode(Process::Start({}, [this] {
              RunChildExitHooks();  // the body ran them already ...
              trace_.Write("body;");
              // ... and a grandchild is another process: it runs them too.
              absl::StatusOr<Process> grandchild =
                  Process::Start({}, [] { return 0; });
              if (!grandchild.ok() || !grandchild->Join().ok()) return 1;
              return 0;
            })),
            0);
  EXPECT_EQ(trace_.Take(), "exit;body;exit;");
}

TEST_F(ChildExitTest, ExitChildRunsThemForARawFork) {
  AtForkRegistration r = Writing(trace_, 0, "exit");
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ExitChild(5);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 5);
  EXPECT_EQ(trace_.Take(), "exit;");
}

TEST_F(ChildExitTest, RegistrationWhileChildrenExitFromAnotherThread) {
  // Another thread registers and unregisters handlers while children are
  // forked and run them: each child sees a consistent registry.
  std::atomic<bool> stop{false};
  std::thread churn([this, &stop] {
    while (!stop.load(std::memory_order_relaxed)) {
      AtForkRegistration r = Writing(trace_, 1, "churn");
      std::this_thread::yield();
    }
  });
  AtForkRegistration steady = Writing(trace_, 0, "s");
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(ExitCode(Process::Start({}, [] { return 0; })), 0);
    const std::string out = trace_.Take();
    EXPECT_TRUE(out == "s;" || out == "churn;s;") << out;
  }
  stop = true;
  churn.join();
}

using ChildExitDeathTest = ChildExitTest;

TEST_F(ChildExitDeathTest, RegisteringOrForkingFromAHandlerCheckFails) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        AtForkHandlers h;
        h.child_exit = [] { AtForkRegistration nested = RegisterAtFork(0, {}); };
        AtForkRegistration r = RegisterAtFork(0, std::move(h));
        RunChildExitHooks();
      },
      "RegisterAtFork\\(\\) called from an at-fork handler");
  EXPECT_DEATH(
      {
        AtForkHandlers h;
        h.child_exit = [] {
          if (::fork() == 0) ::_exit(0);
        };
        AtForkRegistration r = RegisterAtFork(0, std::move(h));
        RunChildExitHooks();
      },
      "fork\\(\\) called from an at-fork or child-exit handler");
}

}  // namespace
}  // namespace taskfork
