#include "fork/pcall.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <mutex>  // NOLINT
#include <stdexcept>
#include <thread>  // NOLINT
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

[[noreturn]] void BlockForever() {
  for (;;) ::pause();
}

void ExpectNoChildren() {
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(Pcall, ResultsComeBackInArgumentOrderWhateverTheCompletionOrder) {
  // Child i waits until child i+1 has finished: completion order is the
  // reverse of argument order (and all must run at once, or it would hang).
  constexpr int kCalls = 12;
  std::vector<OwnedFd::PipeEnds> chain;
  for (int i = 0; i < kCalls; ++i) {
    auto ends = OwnedFd::Pipe();
    ASSERT_THAT(ends, IsOk());
    chain.push_back(*std::move(ends));
  }
  std::vector<int> args;
  for (int i = 0; i < kCalls; ++i) args.push_back(i);
  PcallOptions options;
  options.timeout = absl::Seconds(60);  // a failure must not hang the test
  auto squares = Pcall(
      [&chain](int i) {
        if (i + 1 < kCalls) {
          char c;
          while (::read(chain[i].read.get(), &c, 1) < 0 && errno == EINTR) {
          }
        }
        if (i > 0) CHECK_EQ(::write(chain[i - 1].write.get(), "x", 1), 1);
        return i * i;
      },
      args, options);
  ASSERT_THAT(squares, IsOk());
  EXPECT_THAT(*squares, ElementsAre(0, 1, 4, 9, 16, 25, 36, 49, 64, 81, 100, 121));
  ExpectNoChildren();
}

TEST(Pcall, TuplesAreUnpackedAndCapturesAreCommonArguments) {
  const std::string prefix = "dev-";  // a common argument
  std::vector<std::tuple<std::string, int>> args = {{"r1", 1}, {"r2", 2}};
  auto names = Pcall(
      [&prefix](const std::string& host, int n) {
        return absl::StrCat(prefix, host, ":", n, ":", ::getpid());
      },
      args);
  ASSERT_THAT(names, IsOk());
  ASSERT_EQ(names->size(), 2u);
  EXPECT_THAT((*names)[0], ::testing::StartsWith("dev-r1:1:"));
  EXPECT_THAT((*names)[1], ::testing::StartsWith("dev-r2:2:"));
  EXPECT_NE((*names)[0], (*names)[1]);  // different pids
  EXPECT_NE((*names)[0], absl::StrCat("dev-r1:1:", ::getpid()));
}

TEST(Pcall, TargetsForm) {
  std::vector<absl::AnyInvocable<std::string()>> targets;
  targets.emplace_back([] { return std::string("a"); });
  targets.emplace_back([] { return std::string("b"); });
  EXPECT_THAT(PcallTargets<std::string>(std::move(targets)),
              IsOkAndHolds(ElementsAre("a", "b")));
}

TEST(Pcall, NoCallsIsAnEmptyResult) {
  int hook_calls = 0;
  PcallJoinHookRegistration hook = RegisterPcallJoinHook(
      [&hook_calls](absl::Span<const pid_t>) { ++hook_calls; });
  EXPECT_THAT(Pcall([](int i) { return i; }, std::vector<int>{}),
              IsOkAndHolds(IsEmpty()));
  EXPECT_EQ(hook_calls, 0);
}

TEST(Pcall, PartialFailureNamesTheFirstFailedCall) {
  auto body = [](int i) -> int {
    if (i == 2) throw std::runtime_error("call two failed");
    if (i == 4) {
      const rlimit no_core{0, 0};
      ::setrlimit(RLIMIT_CORE, &no_core);
      std::abort();
    }
    return i + 100;
  };
  const std::vector<int> args = {0, 1, 2, 3, 4, 5};
  EXPECT_THAT(Pcall(body, args),
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("pcall call #2 (pid ")));

  PcallResults<int> results = PcallDetailed(body, args);
  EXPECT_THAT(results.status,
              StatusIs(absl::StatusCode::kUnknown,
                       HasSubstr("threw std::runtime_error: call two failed")));
  ASSERT_EQ(results.calls.size(), 6u);
  for (int i : {0, 1, 3, 5}) {
    EXPECT_THAT(results.calls[i].result, IsOkAndHolds(i + 100)) << i;
    ASSERT_TRUE(results.calls[i].exit_status.has_value());
    EXPECT_TRUE(results.calls[i].exit_status->success());
    EXPECT_GT(results.calls[i].pid, 0);
  }
  EXPECT_THAT(results.calls[2].result,
              StatusIs(absl::StatusCode::kUnknown, HasSubstr("call two failed")));
  EXPECT_EQ(results.calls[2].exit_status->exit_code, kUncaughtExceptionExitCode);
  EXPECT_THAT(results.calls[4].result,
              StatusIs(absl::StatusCode::kAborted, HasSubstr("SIGABRT")));
  EXPECT_EQ(results.calls[4].exit_status->signal, SIGABRT);
  ExpectNoChildren();
}

