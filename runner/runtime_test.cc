// Runtime used in-process as a job program does (runner/examples/
// custom_job.cc): interrupts that arrive while it waits in Task::Wait/Join.
#include "runner/runtime.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "reporter/result.h"
#include "runner/task_function.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;

// args: the write end of a pipe (inherited through fork), then optionally
// "ignore_term". Writes one byte to it, then waits to be stopped.
absl::Status AnnounceAndPause(TaskContext& context) {
  int fd = -1;
  if (!absl::SimpleAtoi(context.args().at(0), &fd)) {
    return absl::InvalidArgumentError("fd");
  }
  if (context.args().size() > 1) ::signal(SIGTERM, SIG_IGN);
  if (::write(fd, "x", 1) != 1) return absl::InternalError("write");
  while (true) ::pause();
}

class RuntimeInterruptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(announce_), 0);
  }
  void TearDown() override {
    ::close(announce_[0]);
    ::close(announce_[1]);
  }

  std::unique_ptr<Runtime> Create(absl::Duration grace) {
    RuntimeOptions options;
    options.job_name = ::testing::UnitTest::GetInstance()
                           ->current_test_info()
                           ->name();
    options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
    options.console_fd = -1;
    options.screen_log_severity = std::nullopt;
    options.termination_grace = grace;
    auto runtime = Runtime::Create(std::move(options));
    EXPECT_THAT(runtime, IsOk());
    return runtime.ok() ? std::move(*runtime) : nullptr;
  }

  // Waits (at most 60 s) until a task announced itself.
  void AwaitAnnouncement() {
    pollfd p{announce_[0], POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 60000), 1) << "the task did not start";
    char byte;
    ASSERT_EQ(::read(announce_[0], &byte, 1), 1);
  }

  int announce_[2] = {-1, -1};
};

TEST_F(RuntimeInterruptTest, FirstInterruptInWaitAbortsRunningBlocksPending) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> running = runtime->AddTask(
      {.id = "running",
       .body = AnnounceAndPause,
       .args = {absl::StrCat(announce_[1])}});
  absl::StatusOr<Task*> pending = runtime->AddTask(
      {.id = "pending", .body = [](TaskContext&) { return absl::OkStatus(); }});
  ASSERT_THAT(running, IsOk());
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT((*running)->Start(), IsOk());
  AwaitAnnouncement();

  // Ctrl-C: the runtime blocked SIGINT in this thread, so it waits for the
  // Wait below to pick it up from its signalfd.
  ASSERT_EQ(::raise(SIGINT), 0);
  EXPECT_THAT((*running)->Wait(absl::Minutes(1)), IsOk());
  EXPECT_TRUE(runtime->interrupted());
  ASSERT_TRUE((*running)->result().has_value());
  EXPECT_EQ((*running)->result()->result, reporter::Result::kAborted);
  EXPECT_EQ((*running)->result()->reason, "aborted by SIGINT");
  ASSERT_TRUE((*pending)->result().has_value());
  EXPECT_EQ((*pending)->result()->result, reporter::Result::kBlocked);
  EXPECT_THAT((*pending)->Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("without having started")));
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeInterruptTest, SecondInterruptInJoinKillsAtOnce) {
  // Without the second signal this task would get an hour to stop.
  std::unique_ptr<Runtime> runtime = Create(absl::Hours(1));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> stubborn = runtime->AddTask(
      {.id = "stubborn",
       .body = AnnounceAndPause,
       .args = {absl::StrCat(announce_[1]), "ignore_term"}});
  ASSERT_THAT(stubborn, IsOk());
  ASSERT_THAT((*stubborn)->Start(), IsOk());
  AwaitAnnouncement();

  ASSERT_EQ(::raise(SIGINT), 0);
  ASSERT_EQ(::raise(SIGTERM), 0);
  EXPECT_THAT((*stubborn)->Join(absl::Minutes(1)), IsOk());
  ASSERT_TRUE((*stubborn)->result().has_value());
  EXPECT_EQ((*stubborn)->result()->result, reporter::Result::kAborted);
  EXPECT_EQ((*stubborn)->result()->reason, "killed by a second SIGTERM");
  EXPECT_FALSE((*stubborn)->is_alive());
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeInterruptTest, GraceEndsInJoinWithSigkill) {
  std::unique_ptr<Runtime> runtime = Create(absl::Milliseconds(100));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> stubborn = runtime->AddTask(
      {.id = "stubborn",
       .body = AnnounceAndPause,
       .args = {absl::StrCat(announce_[1]), "ignore_term"}});
  ASSERT_THAT(stubborn, IsOk());
  ASSERT_THAT((*stubborn)->Start(), IsOk());
  AwaitAnnouncement();

  ASSERT_EQ(::raise(SIGTERM), 0);
  EXPECT_THAT((*stubborn)->Join(absl::Minutes(1)), IsOk());
  ASSERT_TRUE((*stubborn)->result().has_value());
  EXPECT_EQ((*stubborn)->result()->result, reporter::Result::kAborted);
  EXPECT_EQ((*stubborn)->result()->reason, "aborted by SIGTERM");
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

}  // namespace
}  // namespace taskfork::runner
