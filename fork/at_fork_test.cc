#include "fork/at_fork.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>  // NOLINT
#include <string>
#include <thread>  // NOLINT
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Events recorded by handlers. Only the test thread forks, and handlers run in
// the forking thread, so no lock is needed.
std::vector<std::string>* events = nullptr;

struct ChildRun {
  std::string output;  // what the child wrote to its pipe
  int wait_status = 0;
  bool timed_out = false;
};

// Forks with ::fork() directly (code that knows nothing of taskfork); the child
// runs `body`, writes its result to a pipe and _exits. The parent reads the
// pipe to EOF and reaps the child; a child that hangs for 20 s is SIGKILLed
// and reported as timed out (a deadlock fails the test instead of hanging it).
ChildRun ForkAndCollect(const std::function<std::string()>& body) {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    const std::string out = body();
    size_t done = 0;
    while (done < out.size()) {
      const ssize_t n = ::write(fds[1], out.data() + done, out.size() - done);
      if (n <= 0) ::_exit(3);
      done += n;
    }
    ::_exit(0);
  }
  ChildRun run;
  ::close(fds[1]);
  EXPECT_GT(pid, 0);
  if (pid <= 0) {
    ::close(fds[0]);
    return run;
  }
  for (;;) {
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = ::poll(&pfd, 1, 20000);
    if (ready == 0) {
      run.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    if (ready < 0 && errno == EINTR) continue;
    char buf[4096];
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    run.output.append(buf, n);
  }
  ::close(fds[0]);
  EXPECT_EQ(::waitpid(pid, &run.wait_status, 0), pid);
  return run;
}

AtForkHandlers Recording(const std::string& name) {
  AtForkHandlers h;
  h.prepare = [name] { events->push_back("prepare " + name); };
  h.parent = [name] { events->push_back("parent " + name); };
  h.child = [name] { events->push_back("child " + name); };
  return h;
}

class AtForkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    events = &events_;
    base_count_ = AtForkRegistrationCount();
  }
  void TearDown() override {
    EXPECT_EQ(AtForkRegistrationCount(), base_count_);
    events = nullptr;
  }
  std::vector<std::string> events_;
  int base_count_ = 0;
};

TEST_F(AtForkTest, PrepareRunsInReversePriorityOrderParentAndChildInOrder) {
  // Registered out of order; "b1" and "b2" tie and keep registration order.
  AtForkRegistration c = RegisterAtFork(30, Recording("c"));
  AtForkRegistration a = RegisterAtFork(-5, Recording("a"));
  AtForkRegistration b1 = RegisterAtFork(10, Recording("b1"));
  AtForkRegistration b2 = RegisterAtFork(10, Recording("b2"));
  EXPECT_EQ(AtForkRegistrationCount(), base_count_ + 4);

  const ChildRun run = ForkAndCollect([] {
    // The child inherited the parent's prepare events, then ran its own.
    return absl::StrJoin(*events, ",");
  });
  ASSERT_FALSE(run.timed_out);
  EXPECT_TRUE(WIFEXITED(run.wait_status) && WEXITSTATUS(run.wait_status) == 0);
  EXPECT_EQ(run.output,
            "prepare c,prepare b2,prepare b1,prepare a,"
            "child a,child b1,child b2,child c");
  EXPECT_THAT(events_, ElementsAre("prepare c", "prepare b2", "prepare b1",
                                   "prepare a", "parent a", "parent b1",
                                   "parent b2", "parent c"));
}

TEST_F(AtForkTest, EmptyMembersAreSkipped) {
  AtForkHandlers only_child;
  only_child.child = [] { events->push_back("child only"); };
  AtForkRegistration r = RegisterAtFork(0, std::move(only_child));
  const ChildRun run = ForkAndCollect([] { return absl::StrJoin(*events, ","); });
  EXPECT_EQ(run.output, "child only");
  EXPECT_THAT(events_, IsEmpty());
}

