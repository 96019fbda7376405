// Runtime used in-process as a job program does (runner/examples/
// custom_job.cc): interrupts that arrive while it waits in Task::Wait/Join.
#include "runner/runtime.h"

#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <utility>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/client.h"
#include "reporter/result.h"
#include "runner/task_function.h"
#include "runner/testing/intervals.h"

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

std::string ReadWhole(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

// With reporter_listen, tasks report over TCP with the run's secret: a
// function task through its ReportClient, a command task (a GoogleTest
// binary linking //reporter:gtest_listener, run as a plain command) through
// the environment.
TEST_F(RuntimeInterruptTest, TasksReportOverTcpWithReporterListen) {
  RuntimeOptions options;
  options.job_name = "tcp";
  options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
  options.console_fd = -1;
  options.screen_log_severity = std::nullopt;
  options.reporter_listen = "127.0.0.1:0";
  auto created = Runtime::Create(std::move(options));
  ASSERT_THAT(created, IsOk());
  std::unique_ptr<Runtime> runtime = std::move(*created);
  EXPECT_THAT(runtime->reporter_socket(), ::testing::StartsWith("tcp:127.0.0.1:"));
  const std::string secret = runtime->runinfo().Path("reporter.secret");
  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  ASSERT_THAT(runtime->AddTask({.id = "function",
                                .body = [](TaskContext& context) {
                                  if (context.reporter() == nullptr) {
                                    return absl::InternalError("no reporter");
                                  }
                                  {
                                    auto s = context.reporter()->Section(
                                        "probe over tcp");
                                  }
                                  return context.reporter()->Sync();
                                }}),
              IsOk());
  TaskDefinition command;
  command.id = "listener";
  command.argv = {absl::StrCat(std::getenv("TEST_SRCDIR"),
                               "/taskfork/reporter/gtest_listener_test_helper")};
  command.env.emplace_back("TESTBRIDGE_TEST_ONLY", "*");
  ASSERT_THAT(runtime->AddTask(std::move(command)), IsOk());
  TaskDefinition env;
  env.id = "env";
  env.argv = {"/bin/sh", "-c",
              "echo \"address=$TASKFORK_REPORTER_SOCKET\"; "
              "echo \"secret=$TASKFORK_REPORTER_SECRET_FILE\""};
  ASSERT_THAT(runtime->AddTask(std::move(env)), IsOk());
  runtime->RunAll(3);
  const std::string address = runtime->reporter_socket();
  std::string env_log;
  for (const auto& task : runtime->tasks()) {
    if (task->id() == "env") env_log = ReadWhole(task->log_path());
  }
  EXPECT_THAT(env_log, ::testing::HasSubstr("address=" + address));
  EXPECT_THAT(env_log, ::testing::HasSubstr("secret=" + secret));
  // The helper has a failing test.
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
  const std::string json = ReadWhole(runtime->runinfo().Path("results.json"));
  EXPECT_THAT(json, ::testing::HasSubstr("probe over tcp"));
  EXPECT_THAT(json, ::testing::HasSubstr("HelperSuite.Passes"));
  EXPECT_THAT(json, ::testing::HasSubstr("second failure"));
}

TEST_F(RuntimeInterruptTest, MalformedReporterListenIsAnError) {
  RuntimeOptions options;
  options.job_name = "badlisten";
  options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
  options.console_fd = -1;
  options.screen_log_severity = std::nullopt;
  options.reporter_listen = "127.0.0.1";
  EXPECT_THAT(Runtime::Create(std::move(options)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("\"127.0.0.1\"")));
}

// Sharded GoogleTest command tasks, with runner/sharded_gtest_test_helper.
class RuntimeShardsTest : public RuntimeInterruptTest {
 protected:
  static TaskDefinition Sharded(std::string id, int shards,
                                std::vector<std::pair<std::string, std::string>>
                                    env = {}) {
    TaskDefinition definition;
    definition.id = std::move(id);
    definition.argv = {absl::StrCat(std::getenv("TEST_SRCDIR"),
                                    "/taskfork/runner/sharded_gtest_test_helper")};
    definition.env = std::move(env);
    // Not this test's --test_filter (bazel's variable).
    definition.env.emplace_back("TESTBRIDGE_TEST_ONLY", "*");
    definition.gtest = true;
    definition.shards = shards;
    return definition;
  }

  static std::string Read(const std::string& path) {
    std::ifstream in(path);
    return std::string((std::istreambuf_iterator<char>(in)),
                       std::istreambuf_iterator<char>());
  }
};

TEST_F(RuntimeShardsTest, EachShardTakesASlotAndTheTaskHasOneMergedResult) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  const std::string marks = runtime->runinfo().Path("marks");
  ASSERT_EQ(::mkdir(marks.c_str(), 0755), 0);
  absl::StatusOr<Task*> task =
      runtime->AddTask(Sharded("sharded", 4, {{"TASKFORK_TEST_MARKS", marks}}));
  ASSERT_THAT(task, IsOk());
  EXPECT_EQ((*task)->state(), Task::State::kPending);
  EXPECT_FALSE((*task)->pid().has_value());
  runtime->RunAll(/*max_parallel=*/2);

  // Each shard's run, as it marked it: never more than 2 at once.
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int k = 0; k < 4; ++k) {
    std::istringstream line(Read(absl::StrCat(marks, "/", k)));
    int64_t start = 0, end = 0;
    line >> start >> end;
    ASSERT_GT(end, start) << "shard " << k;
    runs.emplace_back(start, end);
  }
  EXPECT_LE(taskfork::testing::MostAtOnce(runs), 2);

  EXPECT_EQ((*task)->state(), Task::State::kDone);
  EXPECT_FALSE((*task)->is_alive());
  EXPECT_TRUE((*task)->pid().has_value());
  ASSERT_TRUE((*task)->result().has_value());
  const TaskResult& result = *(*task)->result();
  EXPECT_EQ(result.result, reporter::Result::kFailed);
  EXPECT_THAT(result.reason, ::testing::StartsWith("Many.Fails: "));
  EXPECT_THAT(result.reason, ::testing::ContainsRegex(" \\(shard [0-3] of 4\\)$"));
  EXPECT_EQ(result.exit_status,
            "all 4 of 4 shard processes exited with code 0");
  // From the first start to the last end: at least two rounds of 300 ms.
  EXPECT_GE(result.runtime, absl::Milliseconds(600));
  // The task's log names the shards' logs, which are there, as is each
  // shard's own JSON output.
  EXPECT_EQ((*task)->log_path(), runtime->runinfo().Path("TaskLog.sharded"));
  const std::string index = Read((*task)->log_path());
  for (int k = 0; k < 4; ++k) {
    const std::string shard_log = absl::StrCat("TaskLog.sharded.shard-", k);
    EXPECT_THAT(index, ::testing::HasSubstr(shard_log + "\n"));
    // GoogleTest saw the shard's GTEST_SHARD_INDEX and GTEST_TOTAL_SHARDS.
    EXPECT_THAT(Read(runtime->runinfo().Path(shard_log)),
                ::testing::HasSubstr(absl::StrCat("This is test shard ", k + 1,
                                                  " of 4.")))
        << shard_log;
    EXPECT_THAT(Read(runtime->runinfo().Path(
                    absl::StrCat("sharded.shard-", k, ".gtest.json"))),
                ::testing::HasSubstr("\"testsuites\""));
  }
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeShardsTest, ACrashingShardLeavesTheOthersToFinish) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> task =
      runtime->AddTask(Sharded("crashy", 3, {{"TASKFORK_TEST_CRASH", "1"}}));
  ASSERT_THAT(task, IsOk());
  runtime->RunAll(3);
  ASSERT_TRUE((*task)->result().has_value());
  const TaskResult& result = *(*task)->result();
  EXPECT_EQ(result.result, reporter::Result::kErrored);
  EXPECT_THAT(result.reason, ::testing::HasSubstr("killed by SIGABRT"));
  EXPECT_THAT(result.reason, ::testing::ContainsRegex("\\(shard [0-2] of 3\\)$"));
  // The other two shards ran to their end and wrote their results.
  int json_files = 0;
  for (int k = 0; k < 3; ++k) {
    json_files += !Read(runtime->runinfo().Path(
                            absl::StrCat("crashy.shard-", k, ".gtest.json")))
                       .empty();
  }
  EXPECT_EQ(json_files, 2);
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeShardsTest, TimeoutIsPerShard) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  TaskDefinition definition = Sharded("hangs", 3, {{"TASKFORK_TEST_HANG", "1"}});
  definition.timeout = absl::Seconds(2);
  absl::StatusOr<Task*> task = runtime->AddTask(std::move(definition));
  ASSERT_THAT(task, IsOk());
  runtime->RunAll(3);
  ASSERT_TRUE((*task)->result().has_value());
  const TaskResult& result = *(*task)->result();
  EXPECT_EQ(result.result, reporter::Result::kAborted);
  EXPECT_THAT(result.reason,
              ::testing::MatchesRegex("timed out after 2s \\(shard [0-2] of 3\\)"));
  // Only the hanging shard was stopped. Its task process catches the
  // SIGTERM, ends the binary, reports the running test Aborted and exits
  // (with code 0, or killed by SIGTERM if it came before the catch).
  EXPECT_THAT(result.exit_status,
              ::testing::AnyOf(
                  ::testing::MatchesRegex("shard [0-2]: pid [0-9]+ killed by "
                                          "SIGTERM.*; 2 of 3 shard processes "
                                          "exited with code 0"),
                  ::testing::Eq("all 3 of 3 shard processes exited with "
                                "code 0")));
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeShardsTest, StartJoinAndInterruptCoverEveryShard) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> task =
      runtime->AddTask(Sharded("hangs", 3, {{"TASKFORK_TEST_HANG", "1"}}));
  absl::StatusOr<Task*> pending = runtime->AddTask(Sharded("later", 2));
  ASSERT_THAT(task, IsOk());
  ASSERT_THAT(pending, IsOk());
  ASSERT_THAT((*task)->Start(), IsOk());  // all three at once
  EXPECT_EQ((*task)->state(), Task::State::kRunning);
  EXPECT_TRUE((*task)->pid().has_value());
  EXPECT_THAT((*task)->Start(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("task hangs was started already")));
  // One shard hangs: the task is still running when a Join gives up.
  EXPECT_THAT((*task)->Join(absl::Milliseconds(500)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       ::testing::HasSubstr("task hangs still running after "
                                            "500ms")));
  EXPECT_TRUE((*task)->is_alive());

  ASSERT_EQ(::raise(SIGINT), 0);
  EXPECT_THAT((*task)->Join(absl::Minutes(1)), IsOk());
  ASSERT_TRUE((*task)->result().has_value());
  EXPECT_EQ((*task)->result()->result, reporter::Result::kAborted);
  EXPECT_THAT((*task)->result()->reason,
              ::testing::StartsWith("aborted by SIGINT"));
  // Both shards of the pending task were blocked: one merged Blocked result
  // without a shard suffix, as the shards agree.
  ASSERT_TRUE((*pending)->result().has_value());
  EXPECT_EQ((*pending)->result()->result, reporter::Result::kBlocked);
  EXPECT_EQ((*pending)->result()->reason,
            "not started: the job was interrupted by SIGINT");
  EXPECT_EQ((*pending)->result()->exit_status, "");
  EXPECT_FALSE((*pending)->pid().has_value());
  EXPECT_EQ(runtime->Finish(), kExitSomeDidNotSucceed);
}

