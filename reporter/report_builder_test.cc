#include "reporter/report_builder.h"

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

SectionStart MakeStart(uint64_t id, uint64_t parent, const std::string& name,
                       absl::Time t = kT0) {
  SectionStart s;
  s.set_id(id);
  s.set_parent_id(parent);
  s.set_type(parent == 0 ? "Testcase" : "Step");
  s.set_name(name);
  *s.mutable_time() = ToProtoTime(t);
  return s;
}

SectionStop MakeStop(uint64_t id, std::optional<Result> result = std::nullopt,
                     const std::string& reason = "",
                     absl::Time t = kT0 + absl::Seconds(2)) {
  SectionStop s;
  s.set_id(id);
  if (result) *s.mutable_result() = MakeResultInfo(*result, reason);
  *s.mutable_time() = ToProtoTime(t);
  return s;
}

ReportBuilder NewBuilder() {
  ReportBuilderOptions options;
  options.job_name = "job";
  options.start_time = kT0;
  return ReportBuilder(options);
}

TEST(ReportBuilderTest, BuildsTheTreeWithRollUpsAndSummaries) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartTask("t1", 10, TaskStart()), IsOk());
  ASSERT_THAT(b.StartSection("t1", 10, MakeStart(1, 0, "tc1")), IsOk());
  ASSERT_THAT(b.StartSection("t1", 10, MakeStart(2, 1, "step a")), IsOk());
  ASSERT_THAT(b.StopSection("t1", 10, MakeStop(2)), IsOk());
  ASSERT_THAT(b.StartSection("t1", 10, MakeStart(3, 1, "step b")), IsOk());
  ASSERT_THAT(b.StopSection("t1", 10, MakeStop(3, Result::kFailed, "x != 1")),
              IsOk());
  ASSERT_THAT(b.StopSection("t1", 10, MakeStop(1)), IsOk());
  ASSERT_THAT(b.StartSection("t1", 10, MakeStart(4, 0, "tc2")), IsOk());
  ASSERT_THAT(b.StopSection("t1", 10, MakeStop(4, Result::kSkipped)), IsOk());

  const JobReport r = b.Build(kT0 + absl::Seconds(5));
  EXPECT_EQ(r.name(), "job");
  EXPECT_EQ(r.type(), "TestSuite");
  EXPECT_DOUBLE_EQ(r.runtime(), 5.0);
  ASSERT_EQ(r.tasks_size(), 1);
  const TaskReport& t = r.tasks(0);
  EXPECT_EQ(t.id(), "t1");
  ASSERT_EQ(t.sections_size(), 2);
  const Section& tc1 = t.sections(0);
  EXPECT_EQ(tc1.name(), "tc1");
  EXPECT_DOUBLE_EQ(tc1.runtime(), 2.0);
  EXPECT_EQ(tc1.result().value(), RESULT_FAILED);
  EXPECT_EQ(tc1.result().reason(), "step b: x != 1");
  ASSERT_EQ(tc1.sections_size(), 2);
  EXPECT_EQ(tc1.sections(0).result().value(), RESULT_PASSED);
  EXPECT_EQ(tc1.summary().passed(), 1u);
  EXPECT_EQ(tc1.summary().failed(), 1u);
  EXPECT_EQ(tc1.summary().total(), 2u);
  EXPECT_DOUBLE_EQ(tc1.summary().success_rate(), 50.0);
  EXPECT_EQ(t.sections(1).result().value(), RESULT_SKIPPED);
  EXPECT_EQ(t.summary().failed(), 1u);
  EXPECT_EQ(t.summary().skipped(), 1u);
  EXPECT_EQ(t.summary().total(), 2u);
  EXPECT_EQ(t.result().value(), RESULT_FAILED);
  EXPECT_EQ(r.result().value(), RESULT_FAILED);
  EXPECT_EQ(r.summary().total(), 2u);
  EXPECT_EQ(r.task_summary().failed(), 1u);
  EXPECT_EQ(r.task_summary().total(), 1u);
  EXPECT_THAT(t.pids(), ::testing::ElementsAre(10));
}

TEST(ReportBuilderTest, RegisteredTaskThatNeverRanIsBlocked) {
  ReportBuilder b = NewBuilder();
  TaskInfo info;
  info.set_id("never");
  info.set_name("Never run");
  ASSERT_THAT(b.RegisterTask(info), IsOk());
  EXPECT_THAT(b.RegisterTask(info), StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(b.RegisterTask(TaskInfo()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const JobReport r = b.Build(kT0);
  ASSERT_EQ(r.tasks_size(), 1);
  EXPECT_EQ(r.tasks(0).name(), "Never run");
  EXPECT_EQ(r.tasks(0).result().value(), RESULT_BLOCKED);
  EXPECT_EQ(r.tasks(0).result().reason(), "task never never ran");
  EXPECT_EQ(r.totaltasks(), 1u);
  EXPECT_EQ(r.task_summary().blocked(), 1u);
}

TEST(ReportBuilderTest, RecordedTaskResultRollsUpWithSections) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartSection("t", 1, MakeStart(1, 0, "s")), IsOk());
  ASSERT_THAT(b.StopSection("t", 1, MakeStop(1)), IsOk());
  b.RecordTaskResult("t", MakeResultInfo(Result::kErrored, "crashed: SIGSEGV"));
  b.RecordTaskResult("t", MakeResultInfo(Result::kPassed));
  const JobReport r = b.Build(kT0);
  EXPECT_EQ(r.tasks(0).result().value(), RESULT_ERRORED);
  EXPECT_EQ(r.tasks(0).result().reason(), "crashed: SIGSEGV");
  EXPECT_EQ(r.result().reason(), "task t: crashed: SIGSEGV");
}

TEST(ReportBuilderTest, TaskStopResultCounts) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartTask("t", 1, TaskStart()), IsOk());
  TaskStop stop;
  *stop.mutable_result() = MakeResultInfo(Result::kPassx, "flaky");
  ASSERT_THAT(b.StopTask("t", 1, stop), IsOk());
  EXPECT_THAT(b.StopTask("t", 1, stop),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(b.StartTask("t", 1, TaskStart()),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(b.Build(kT0).tasks(0).result().value(), RESULT_PASSX);
}

TEST(ReportBuilderTest, StartedTaskWithoutResultIsAborted) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartTask("t", 1, TaskStart()), IsOk());
  const JobReport r = b.Build(kT0);
  EXPECT_EQ(r.tasks(0).result().value(), RESULT_ABORTED);
  EXPECT_THAT(r.tasks(0).result().reason(), HasSubstr("had not stopped"));
}

