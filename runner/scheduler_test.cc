// The scheduler driving the real LocalExecutor: forked task processes,
// real signals (SIGINT sent to this process, read from the signalfd).
#include "runner/scheduler.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/result.h"
#include "runner/local_executor.h"
#include "runner/task_definition.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using reporter::Result;

absl::Status PauseForever(TaskContext&) {
  for (;;) ::pause();
}
absl::Status IgnoreTermAndPause(TaskContext&) {
  ::signal(SIGTERM, SIG_IGN);
  for (;;) ::pause();
}
absl::Status Pass(TaskContext&) { return absl::OkStatus(); }

class SchedulerTest : public ::testing::Test {
 protected:
  void Make(SchedulerHooks hooks, absl::Duration grace = absl::Seconds(30)) {
    auto signals = InterruptSignals::Create();
    ASSERT_THAT(signals, IsOk());
    signals_.emplace(*std::move(signals));
    scheduler_ = std::make_unique<Scheduler>(
        &executor_, &*signals_, SchedulerOptions{.termination_grace = grace},
        std::move(hooks));
  }
  size_t Add(std::string id, std::function<absl::Status(TaskContext&)> body,
             absl::Duration timeout = absl::InfiniteDuration()) {
    auto definition = std::make_unique<TaskDefinition>();
    definition->id = std::move(id);
    definition->body = std::move(body);
    definition->timeout = timeout;
    TaskLaunch launch;
    launch.definition = definition.get();
    launch.runinfo_dir = std::getenv("TEST_TMPDIR");
    launch.log_path = launch.runinfo_dir + "/TaskLog." + definition->id;
    definitions_.push_back(std::move(definition));
    return scheduler_->Add(std::move(launch));
  }
  const TaskResult& ResultOf(size_t index) {
    const auto& task = scheduler_->task(index);
    EXPECT_EQ(task.state, TaskState::kDone);
    return *task.result;
  }

  LocalExecutor executor_;
  std::optional<InterruptSignals> signals_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<std::unique_ptr<TaskDefinition>> definitions_;
};