TEST_F(AtForkTest, DestructionUnregisters) {
  {
    AtForkRegistration r = RegisterAtFork(0, Recording("gone"));
    EXPECT_TRUE(r.registered());
    EXPECT_EQ(AtForkRegistrationCount(), base_count_ + 1);
  }
  EXPECT_EQ(AtForkRegistrationCount(), base_count_);
  const ChildRun run = ForkAndCollect([] { return absl::StrJoin(*events, ","); });
  EXPECT_EQ(run.output, "");
  EXPECT_THAT(events_, IsEmpty());
}

TEST_F(AtForkTest, ResetUnregistersAndIsIdempotent) {
  AtForkRegistration keep = RegisterAtFork(1, Recording("keep"));
  AtForkRegistration drop = RegisterAtFork(0, Recording("drop"));
  drop.Reset();
  EXPECT_FALSE(drop.registered());
  drop.Reset();
  const ChildRun run = ForkAndCollect([] { return absl::StrJoin(*events, ","); });
  EXPECT_EQ(run.output, "prepare keep,child keep");
  EXPECT_THAT(events_, ElementsAre("prepare keep", "parent keep"));
}

TEST_F(AtForkTest, MoveTransfersTheRegistration) {
  AtForkRegistration moved_to;
  EXPECT_FALSE(moved_to.registered());
  {
    AtForkRegistration original = RegisterAtFork(0, Recording("m"));
    moved_to = std::move(original);
    EXPECT_FALSE(original.registered());  // NOLINT(bugprone-use-after-move)
  }
  EXPECT_TRUE(moved_to.registered());
  ForkAndCollect([] { return std::string(); });
  EXPECT_THAT(events_, ElementsAre("prepare m", "parent m"));

  // Move-assigning over a live registration unregisters the old one.
  events_.clear();
  moved_to = RegisterAtFork(0, Recording("n"));
  EXPECT_EQ(AtForkRegistrationCount(), base_count_ + 1);
  ForkAndCollect([] { return std::string(); });
  EXPECT_THAT(events_, ElementsAre("prepare n", "parent n"));
  moved_to.Reset();
}

TEST_F(AtForkTest, ChildCanUnregisterFromItsOwnCopy) {
  AtForkRegistration r = RegisterAtFork(0, Recording("r"));
  const ChildRun run = ForkAndCollect([&r] {
    r.Reset();  // the child's registry only
    return absl::StrCat(AtForkRegistrationCount());
  });
  EXPECT_EQ(run.output, absl::StrCat(base_count_));
  EXPECT_EQ(AtForkRegistrationCount(), base_count_ + 1);
  EXPECT_TRUE(r.registered());
}

// The scenario at-fork handlers exist for: other threads hold a lock and
// "log" (append to a shared buffer under it, allocating) while the test thread
// forks. The handler takes the lock in prepare, so the child always finds the
// buffer consistent and the lock usable; without the handler a child would
// now and then inherit a lock held by a thread that does not exist there.
TEST_F(AtForkTest, ForkWhileOtherThreadsHoldTheLockAndLog) {
  struct Log {
    std::mutex mu;
    std::vector<std::string> lines;  // guarded by mu
    uint64_t appended = 0;           // guarded by mu; == lines.size() + trimmed
    uint64_t trimmed = 0;            // guarded by mu
  };
  static Log* log = new Log;  // leaked on purpose: children copy it

  AtForkHandlers h;
  h.prepare = [] { log->mu.lock(); };
  h.parent = [] { log->mu.unlock(); };
  h.child = [] { log->mu.unlock(); };
  AtForkRegistration reg = RegisterAtFork(kAtForkPriorityLogging, std::move(h));

  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([t, &stop] {
      uint64_t i = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        std::lock_guard<std::mutex> lock(log->mu);
        log->lines.push_back(absl::StrCat("thread ", t, " line ", i++));
        ++log->appended;
        if (log->lines.size() > 64) {
          log->trimmed += log->lines.size();
          log->lines.clear();
        }
      }
    });
  }

  for (int i = 0; i < 100; ++i) {
    const ChildRun run = ForkAndCollect([] {
      std::lock_guard<std::mutex> lock(log->mu);  // deadlocks without handler
      const bool consistent =
          log->appended == log->lines.size() + log->trimmed;
      log->lines.push_back("child line");  // allocates
      return std::string(consistent ? "ok" : "inconsistent");
    });
    ASSERT_FALSE(run.timed_out) << "fork " << i << " deadlocked";
    ASSERT_EQ(run.output, "ok") << "fork " << i;
    ASSERT_TRUE(WIFEXITED(run.wait_status) && WEXITSTATUS(run.wait_status) == 0);
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
}