TEST(Pcall, TimeoutTerminatesEveryRunningChild) {
  auto body = [](int i) -> int {
    if (i == 1) BlockForever();
    if (i == 2) {
      ::signal(SIGTERM, SIG_IGN);  // needs the SIGKILL after the grace
      BlockForever();
    }
    return i;
  };
  PcallOptions options;
  // Long enough for calls 0 and 3 to finish even on a loaded machine.
  options.timeout = absl::Seconds(1);
  options.terminate_grace = absl::Milliseconds(100);
  const absl::Time start = absl::Now();
  PcallResults<int> results = PcallDetailed(body, std::vector<int>{0, 1, 2, 3}, options);
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
  EXPECT_THAT(results.status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("2 of 4 calls still running")));
  EXPECT_THAT(results.calls[0].result, IsOkAndHolds(0));
  EXPECT_THAT(results.calls[3].result, IsOkAndHolds(3));
  EXPECT_THAT(results.calls[1].result,
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(results.calls[2].result,
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  // Call 2 ignores SIGTERM and gets the SIGKILL, unless the SIGTERM came
  // before it could ignore it (a very slow start).
  ASSERT_TRUE(results.calls[1].exit_status.has_value());
  EXPECT_EQ(results.calls[1].exit_status->signal, SIGTERM);
  ASSERT_TRUE(results.calls[2].exit_status.has_value());
  EXPECT_TRUE(results.calls[2].exit_status->signal == SIGKILL ||
              results.calls[2].exit_status->signal == SIGTERM);

  options.timeout = absl::Milliseconds(50);
  EXPECT_THAT(Pcall(body, std::vector<int>{1}, options),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("pcall: timeout of 50ms expired")));
  ExpectNoChildren();
}

TEST(Pcall, MaxParallelLimitsChildrenAtOnce) {
  // Counters in shared memory, updated by the children.
  auto* shared = static_cast<std::atomic<int>*>(
      ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(shared, MAP_FAILED);
  std::atomic<int>& running = shared[0];
  std::atomic<int>& peak = shared[1];
  running = 0;
  peak = 0;
  PcallOptions options;
  options.max_parallel = 2;
  std::vector<int> args(8, 0);
  auto results = Pcall(
      [&](int) {
        const int now = running.fetch_add(1) + 1;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        // Stay a moment so that overlapping children would be counted.
        const absl::Time end = absl::Now() + absl::Milliseconds(5);
        while (absl::Now() < end) {
        }
        running.fetch_sub(1);
        return now;
      },
      args, options);
  ASSERT_THAT(results, IsOk());
  EXPECT_LE(peak.load(), 2);
  EXPECT_GE(peak.load(), 1);
  ::munmap(shared, 4096);
}

TEST(Pcall, CallsNotStartedBeforeTheTimeoutAreCancelled) {
  PcallOptions options;
  options.max_parallel = 1;
  options.timeout = absl::Milliseconds(100);
  options.terminate_grace = absl::Milliseconds(50);
  PcallResults<int> results = PcallDetailed(
      [](int i) -> int {
        if (i == 0) BlockForever();
        return i;
      },
      std::vector<int>{0, 1, 2}, options);
  EXPECT_THAT(results.status,
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("2 not started")));
  EXPECT_THAT(results.calls[0].result,
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  for (int i : {1, 2}) {
    EXPECT_THAT(results.calls[i].result,
                StatusIs(absl::StatusCode::kCancelled, HasSubstr("not started")));
    EXPECT_EQ(results.calls[i].pid, 0);
    EXPECT_FALSE(results.calls[i].exit_status.has_value());
  }
  ExpectNoChildren();
}

// A Pcall child that forks again (nested Pcall): the at-fork handlers must
// leave every lock usable in the child (a reader-unlocked rwlock once hung
// the nested fork's prepare handler).
TEST(Pcall, NestedPcallInAChild) {
  PcallJoinHookRegistration hook =
      RegisterPcallJoinHook([](absl::Span<const pid_t>) {});
  PcallOptions options;
  options.timeout = absl::Seconds(60);  // a hang fails instead of blocking
  auto sums = Pcall(
      [](int i) {
        auto inner = Pcall([i](int j) { return i * 10 + j; },
                           std::vector<int>{1, 2});
        return inner.ok() ? (*inner)[0] + (*inner)[1] : -1;
      },
      std::vector<int>{1, 2}, options);
  EXPECT_THAT(sums, IsOkAndHolds(ElementsAre(23, 43)));
}

TEST(Pcall, LargeResultsFromManyChildrenAtOnce) {
  constexpr size_t kSize = 16 << 20;
  auto results = Pcall(
      [](int i) { return std::string(kSize, static_cast<char>('a' + i)); },
      std::vector<int>{0, 1, 2, 3});
  ASSERT_THAT(results, IsOk());
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ((*results)[i].size(), kSize);
    EXPECT_EQ((*results)[i].front(), 'a' + i);
    EXPECT_EQ((*results)[i].back(), 'a' + i);
  }
}

