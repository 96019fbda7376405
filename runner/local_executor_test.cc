#include "runner/local_executor.h"

#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "reporter/result.h"
#include "runner/task_definition.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using reporter::Result;

class LocalExecutorTest : public ::testing::Test {
 protected:
  TaskLaunch Launch(TaskDefinition definition) {
    definitions_.push_back(std::make_unique<TaskDefinition>(std::move(definition)));
    TaskLaunch launch;
    launch.definition = definitions_.back().get();
    launch.runinfo_dir = std::getenv("TEST_TMPDIR");
    launch.log_path =
        launch.runinfo_dir + "/TaskLog." + definitions_.back()->id;
    return launch;
  }

  // Waits until run `id` ended; other runs' ends are kept for later.
  TaskEnd WaitFor(Executor::RunId id) {
    for (;;) {
      if (auto it = ended_.find(id); it != ended_.end()) {
        TaskEnd end = std::move(it->second);
        ended_.erase(it);
        return end;
      }
      Executor::Events events;
      EXPECT_THAT(executor_.Wait(absl::InfiniteFuture(), {}, &events), IsOk());
      for (auto& [run, end] : events.ended) ended_.emplace(run, std::move(end));
    }
  }

  LocalExecutor executor_;
  std::vector<std::unique_ptr<TaskDefinition>> definitions_;
  std::map<Executor::RunId, TaskEnd> ended_;
};

TEST_F(LocalExecutorTest, DeliversTheOutcomeAndTheExitStatus) {
  TaskDefinition failing{.id = "failing"};
  failing.body = [](TaskContext&) { return absl::InternalError("no luck"); };
  absl::StatusOr<pid_t> pid = executor_.Start(7, Launch(std::move(failing)));
  ASSERT_THAT(pid, IsOk());
  EXPECT_GT(*pid, 0);
  const TaskEnd end = WaitFor(7);
  ASSERT_THAT(end.outcome, IsOk());
  EXPECT_EQ(end.outcome->result, Result::kFailed);  // a returned error
  EXPECT_NE(end.outcome->reason.find("no luck"), std::string::npos);
  ASSERT_TRUE(end.exit.has_value());
  EXPECT_EQ(end.exit->pid, *pid);
  EXPECT_EQ(end.exit->exit_code, 0);
}

TEST_F(LocalExecutorTest, ACrashHasNoOutcomeAndNamesTheSignal) {
  TaskDefinition crashing{.id = "crashing"};
  crashing.body = [](TaskContext&) {
    ::signal(SIGABRT, SIG_DFL);
    ::raise(SIGKILL);
    return absl::OkStatus();
  };
  ASSERT_THAT(executor_.Start(1, Launch(std::move(crashing))), IsOk());
  const TaskEnd end = WaitFor(1);
  EXPECT_FALSE(end.outcome.ok());
  ASSERT_TRUE(end.exit.has_value());
  EXPECT_EQ(end.exit->signal, SIGKILL);
}

TEST_F(LocalExecutorTest, StopSendsSigtermThenSigkillAfterTheGrace) {
  TaskDefinition stubborn{.id = "stubborn"};
  stubborn.body = [](TaskContext&) -> absl::Status {
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  };
  TaskDefinition polite{.id = "polite"};
  polite.body = [](TaskContext&) -> absl::Status {
    for (;;) ::pause();
  };
  ASSERT_THAT(executor_.Start(1, Launch(std::move(stubborn))), IsOk());
  ASSERT_THAT(executor_.Start(2, Launch(std::move(polite))), IsOk());
  const absl::Time start = absl::Now();
  executor_.Stop(1, absl::Milliseconds(200));
  executor_.Stop(2, absl::Seconds(60));
  // The polite one ends with the SIGTERM; the stubborn one needs the SIGKILL
  // at the end of its grace (it may have ignored SIGTERM only once it ran:
  // either signal is fine, but it must end, and within the grace or after).
  const TaskEnd polite_end = WaitFor(2);
  ASSERT_TRUE(polite_end.exit.has_value());
  EXPECT_EQ(polite_end.exit->signal, SIGTERM);
  const TaskEnd stubborn_end = WaitFor(1);
  ASSERT_TRUE(stubborn_end.exit.has_value());
  EXPECT_TRUE(stubborn_end.exit->signal == SIGKILL ||
              stubborn_end.exit->signal == SIGTERM);
  if (stubborn_end.exit->signal == SIGKILL) {
    EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  }
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));
}

TEST_F(LocalExecutorTest, KillEndsTheRunAtOnce) {
  TaskDefinition sleeper{.id = "sleeper"};
  sleeper.body = [](TaskContext&) -> absl::Status {
    ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  };
  ASSERT_THAT(executor_.Start(3, Launch(std::move(sleeper))), IsOk());
  executor_.Kill(3);
  const TaskEnd end = WaitFor(3);
  ASSERT_TRUE(end.exit.has_value());
  EXPECT_EQ(end.exit->signal, SIGKILL);
  // Stop and Kill of a run that ended are no-ops.
  executor_.Stop(3, absl::ZeroDuration());
  executor_.Kill(3);
}

TEST_F(LocalExecutorTest, WatchedDescriptorsAndTheDeadlineEndAWait) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  Executor::Events events;
  const int fds[] = {pipe->read.get()};
  ASSERT_THAT(executor_.Wait(absl::Now() + absl::Milliseconds(10), fds, &events),
              IsOk());
  EXPECT_TRUE(events.ended.empty());
  EXPECT_TRUE(events.ready_fds.empty());
  ASSERT_EQ(::write(pipe->write.get(), "x", 1), 1);
  ASSERT_THAT(executor_.Wait(absl::InfiniteFuture(), fds, &events), IsOk());
  ASSERT_EQ(events.ready_fds.size(), 1u);
  EXPECT_EQ(events.ready_fds[0], pipe->read.get());
}

TEST_F(LocalExecutorTest, SlotsAreReusedForLaterRuns) {
  for (Executor::RunId id = 0; id < 20; ++id) {
    TaskDefinition quick{.id = "quick" + std::to_string(id)};
    quick.body = [](TaskContext&) { return absl::OkStatus(); };
    ASSERT_THAT(executor_.Start(id, Launch(std::move(quick))), IsOk());
    const TaskEnd end = WaitFor(id);
    ASSERT_THAT(end.outcome, IsOk());
    EXPECT_EQ(end.outcome->result, Result::kPassed);
  }
}

}  // namespace
}  // namespace taskfork::runner
