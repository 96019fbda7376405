// A GoogleTest binary for the sharding tests (runtime_test, runner_e2e_test):
// 21 tests, of which Many.Fails fails and Many.Skips skips. Environment:
//   TASKFORK_TEST_CRASH  set: Odd.CrashesWhenAsked aborts the binary;
//   TASKFORK_TEST_HANG   set: Odd.HangsWhenAsked waits until killed;
//   TASKFORK_TEST_MARKS  a directory: each run writes DIR/<GTEST_SHARD_INDEX,
//                        or "all"> = "<start ns> <end ns>" around 300 ms of
//                        work, so that a test sees how many ran at once.
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace {

class MarksEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    start_ = absl::Now();
    // The overlap a max_parallel check needs; not a synchronisation.
    if (std::getenv("TASKFORK_TEST_MARKS") != nullptr) {
      absl::SleepFor(absl::Milliseconds(300));
    }
  }
  void TearDown() override {
    const char* dir = std::getenv("TASKFORK_TEST_MARKS");
    if (dir == nullptr) return;
    const char* shard = std::getenv("GTEST_SHARD_INDEX");
    std::ofstream(std::string(dir) + "/" + (shard != nullptr ? shard : "all"))
        << absl::ToUnixNanos(start_) << " " << absl::ToUnixNanos(absl::Now())
        << "\n";
  }

 private:
  absl::Time start_;
};

::testing::Environment* const kMarks =
    ::testing::AddGlobalTestEnvironment(new MarksEnvironment);

#define TASKFORK_PASSING_TEST(n) \
  TEST(Many, Passes##n) { EXPECT_EQ(n * 2, n + n); }

TASKFORK_PASSING_TEST(1)
TASKFORK_PASSING_TEST(2)
TASKFORK_PASSING_TEST(3)
TASKFORK_PASSING_TEST(4)
TASKFORK_PASSING_TEST(5)
TASKFORK_PASSING_TEST(6)
TASKFORK_PASSING_TEST(7)
TASKFORK_PASSING_TEST(8)
TASKFORK_PASSING_TEST(9)
TASKFORK_PASSING_TEST(10)
TASKFORK_PASSING_TEST(11)
TASKFORK_PASSING_TEST(12)
TASKFORK_PASSING_TEST(13)
TASKFORK_PASSING_TEST(14)
TASKFORK_PASSING_TEST(15)
TASKFORK_PASSING_TEST(16)
TASKFORK_PASSING_TEST(17)

TEST(Many, Fails) { EXPECT_EQ(1 + 1, 3) << "fails on purpose"; }

TEST(Many, Skips) { GTEST_SKIP() << "skips on purpose"; }

TEST(Odd, CrashesWhenAsked) {
  if (std::getenv("TASKFORK_TEST_CRASH") != nullptr) std::abort();
}

TEST(Odd, HangsWhenAsked) {
  if (std::getenv("TASKFORK_TEST_HANG") == nullptr) return;
  for (;;) ::pause();
}

}  // namespace
