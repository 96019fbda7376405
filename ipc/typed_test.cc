#include "ipc/typed.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipc/pipe.h"
#include "ipc/queue.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;

QueueOptions QueueCapacity(size_t bytes) {
  QueueOptions options;
  options.capacity_bytes = bytes;
  return options;
}

PipeOptions PipeCapacity(size_t bytes) {
  PipeOptions options;
  options.capacity_bytes = bytes;
  return options;
}

TEST(QueueValue, RoundTripsAndRefusesAnotherType) {
  auto queue = Queue::Create(QueueCapacity(4096));
  ASSERT_THAT(queue, IsOk());
  const std::vector<std::pair<std::string, int64_t>> value = {{"a", 1}, {"b", -2}};
  ASSERT_THAT(PutValue(*queue, value), IsOk());
  EXPECT_THAT((GetValue<std::vector<std::pair<std::string, int64_t>>>(*queue)),
              IsOkAndHolds(value));
  ASSERT_THAT(PutValue(*queue, std::string("text")), IsOk());
  EXPECT_THAT(GetValue<int>(*queue), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(GetValue<int>(*queue, absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(QueueValue, ReturnsTheQueuesErrors) {
  auto queue = Queue::Create(QueueCapacity(4096));
  ASSERT_THAT(queue, IsOk());
  queue->Close();
  EXPECT_THAT(PutValue(*queue, int64_t{7}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(GetValue<int64_t>(*queue), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(QueueValue, CrossesAFork) {
  auto queue = Queue::Create(QueueCapacity(4096));
  ASSERT_THAT(queue, IsOk());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const bool ok = PutValue(*queue, std::map<std::string, int>{{"child", 1}}).ok();
    ::_exit(ok ? 0 : 1);
  }
  EXPECT_THAT((GetValue<std::map<std::string, int>>(*queue, absl::Seconds(30))),
              IsOkAndHolds(std::map<std::string, int>{{"child", 1}}));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(PipeValue, RoundTripsAndRefusesAnotherType) {
  auto ends = Pipe::Create(PipeCapacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  const std::map<std::string, std::vector<int>> value = {{"x", {1, 2}}, {"y", {}}};
  ASSERT_THAT(SendValue(a, value), IsOk());
  EXPECT_THAT((RecvValue<std::map<std::string, std::vector<int>>>(b)),
              IsOkAndHolds(value));
  ASSERT_THAT(SendValue(a, std::string("text")), IsOk());
  EXPECT_THAT(RecvValue<int>(b), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(a.Send("not serialized"), IsOk());
  EXPECT_THAT(RecvValue<int>(b), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(PipeValue, ReturnsThePipesErrors) {
  auto ends = Pipe::Create(PipeCapacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  EXPECT_THAT(RecvValue<int>(b, absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  a.Close();
  EXPECT_THAT(SendValue(a, 1), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(RecvValue<int>(b), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace taskfork::ipc