// Registrations come and go in other threads while the test thread forks:
// the registry stays consistent and each fork sees a whole set of handlers.
TEST_F(AtForkTest, ConcurrentRegistrationWhileForking) {
  std::atomic<bool> stop{false};
  std::atomic<int> prepares{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&stop, &prepares, t] {
      while (!stop.load(std::memory_order_relaxed)) {
        AtForkHandlers h;
        h.prepare = [&prepares] { prepares.fetch_add(1); };
        AtForkRegistration r = RegisterAtFork(t, std::move(h));
        std::this_thread::yield();
      }
    });
  }
  for (int i = 0; i < 50; ++i) {
    const ChildRun run = ForkAndCollect([] { return std::string("x"); });
    ASSERT_FALSE(run.timed_out);
    ASSERT_EQ(run.output, "x");
  }
  stop = true;
  for (std::thread& thread : threads) thread.join();
  // TearDown checks that every registration was removed again.
}

using AtForkDeathTest = AtForkTest;

TEST_F(AtForkDeathTest, RegisteringFromAHandlerCheckFails) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        AtForkHandlers h;
        h.prepare = [] { AtForkRegistration nested = RegisterAtFork(0, {}); };
        AtForkRegistration r = RegisterAtFork(0, std::move(h));
        ::fork();
      },
      "RegisterAtFork\\(\\) called from an at-fork handler");
}

TEST_F(AtForkDeathTest, UnregisteringFromAHandlerCheckFails) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_DEATH(
      {
        static AtForkRegistration* self = new AtForkRegistration;
        AtForkHandlers h;
        h.parent = [] { self->Reset(); };
        *self = RegisterAtFork(0, std::move(h));
        if (::fork() == 0) ::_exit(0);
      },
      "Reset\\(\\) called from an at-fork handler");
}

// What FlushPendingStdio() leaves buffered is lost at exit_group: a child with
// fully buffered stdout on a pipe writes only what it flushed. The child ends
// with the raw system call, as ExitChild() does: TSan's _exit() interceptor
// flushes stdio, which would hide what this test looks for.
TEST(FlushPendingStdio, WritesWhatStdoutAndStderrHoldAndNothingElse) {
  int out[2], err[2];
  ASSERT_EQ(::pipe(out), 0);
  ASSERT_EQ(::pipe(err), 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::dup2(out[1], 1) != 1 || ::dup2(err[1], 2) != 2) ::_exit(2);
    std::setvbuf(stdout, nullptr, _IOFBF, 4096);
    std::setvbuf(stderr, nullptr, _IOFBF, 4096);
    FlushPendingStdio();  // nothing buffered: nothing written
    std::fputs("to stdout", stdout);
    std::fputs("to stderr", stderr);
    FlushPendingStdio();
    std::fputs(" lost", stdout);  // buffered at exit: never written
    ::syscall(SYS_exit_group, 0);
  }
  ASSERT_GT(pid, 0);
  ::close(out[1]);
  ::close(err[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto read_all = [](int fd) {
    std::string data;
    char buffer[64];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) data.append(buffer, n);
    ::close(fd);
    return data;
  };
  EXPECT_EQ(read_all(out[0]), "to stdout");
  EXPECT_EQ(read_all(err[0]), "to stderr");
}

}  // namespace
}  // namespace taskfork