TEST_F(RuntimeShardsTest, BadShardCountsAreRejected) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  EXPECT_THAT(runtime->AddTask(Sharded("zero", 0)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("task \"zero\": shards 0")));
  TaskDefinition not_gtest = Sharded("plain", 2);
  not_gtest.gtest = false;
  EXPECT_THAT(runtime->AddTask(std::move(not_gtest)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("only for a gtest command")));
  EXPECT_TRUE(runtime->tasks().empty());
  (void)runtime->Finish();
}

TEST_F(RuntimeShardsTest, SelectTasksSkipsTheOthers) {
  std::unique_ptr<Runtime> runtime = Create(absl::Seconds(30));
  ASSERT_NE(runtime, nullptr);
  absl::StatusOr<Task*> chosen = runtime->AddTask(
      {.id = "unit_a", .body = [](TaskContext&) { return absl::OkStatus(); }});
  absl::StatusOr<Task*> other = runtime->AddTask(Sharded("e2e", 2));
  ASSERT_THAT(chosen, IsOk());
  ASSERT_THAT(other, IsOk());
  EXPECT_THAT(runtime->SelectTasks("unit_("),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("not a valid regular expression")));
  EXPECT_THAT(runtime->SelectTasks("unit"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("the tasks are: unit_a, e2e")));
  ASSERT_THAT(runtime->SelectTasks("unit_.*"), IsOk());
  ASSERT_TRUE((*other)->result().has_value());
  EXPECT_EQ((*other)->result()->result, reporter::Result::kSkipped);
  EXPECT_EQ((*other)->result()->reason, "not selected by --task=unit_.*");
  EXPECT_EQ((*other)->state(), Task::State::kDone);
  runtime->RunAll(2);
  ASSERT_TRUE((*chosen)->result().has_value());
  EXPECT_EQ((*chosen)->result()->result, reporter::Result::kPassed);
  EXPECT_FALSE((*other)->pid().has_value());
  EXPECT_THAT(runtime->SelectTasks(".*"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::HasSubstr("no longer pending")));
  EXPECT_EQ(runtime->Finish(), kExitAllSucceeded);
}

TEST(RuntimeSlurm, InteractiveNeedsTheLocalExecutor) {
  RuntimeOptions options;
  options.job_name = "slurm_interactive";
  options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
  options.console_fd = -1;
  options.screen_log_severity = std::nullopt;
  options.executor = ExecutorKind::kSlurm;
  options.task_stdin = StdinPolicy::kControllingTerminal;
  EXPECT_THAT(Runtime::Create(std::move(options)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("needs the local executor")));
}

TEST(RuntimeSlurm, BadSlurmOptionsFailCreate) {
  RuntimeOptions options;
  options.job_name = "slurm_bad";
  options.runinfo_root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs");
  options.console_fd = -1;
  options.screen_log_severity = std::nullopt;
  options.executor = ExecutorKind::kSlurm;
  options.slurm.nodes = 0;
  EXPECT_THAT(Runtime::Create(std::move(options)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::HasSubstr("slurm nodes must be >= 1")));
}

}  // namespace
}  // namespace taskfork::runner