TEST(Pcall, BadProcessOptionsFailEveryCall) {
  PcallOptions options;
  options.process_options.env = {{"", "x"}};
  PcallResults<int> results =
      PcallDetailed([](int i) { return i; }, std::vector<int>{1, 2}, options);
  EXPECT_THAT(results.status, StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("pcall call #0 (pid 0)")));
  EXPECT_THAT(results.calls[1].result,
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PcallJoinHook, RunsAfterJoinWithPidsInArgumentOrder) {
  std::vector<std::vector<pid_t>> seen;
  PcallJoinHookRegistration hook = RegisterPcallJoinHook(
      [&seen](absl::Span<const pid_t> pids) {
        // Every child is reaped by now.
        for (pid_t pid : pids) {
          errno = 0;
          EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
          EXPECT_EQ(errno, ECHILD);
        }
        seen.emplace_back(pids.begin(), pids.end());
      });
  EXPECT_TRUE(hook.registered());
  PcallResults<int> results =
      PcallDetailed([](int i) { return i; }, std::vector<int>{5, 6, 7});
  ASSERT_THAT(results.status, IsOk());
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_THAT(seen[0], ElementsAre(results.calls[0].pid, results.calls[1].pid,
                                   results.calls[2].pid));

  // Also after a failed Pcall.
  PcallResults<int> failed = PcallDetailed(
      [](int i) -> int { throw i; }, std::vector<int>{1});
  EXPECT_THAT(failed.status, StatusIs(absl::StatusCode::kUnknown));
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_THAT(seen[1], ElementsAre(failed.calls[0].pid));

  hook.Reset();
  EXPECT_FALSE(hook.registered());
  ASSERT_THAT(Pcall([](int i) { return i; }, std::vector<int>{1}), IsOk());
  EXPECT_EQ(seen.size(), 2u);
}

TEST(PcallJoinHook, ResetWaitsForARunningHook) {
  auto entered = OwnedFd::Pipe();
  auto release = OwnedFd::Pipe();
  ASSERT_THAT(entered, IsOk());
  ASSERT_THAT(release, IsOk());
  std::mutex mu;
  std::vector<std::string> order;
  PcallJoinHookRegistration hook = RegisterPcallJoinHook(
      [&](absl::Span<const pid_t>) {
        CHECK_EQ(::write(entered->write.get(), "e", 1), 1);
        char c;
        CHECK_EQ(::read(release->read.get(), &c, 1), 1);
        std::lock_guard<std::mutex> lock(mu);
        order.push_back("hook returned");
      });
  std::thread pcall([] { (void)Pcall([](int i) { return i; }, std::vector<int>{1}); });
  char c;
  ASSERT_EQ(::read(entered->read.get(), &c, 1), 1);  // the hook is running
  std::thread resetter([&] {
    // Let the hook finish only now, while Reset is being called: a Reset that
    // did not wait for the running hook would usually return first.
    CHECK_EQ(::write(release->write.get(), "r", 1), 1);
    hook.Reset();
    std::lock_guard<std::mutex> lock(mu);
    order.push_back("reset returned");
  });
  pcall.join();
  resetter.join();
  EXPECT_THAT(order, ElementsAre("hook returned", "reset returned"));
}

TEST(PcallJoinHook, HooksRunInRegistrationOrderAndMoveWithTheirHandle) {
  std::vector<std::string> order;
  PcallJoinHookRegistration first =
      RegisterPcallJoinHook([&order](absl::Span<const pid_t>) { order.push_back("first"); });
  PcallJoinHookRegistration second =
      RegisterPcallJoinHook([&order](absl::Span<const pid_t>) { order.push_back("second"); });
  PcallJoinHookRegistration moved = std::move(first);
  ASSERT_THAT(Pcall([](int i) { return i; }, std::vector<int>{1}), IsOk());
  EXPECT_THAT(order, ElementsAre("first", "second"));
  {
    PcallJoinHookRegistration dropped = std::move(moved);
  }
  order.clear();
  ASSERT_THAT(Pcall([](int i) { return i; }, std::vector<int>{1}), IsOk());
  EXPECT_THAT(order, ElementsAre("second"));
}

}  // namespace
}  // namespace taskfork
