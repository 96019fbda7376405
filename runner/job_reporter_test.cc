#include "runner/job_reporter.h"

#include <signal.h>
#include <poll.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/result.h"
#include "runner/runinfo.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using reporter::Result;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

RunInfo MakeRunInfo(const std::string& job) {
  auto info = RunInfo::Create(
      {.root = absl::StrCat(std::getenv("TEST_TMPDIR"), "/runs"),
       .job_name = job});
  CHECK(info.ok()) << info.status();
  return *info;
}

TaskRecord Record(std::string id) {
  TaskRecord record;
  record.id = std::move(id);
  record.description = "about " + record.id;
  return record;
}

TEST(JobReporter, ReportsThroughTheServer) {
  const RunInfo info = MakeRunInfo("through");
  auto reporter = JobReporter::Start(info, "through");
  ASSERT_THAT(reporter, IsOk());
  EXPECT_THAT(reporter->socket_path(), HasSubstr("reporter.sock"));
  TaskRecord ran = Record("ran");
  reporter->RegisterTask(ran);
  reporter->RegisterTask(Record("never"));
  reporter->Sync();
  reporter->TaskStarted(ran.id, ran.description, ran.log_path, 4242,
                        absl::Now());
  ran.result = TaskResult{Result::kFailed, "exit 1", absl::Seconds(1), ""};
  reporter->TaskEnded("ran", 4242, *ran.result);
  reporter->Flush();
  absl::flat_hash_map<std::string, reporter::ResultInfo> reported;
  const std::vector<std::string> files = reporter->WriteReport(
      {.job_name = "through", .job_id = info.uid()}, {ran, Record("never")},
      info.dir(), &reported);
  ASSERT_GE(files.size(), 2u);
  EXPECT_EQ(files[0], info.dir() + "/results.json");
  EXPECT_THAT(ReadFile(files[0]), HasSubstr("exit 1"));
  EXPECT_THAT(ReadFile(files[0]), HasSubstr("\"never\""));
  ASSERT_TRUE(reported.contains("ran"));
  EXPECT_EQ(reporter::ResultFromCode(reported["ran"].value()), Result::kFailed);
  EXPECT_FALSE(reporter->failed());
  EXPECT_TRUE(reporter->warnings().empty());
}

TEST(JobReporter, AServerDeathIsAWarningAndTheFallbackReportIsWritten) {
  const RunInfo info = MakeRunInfo("death");
  auto reporter = JobReporter::Start(info, "death");
  ASSERT_THAT(reporter, IsOk());
  int unwatched = -2;
  reporter->set_on_death([&](int fd) { unwatched = fd; });
  const int control = reporter->control_fd();
  ASSERT_GE(control, 0);
  ASSERT_EQ(::kill(reporter->pid(), SIGKILL), 0);
  // The control socket hangs up; Check() finds the death.
  pollfd p{control, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);
  reporter->Check();
  EXPECT_EQ(unwatched, control);
  EXPECT_TRUE(reporter->failed());
  EXPECT_EQ(reporter->socket_path(), "");
  ASSERT_EQ(reporter->warnings().size(), 1u);
  EXPECT_THAT(reporter->warnings()[0],
              HasSubstr("reporter server died mid-run"));
  EXPECT_THAT(reporter->warnings()[0], HasSubstr("SIGKILL"));
  // Later calls are no-ops; the report comes from the tasks' own results.
  TaskRecord task = Record("t");
  reporter->RegisterTask(task);
  task.result = TaskResult{Result::kPassed, "", absl::Seconds(1), ""};
  reporter->TaskEnded("t", 1, *task.result);
  absl::flat_hash_map<std::string, reporter::ResultInfo> reported;
  const std::vector<std::string> files = reporter->WriteReport(
      {.job_name = "death", .job_id = info.uid()}, {task}, info.dir(),
      &reported);
  ASSERT_GE(files.size(), 2u);
  EXPECT_THAT(ReadFile(files[0]), HasSubstr("\"t\""));
  EXPECT_TRUE(reported.empty());
}

TEST(JobReporter, ACannotStartErrorNamesTheProblem) {
  RunInfo info = MakeRunInfo("nostart");
  // A socket path that exists already: the server refuses to start.
  std::ofstream(info.dir() + "/reporter.sock") << "taken";
  EXPECT_THAT(JobReporter::Start(info, "nostart"),
              StatusIs(absl::StatusCode::kAlreadyExists,
                       HasSubstr("cannot start the reporter server")));
}

}  // namespace
}  // namespace taskfork::runner
