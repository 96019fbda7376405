#include "runner/rerun.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/report_builder.h"
#include "reporter/writers.h"

namespace taskfork::runner {
namespace {

using reporter::MakeResultInfo;
using reporter::Result;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class PlanRerunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                         ::testing::UnitTest::GetInstance()
                             ->current_test_info()
                             ->name());
    ASSERT_EQ(::mkdir(root_.c_str(), 0755), 0);
  }

  // A run directory `name` of `root_` with `report`'s results.json (none
  // when `report` is null).
  void AddRun(const std::string& name, const reporter::JobReport* report) {
    const std::string dir = absl::StrCat(root_, "/", name);
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    if (report != nullptr) {
      std::ofstream(dir + "/results.json") << reporter::ResultsJson(*report);
    }
  }

  static void Test(reporter::ReportBuilder& b, const std::string& task,
                   uint64_t id, const std::string& name, Result result) {
    reporter::SectionStart start;
    start.set_id(id);
    start.set_name(name);
    reporter::SectionStop stop;
    stop.set_id(id);
    *stop.mutable_result() = MakeResultInfo(result, "why");
    ASSERT_THAT(b.StartSection(task, 1, start), IsOk());
    ASSERT_THAT(b.StopSection(task, 1, stop), IsOk());
  }

  // nightly: ok passed, gt failed in one test, crash errored after a passed
  // test, never registered and never ran, skipped on purpose.
  static reporter::JobReport Nightly(const std::string& uid) {
    reporter::ReportBuilder b({.job_name = "nightly", .job_id = uid});
    b.RecordTaskResult("ok", MakeResultInfo(Result::kPassed));
    Test(b, "gt", 1, "S.a", Result::kPassed);
    Test(b, "gt", 2, "S.b", Result::kFailed);
    Test(b, "gt", 3, "S.c", Result::kSkipped);
    b.RecordTaskResult("gt", MakeResultInfo(Result::kFailed, "exit 1"));
    Test(b, "crash", 1, "S.a", Result::kPassed);
    b.RecordTaskResult("crash", MakeResultInfo(Result::kErrored, "SIGSEGV"));
    reporter::TaskInfo never;
    never.set_id("never");
    EXPECT_THAT(b.RegisterTask(never), IsOk());
    b.RecordTaskResult("skipped", MakeResultInfo(Result::kSkipped, "off"));
    return b.Build(absl::Now());
  }

  std::string root_;
};

TEST_F(PlanRerunTest, RerunsWhatDidNotSucceedInTheNewestFinishedRun) {
  const reporter::JobReport old_run = Nightly("nightly.old");
  const reporter::JobReport newest = Nightly("nightly.20261207-101010.000001");
  AddRun("nightly.20261206-101010.000001", &old_run);
  AddRun("nightly.20261207-101010.000001", &newest);
  AddRun("nightly.20261207-111111.000001", nullptr);  // killed: no report
  // Neither another job whose name starts like this one nor stray files.
  AddRun("nightly.x.20261208-101010.000001", nullptr);
  AddRun("nightly.latest", nullptr);

  auto plan = PlanRerun(root_, "nightly");
  ASSERT_THAT(plan, IsOk());
  EXPECT_EQ(plan->previous_uid, "nightly.20261207-101010.000001");
  EXPECT_EQ(plan->previous_dir, root_ + "/nightly.20261207-101010.000001");
  EXPECT_EQ(plan->rerun_count, 3);
  const auto& tasks = plan->tasks;
  EXPECT_FALSE(tasks.at("ok").rerun);
  EXPECT_EQ(tasks.at("ok").skip_reason,
            "passed in run nightly.20261207-101010.000001");
  EXPECT_FALSE(tasks.at("skipped").rerun);
  EXPECT_THAT(tasks.at("skipped").skip_reason, HasSubstr("skipped in run"));
  EXPECT_TRUE(tasks.at("gt").rerun);
  EXPECT_THAT(tasks.at("gt").failed_tests, ElementsAre("S.b"));
  EXPECT_TRUE(tasks.at("crash").rerun);
  EXPECT_THAT(tasks.at("crash").failed_tests, IsEmpty());  // all of it
  EXPECT_TRUE(tasks.at("never").rerun);  // Blocked
}

TEST_F(PlanRerunTest, NoFinishedRunIsNotFoundSayingWhereItLooked) {
  EXPECT_THAT(PlanRerun(root_ + "/none", "nightly"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no finished run of job \"nightly\" in " +
                                 root_ + "/none")));
  AddRun("nightly.20261207-111111.000001", nullptr);
  EXPECT_THAT(PlanRerun(root_, "nightly"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("run the job once without --rerun_failed")));
}

TEST_F(PlanRerunTest, AMalformedOrForeignReportIsAnErrorNamingIt) {
  AddRun("nightly.20261207-111111.000001", nullptr);
  const std::string path =
      root_ + "/nightly.20261207-111111.000001/results.json";
  std::ofstream(path) << "{\"version\": \"2\"";
  EXPECT_THAT(PlanRerun(root_, "nightly"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + ": not JSON")));
  reporter::ReportBuilder other({.job_name = "weekly"});
  std::ofstream(path) << reporter::ResultsJson(other.Build(absl::Now()));
  EXPECT_THAT(PlanRerun(root_, "nightly"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(path + " is a report of job \"weekly\", not "
                                        "\"nightly\"")));
}

TEST_F(PlanRerunTest, AnUnreadableRootNamesItAndTheErrno) {
  const std::string file = root_ + "/file";
  std::ofstream(file) << "x";
  EXPECT_THAT(PlanRerun(file, "nightly"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("opendir " + file)));
}

}  // namespace
}  // namespace taskfork::runner