TEST_F(SchedulerTest, SkipMarksAPendingTaskDoneWithoutRunningIt) {
  std::vector<size_t> started, done;
  SchedulerHooks hooks;
  hooks.on_started = [&](size_t index) { started.push_back(index); };
  hooks.on_done = [&](size_t index) { done.push_back(index); };
  Make(std::move(hooks));
  const size_t skipped = Add("skipped", Pass);
  const size_t ran = Add("ran", Pass);
  ASSERT_THAT(scheduler_->Skip(skipped, "not wanted"), IsOk());
  EXPECT_EQ(ResultOf(skipped).result, Result::kSkipped);
  EXPECT_EQ(ResultOf(skipped).reason, "not wanted");
  EXPECT_FALSE(scheduler_->task(skipped).started);
  EXPECT_THAT(scheduler_->Skip(skipped, "again"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("task skipped cannot be skipped")));
  scheduler_->RunAll(2);
  EXPECT_EQ(started, std::vector<size_t>{ran});
  EXPECT_EQ(done, (std::vector<size_t>{skipped, ran}));
  EXPECT_EQ(ResultOf(ran).result, Result::kPassed);
  ASSERT_TRUE(scheduler_->task(ran).exit.has_value());
  EXPECT_EQ(scheduler_->task(ran).exit->exit_code, 0);
  EXPECT_THAT(scheduler_->Skip(ran, "too late"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(SchedulerTest, RunAllKeepsToMaxParallelAndTheOrder) {
  std::vector<size_t> started;
  size_t most_running = 0;
  SchedulerHooks hooks;
  hooks.on_started = [&](size_t index) {
    started.push_back(index);
    most_running = std::max(most_running, scheduler_->running().size());
  };
  Make(std::move(hooks));
  for (int i = 0; i < 6; ++i) Add(absl::StrCat("t", i), Pass);
  scheduler_->RunAll(2);
  EXPECT_EQ(started, (std::vector<size_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_LE(most_running, 2u);
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(ResultOf(i).result, Result::kPassed);
  EXPECT_FALSE(scheduler_->interrupted());
}

TEST_F(SchedulerTest, ARetriedTaskRunsAgainBeforeTheNextOne) {
  std::vector<std::string> order;
  SchedulerHooks hooks;
  hooks.on_started = [&](size_t index) {
    order.push_back(scheduler_->task(index).launch.log_path);
  };
  hooks.on_done = [&](size_t index) {
    const auto& task = scheduler_->task(index);
    if (index == 0 && task.attempt < 3) {
      TaskLaunch again = task.launch;
      again.log_path = absl::StrCat(task.launch.log_path, "+");
      ASSERT_THAT(scheduler_->Retry(index, std::move(again)), IsOk());
    }
  };
  Make(std::move(hooks));
  const size_t flaky =
      Add("flaky", [](TaskContext&) { return absl::InternalError("no"); });
  Add("next", Pass);
  scheduler_->RunAll(1);
  const std::string dir = std::getenv("TEST_TMPDIR");
  EXPECT_EQ(order, (std::vector<std::string>{
                       dir + "/TaskLog.flaky", dir + "/TaskLog.flaky+",
                       dir + "/TaskLog.flaky++", dir + "/TaskLog.next"}));
  EXPECT_EQ(scheduler_->task(flaky).attempt, 3);
  EXPECT_EQ(ResultOf(flaky).result, Result::kFailed);
  EXPECT_FALSE(scheduler_->task(flaky).timed_out);
}

TEST_F(SchedulerTest, RetryNeedsATaskThatRanAndNoInterrupt) {
  SchedulerHooks hooks;
  hooks.on_started = [](size_t index) {
    if (index == 1) ::kill(::getpid(), SIGINT);
  };
  Make(std::move(hooks), /*grace=*/absl::Milliseconds(100));
  const size_t timed = Add("timed", PauseForever, absl::Milliseconds(20));
  EXPECT_THAT(scheduler_->Retry(timed, scheduler_->task(timed).launch),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("did not run or is not done")));
  scheduler_->RunAll(1);
  EXPECT_TRUE(scheduler_->task(timed).timed_out);
  EXPECT_EQ(ResultOf(timed).result, Result::kAborted);
  const size_t interrupted = Add("interrupted", PauseForever);
  scheduler_->RunAll(1);
  EXPECT_EQ(ResultOf(interrupted).result, Result::kAborted);
  EXPECT_FALSE(scheduler_->task(interrupted).timed_out);
  EXPECT_THAT(scheduler_->Retry(timed, scheduler_->task(timed).launch),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("the job was interrupted")));
}

TEST_F(SchedulerTest, ATimeoutAbortsTheTaskAndTheOthersGoOn) {
  Make({}, /*grace=*/absl::Milliseconds(100));
  const size_t hung = Add("hung", IgnoreTermAndPause, absl::Milliseconds(50));
  const size_t fine = Add("fine", Pass);
  scheduler_->RunAll(1);
  EXPECT_EQ(ResultOf(hung).result, Result::kAborted);
  EXPECT_EQ(ResultOf(hung).reason, "timed out after 50ms");
  // SIGKILL after the grace, or SIGTERM if it came before the body ignored
  // it.
  EXPECT_THAT(ResultOf(hung).exit_status,
              ::testing::AnyOf(HasSubstr("SIGKILL"), HasSubstr("SIGTERM")));
  EXPECT_EQ(ResultOf(fine).result, Result::kPassed);
}

TEST_F(SchedulerTest, StartJoinAndTerminateOfOneTask) {
  Make({}, /*grace=*/absl::Milliseconds(100));
  const size_t task = Add("one", PauseForever);
  EXPECT_THAT(scheduler_->Join(task, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("was not started")));
  ASSERT_THAT(scheduler_->Start(task), IsOk());
  EXPECT_THAT(scheduler_->Start(task),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("was started already")));
  EXPECT_GT(scheduler_->task(task).pid, 0);
  EXPECT_THAT(scheduler_->Join(task, absl::Milliseconds(20)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("one still running after 20ms")));
  ASSERT_THAT(scheduler_->Terminate(task, "enough"), IsOk());
  EXPECT_EQ(ResultOf(task).result, Result::kAborted);
  EXPECT_EQ(ResultOf(task).reason, "enough");
  EXPECT_THAT(scheduler_->Join(task, absl::ZeroDuration()), IsOk());
}

TEST_F(SchedulerTest, FirstInterruptAbortsRunningAndBlocksPending) {
  SchedulerHooks hooks;
  hooks.on_started = [](size_t) { ::kill(::getpid(), SIGINT); };
  Make(std::move(hooks));
  const size_t running = Add("running", PauseForever);
  const size_t pending = Add("pending", Pass);
  scheduler_->RunAll(1);
  EXPECT_TRUE(scheduler_->interrupted());
  EXPECT_EQ(ResultOf(running).result, Result::kAborted);
  EXPECT_EQ(ResultOf(running).reason, "aborted by SIGINT");
  EXPECT_EQ(ResultOf(pending).result, Result::kBlocked);
  EXPECT_EQ(ResultOf(pending).reason,
            "not started: the job was interrupted by SIGINT");
  EXPECT_THAT(scheduler_->warnings(),
              ::testing::ElementsAre("job interrupted by SIGINT"));
  EXPECT_THAT(scheduler_->Start(pending),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("will not run")));
}

TEST_F(SchedulerTest, SecondInterruptKillsWithoutWaitingForTheGrace) {
  // The task says when it ignores SIGTERM; only then comes the first SIGINT
  // (else its SIGTERM could end the task before the second one).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  SchedulerHooks hooks;
  hooks.on_started = [&](size_t) {
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::kill(::getpid(), SIGINT);
  };
  bool sent_second = false;
  hooks.on_tick = [&](absl::Time) {
    if (scheduler_->interrupted() && !sent_second) {
      sent_second = true;
      ::kill(::getpid(), SIGINT);
    }
  };
  Make(std::move(hooks), /*grace=*/absl::Minutes(10));
  const int ready_fd = ready[1];
  const size_t stubborn = Add("stubborn", [ready_fd](TaskContext&) -> absl::Status {
    ::signal(SIGTERM, SIG_IGN);
    (void)::write(ready_fd, "r", 1);
    for (;;) ::pause();
  });
  const absl::Time start = absl::Now();
  scheduler_->RunAll(1);
  EXPECT_LT(absl::Now() - start, absl::Minutes(1));
  EXPECT_EQ(ResultOf(stubborn).result, Result::kAborted);
  EXPECT_EQ(ResultOf(stubborn).reason, "killed by a second SIGINT");
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(SchedulerTest, WatchedDescriptorsReachTheHook) {
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  std::vector<int> seen;
  SchedulerHooks hooks;
  hooks.on_fd = [&](int fd) {
    seen.push_back(fd);
    char c;
    (void)::read(fd, &c, 1);
  };
  hooks.on_started = [&](size_t) { (void)::write(pipe_fds[1], "x", 1); };
  Make(std::move(hooks), absl::Milliseconds(100));
  scheduler_->WatchFd(pipe_fds[0]);
  const size_t task = Add("watched", PauseForever, absl::Milliseconds(200));
  scheduler_->RunAll(1);
  EXPECT_EQ(ResultOf(task).result, Result::kAborted);
  EXPECT_THAT(seen, ::testing::Contains(pipe_fds[0]));
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

}  // namespace
}  // namespace taskfork::runner