TEST(ReportBuilderTest, OpenSectionIsAbortedAtBuild) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartSection("t", 1, MakeStart(1, 0, "s")), IsOk());
  const JobReport r = b.Build(kT0 + absl::Seconds(3));
  EXPECT_EQ(r.tasks(0).sections(0).result().value(), RESULT_ABORTED);
  EXPECT_DOUBLE_EQ(r.tasks(0).sections(0).runtime(), 3.0);
}

TEST(ReportBuilderTest, CloseOpenSectionsStopsOnlyThatPid) {
  ReportBuilder b = NewBuilder();
  ASSERT_THAT(b.StartSection("t", 1, MakeStart(1, 0, "parent")), IsOk());
  // A forked child (pid 2) nests its steps under the parent's section.
  ASSERT_THAT(b.StartSection("t", 2, MakeStart(2, 1, "child step")), IsOk());
  ASSERT_THAT(b.StartSection("t", 2, MakeStart(3, 2, "grandchild")), IsOk());
  EXPECT_EQ(b.OpenSectionCount("t", 2), 2);
  EXPECT_EQ(b.OpenSectionCount("t", 1), 1);
  EXPECT_EQ(b.CloseOpenSections(
                "t", 2, MakeResultInfo(Result::kErrored, "client gone"), kT0),
            2);
  EXPECT_EQ(b.OpenSectionCount("t", 2), 0);
  EXPECT_EQ(b.CloseOpenSections("t", 2, ResultInfo(), kT0), 0);
  EXPECT_EQ(b.CloseOpenSections("nope", 2, ResultInfo(), kT0), 0);
  ASSERT_THAT(b.StopSection("t", 1, MakeStop(1)), IsOk());
  const JobReport r = b.Build(kT0);
  const Section& parent = r.tasks(0).sections(0);
  EXPECT_EQ(parent.result().value(), RESULT_ERRORED);
  EXPECT_EQ(parent.result().reason(), "child step: client gone");
  EXPECT_EQ(parent.sections(0).sections(0).result().reason(), "client gone");
  EXPECT_EQ(parent.sections(0).pid(), 2);
}

TEST(ReportBuilderTest, RejectsBadSectionEvents) {
  ReportBuilder b = NewBuilder();
  EXPECT_THAT(b.StartSection("", 1, MakeStart(1, 0, "s")),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(b.StartSection("t", 1, MakeStart(0, 0, "s")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("id 0")));
  EXPECT_THAT(b.StartSection("t", 1, MakeStart(5, 99, "s")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown parent section 99")));
  ASSERT_THAT(b.StartSection("t", 1, MakeStart(1, 0, "s")), IsOk());
  EXPECT_THAT(b.StartSection("t", 1, MakeStart(1, 0, "s")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(b.StopSection("t", 1, MakeStop(2)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown section 2")));
  EXPECT_THAT(b.StopSection("other", 1, MakeStop(1)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("unknown task other")));
  ASSERT_THAT(b.StopSection("t", 1, MakeStop(1)), IsOk());
  EXPECT_THAT(b.StopSection("t", 1, MakeStop(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(b.StartSection("t", 1, MakeStart(7, 1, "late")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ReportBuilderTest, EmptyJobIsSkipped) {
  const JobReport r = NewBuilder().Build(kT0);
  EXPECT_EQ(r.result().value(), RESULT_SKIPPED);
  EXPECT_EQ(r.summary().total(), 0u);
  EXPECT_DOUBLE_EQ(r.summary().success_rate(), 0.0);
}

TEST(ReportBuilderTest, SuccessRateCountsPassedPassxSkipped) {
  Summary s;
  for (Result r : kAllResults) CountResult(MakeResultInfo(r), &s);
  CountResult(ResultInfo(), &s);  // unspecified: not counted
  FinishSummary(&s);
  EXPECT_EQ(s.total(), 7u);
  EXPECT_NEAR(s.success_rate(), 300.0 / 7, 1e-9);
}

TEST(ReportBuilderTest, ProtoTimeRoundTrips) {
  const absl::Time t = kT0 + absl::Nanoseconds(123456789);
  EXPECT_EQ(FromProtoTime(ToProtoTime(t)), t);
  EXPECT_EQ(FromProtoTime(ToProtoTime(absl::InfinitePast())), absl::InfinitePast());
}

}  // namespace
}  // namespace taskfork::reporter
