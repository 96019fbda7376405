// Runtime used in-process as a job program does (runner/examples/
// custom_job.cc): interrupts that arrive while it waits in Task::Wait/Join.
#include "runner/runtime.h"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "reporter/client.h"
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

// The runner reports each task's start (pid, time) and end to the reporter
// itself (posted, no round trip): a task that never reports has them in
// results.json as one that does; its sections too.
TEST_F(RuntimeInterruptTest, RunnerReportsStartAndEndOfSilentAndReportingTasks) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  ASSERT_THAT(runtime->AddTask({.id = "silent",
                                .body = [](TaskContext&) {
                                  return absl::OkStatus();
                                }}),
              IsOk());
  ASSERT_THAT(
      runtime->AddTask({.id = "reporting",
                        .body = [](TaskContext& context) {
                          if (context.reporter() == nullptr) {
                            return absl::InternalError("no reporter");
                          }
                          { auto s = context.reporter()->Section("probe"); }
                          return absl::InternalError("and failed");
                        }}),
      IsOk());
  runtime->RunAll(2);
  std::vector<pid_t> pids;
  for (const auto& task : runtime->tasks()) {
    ASSERT_TRUE(task->pid().has_value()) << task->id();
    pids.push_back(*task->pid());
  }
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
  std::ifstream in(runtime->runinfo().Path("results.json"));
  const std::string json((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  const size_t silent = json.find("\"id\":\"silent\"");
  const size_t reporting = json.find("\"id\":\"reporting\"");
  ASSERT_NE(silent, std::string::npos) << json;
  ASSERT_NE(reporting, std::string::npos) << json;
  const std::string silent_part = json.substr(silent, reporting - silent);
  const std::string reporting_part = json.substr(reporting);
  EXPECT_THAT(silent_part,
              ::testing::HasSubstr(absl::StrCat("\"pids\":[", pids[0], "]")));
  EXPECT_THAT(silent_part, ::testing::HasSubstr("\"value\":\"passed\""));
  EXPECT_THAT(silent_part, ::testing::Not(::testing::HasSubstr(
                               "\"starttime\":null")));
  EXPECT_THAT(reporting_part,
              ::testing::HasSubstr(absl::StrCat("\"pids\":[", pids[1], "]")));
  EXPECT_THAT(reporting_part, ::testing::HasSubstr("\"value\":\"failed\""));
  EXPECT_THAT(reporting_part, ::testing::HasSubstr("probe"));
}

}  // namespace
}  // namespace taskfork::runner
