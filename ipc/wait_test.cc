#include "ipc/wait.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipc/internal/test_util.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;

struct Fixture {
  Queue q0, q1;
  Pipe mine, theirs;
};

Fixture Make() {
  QueueOptions options;
  options.capacity_bytes = 4096;
  PipeOptions pipe_options;
  pipe_options.capacity_bytes = 4096;
  auto q0 = Queue::Create(options);
  auto q1 = Queue::Create(options);
  auto pipe = Pipe::Create(pipe_options);
  if (!q0.ok() || !q1.ok() || !pipe.ok()) std::abort();
  return {std::move(*q0), std::move(*q1), std::move(pipe->first),
          std::move(pipe->second)};
}

TEST(WaitAny, TimesOutWhenNothingIsReady) {
  Fixture f = Make();
  const absl::Time start = absl::Now();
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}, absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(WaitAny, ReturnsTheReadyTarget) {
  Fixture f = Make();
  ASSERT_THAT(f.q1.Put("x"), IsOk());
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}), IsOkAndHolds(1));
  ASSERT_THAT(f.theirs.Send("y"), IsOk());
  ASSERT_THAT(f.q1.Get(), IsOk());
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}), IsOkAndHolds(2));
  ASSERT_THAT(f.q0.Put("z"), IsOk());
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}), IsOkAndHolds(0));  // first wins
}

TEST(WaitAny, WakesWhenAnotherProcessPuts) {
  Fixture f = Make();
  const pid_t pid = ::fork();
  if (pid == 0) {
    f.mine.Close();
    // Wait until the parent is (very likely) asleep, then put.
    (void)f.q0.Get(absl::Milliseconds(200));
    ::_exit(f.q1.Put("wake up").ok() ? 0 : 1);
  }
  f.theirs.Close();
  EXPECT_THAT(WaitAny({f.q0, f.q1, f.mine}, absl::Seconds(30)), IsOkAndHolds(1));
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(WaitAny, DeadPipePeerAndClosedQueueAreReady) {
  Fixture f = Make();
  const pid_t pid = ::fork();
  if (pid == 0) {
    f.mine.Close();
    ::raise(SIGKILL);
  }
  f.theirs.Close();
  EXPECT_THAT(WaitAny({f.q0, f.mine}, absl::Seconds(30)), IsOkAndHolds(1));
  ::waitpid(pid, nullptr, 0);
  f.q1.Close();
  EXPECT_THAT(WaitAny({f.q0, f.q1}, absl::Seconds(30)), IsOkAndHolds(1));
}

TEST(WaitAny, BadTargetsAreInvalidArgument) {
  Fixture f = Make();
  EXPECT_THAT(WaitAny(absl::Span<const WaitTarget>()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  f.mine.Close();
  EXPECT_THAT(WaitAny({f.q0, f.mine}), StatusIs(absl::StatusCode::kInvalidArgument));
  std::vector<WaitTarget> many(129, WaitTarget(f.q0));
  EXPECT_THAT(WaitAny(many), StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace taskfork::ipc
