#include "tasklog/internal/time_gate.h"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <thread>  // NOLINT
#include <vector>

#include "gtest/gtest.h"
#include "tasklog/internal/test_util.h"

namespace taskfork::tasklog_internal {
namespace {

TEST(TimeGate, InterposesOnGlibcsTimeFunctions) {
  TimeGate::Resolve();
  const uint64_t before = TimeGate::passes();
  time_t now = ::time(nullptr);
  struct tm broken_down;
  ASSERT_NE(::localtime_r(&now, &broken_down), nullptr);
  ASSERT_NE(::gmtime_r(&now, &broken_down), nullptr);
  EXPECT_EQ(::timegm(&broken_down), now);
  ::tzset();
  ASSERT_NE(::localtime(&now), nullptr);
  ASSERT_NE(::gmtime(&now), nullptr);
  ASSERT_NE(::mktime(&broken_down), -1);
  ASSERT_NE(::timelocal(&broken_down), -1);
  EXPECT_EQ(TimeGate::passes() - before, 8u);
}

TEST(TimeGate, ReopenInParentLetsCallersIn) {
  TimeGate::CloseForFork();
  TimeGate::ReopenInParent();
  time_t now = ::time(nullptr);
  struct tm broken_down;
  EXPECT_NE(::localtime_r(&now, &broken_down), nullptr);
}

// Threads convert times without pause while the main thread forks with the
// gate closed around fork() (what TaskLog's at-fork handlers do): every child
// can convert a time. Without the gate a child soon inherits glibc's
// tzset_lock held and hangs.
TEST(TimeGate, ChildrenNeverInheritTheTimeZoneLockHeld) {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&stop] {
      struct tm broken_down;
      while (!stop.load(std::memory_order_relaxed)) {
        const time_t now = ::time(nullptr);
        ::localtime_r(&now, &broken_down);
        ::mktime(&broken_down);
      }
    });
  }
  for (int i = 0; i < 40; ++i) {
    TimeGate::CloseForFork();
    const pid_t pid = ::fork();
    if (pid == 0) {
      TimeGate::ReopenInChild();
      const time_t now = ::time(nullptr);
      struct tm broken_down;
      ::_exit(::localtime_r(&now, &broken_down) != nullptr &&
                      ::mktime(&broken_down) != -1
                  ? 0
                  : 1);
    }
    TimeGate::ReopenInParent();
    ASSERT_GT(pid, 0);
    ASSERT_TRUE(tasklog_testing::ExitedWith(
        tasklog_testing::WaitWithTimeout(pid, 20000), 0))
        << "fork " << i;
  }
  stop = true;
  for (std::thread& t : threads) t.join();
}

}  // namespace
}  // namespace taskfork::tasklog_internal
