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
// A GoogleTest-like task: tests a, b, c; `failing` fail.
void RunAttempt(ReportBuilder& b, int64_t pid, absl::Time t,
                const std::vector<std::pair<std::string, bool>>& tests,
                std::optional<Result> task_result) {
  TaskStart start;
  *start.mutable_time() = ToProtoTime(t);
  ASSERT_THAT(b.StartTask("t1", pid, start), IsOk());
  uint64_t id = 1;
  for (const auto& [name, passed] : tests) {
    ASSERT_THAT(b.StartSection("t1", pid, MakeStart(id, 0, name, t)), IsOk());
    ASSERT_THAT(b.StopSection("t1", pid,
                              MakeStop(id, passed ? Result::kPassed
                                                  : Result::kFailed,
                                       passed ? "" : name + " broke",
                                       t + absl::Seconds(1))),
                IsOk());
    ++id;
  }
  if (task_result) {
    b.RecordTaskResult("t1", MakeResultInfo(*task_result));
  }
  TaskStop stop;
  *stop.mutable_time() = ToProtoTime(t + absl::Seconds(2));
  ASSERT_THAT(b.StopTask("t1", pid, stop), IsOk());
}

TEST(ReportBuilderTest, ARetryKeepsTestsItDidNotRunAndMarksTheFlakyOnes) {
  ReportBuilder b = NewBuilder();
  TaskInfo info;
  info.set_id("t1");
  info.set_logfile("/r/TaskLog.t1");
  ASSERT_THAT(b.RegisterTask(info), IsOk());
  RunAttempt(b, 10, kT0, {{"a", true}, {"b", false}, {"c", false}},
             Result::kFailed);
  ASSERT_THAT(b.BeginAttempt("t1", "/r/TaskLog.t1.attempt-2"), IsOk());
  // The retry runs only the failed tests: b passes now, c fails again.
  RunAttempt(b, 11, kT0 + absl::Seconds(10), {{"b", true}, {"c", false}},
             Result::kFailed);

  const JobReport r = b.Build(kT0 + absl::Seconds(20));
  ASSERT_EQ(r.tasks_size(), 1);
  const TaskReport& t = r.tasks(0);
  EXPECT_EQ(t.attempts(), 2u);
  EXPECT_FALSE(t.flaky());
  EXPECT_EQ(t.result().value(), RESULT_FAILED);
  EXPECT_EQ(t.logfile(), "/r/TaskLog.t1.attempt-2");
  ASSERT_EQ(t.previous_attempts_size(), 1);
  EXPECT_EQ(t.previous_attempts(0).number(), 1u);
  EXPECT_EQ(t.previous_attempts(0).logfile(), "/r/TaskLog.t1");
  EXPECT_EQ(t.previous_attempts(0).result().value(), RESULT_FAILED);
  EXPECT_THAT(t.pids(), ::testing::ElementsAre(10, 11));
  EXPECT_DOUBLE_EQ(t.runtime(), 12.0);  // first start to last stop

  ASSERT_EQ(t.sections_size(), 3);
  const Section& a = t.sections(0);
  const Section& b_ = t.sections(1);
  const Section& c = t.sections(2);
  EXPECT_EQ(a.name(), "a");
  EXPECT_EQ(a.result().value(), RESULT_PASSED);
  EXPECT_EQ(a.attempts(), 0u);  // ran once
  EXPECT_EQ(a.id(), "t1.attempt1.1");
  EXPECT_EQ(b_.name(), "b");
  EXPECT_EQ(b_.result().value(), RESULT_PASSED);
  EXPECT_TRUE(b_.flaky());
  EXPECT_EQ(b_.attempts(), 2u);
  EXPECT_EQ(b_.id(), "t1.1");
  EXPECT_THAT(b_.result().reason(),
              HasSubstr("flaky: passed on attempt 2 of 2 (attempt 1 failed: "
                        "b broke)"));
  ASSERT_EQ(b_.previous_attempts_size(), 1);
  EXPECT_EQ(b_.previous_attempts(0).result().value(), RESULT_FAILED);
  EXPECT_EQ(c.result().value(), RESULT_FAILED);
  EXPECT_FALSE(c.flaky());
  EXPECT_EQ(c.attempts(), 2u);
  EXPECT_EQ(t.summary().passed(), 2u);
  EXPECT_EQ(t.summary().failed(), 1u);
  EXPECT_EQ(t.summary().flaky(), 1u);
  EXPECT_EQ(r.summary().flaky(), 1u);
  EXPECT_EQ(r.task_summary().flaky(), 0u);
}

TEST(ReportBuilderTest, ATaskPassingOnItsThirdAttemptIsFlaky) {
  ReportBuilder b = NewBuilder();
  RunAttempt(b, 10, kT0, {}, Result::kFailed);
  ASSERT_THAT(b.BeginAttempt("t1", ""), IsOk());
  RunAttempt(b, 11, kT0 + absl::Seconds(3), {}, Result::kErrored);
  ASSERT_THAT(b.BeginAttempt("t1", ""), IsOk());
  RunAttempt(b, 12, kT0 + absl::Seconds(6), {}, Result::kPassed);

  const JobReport r = b.Build(kT0 + absl::Seconds(20));
  const TaskReport& t = r.tasks(0);
  EXPECT_EQ(t.result().value(), RESULT_PASSED);
  EXPECT_TRUE(t.flaky());
  EXPECT_EQ(t.attempts(), 3u);
  EXPECT_EQ(t.result().reason(),
            "flaky: passed on attempt 3 of 3 (attempt 1 failed; attempt 2 "
            "errored)");
  ASSERT_EQ(t.previous_attempts_size(), 2);
  EXPECT_EQ(t.previous_attempts(1).number(), 2u);
  EXPECT_EQ(t.previous_attempts(1).result().value(), RESULT_ERRORED);
  EXPECT_EQ(r.task_summary().flaky(), 1u);
  EXPECT_EQ(r.result().value(), RESULT_PASSED);
}

TEST(ReportBuilderTest, ATestTheRetryDidNotReachKeepsItsFailure) {
  ReportBuilder b = NewBuilder();
  RunAttempt(b, 10, kT0, {{"a", false}, {"b", false}}, Result::kFailed);
  ASSERT_THAT(b.BeginAttempt("t1", ""), IsOk());
  // The retry passed a and crashed before b (no section for b).
  RunAttempt(b, 11, kT0 + absl::Seconds(3), {{"a", true}}, std::nullopt);
  const TaskReport t = b.Build(kT0 + absl::Seconds(20)).tasks(0);
  EXPECT_EQ(t.result().value(), RESULT_FAILED);
  EXPECT_EQ(t.result().reason(), "b: b broke");
  EXPECT_FALSE(t.flaky());
  EXPECT_TRUE(t.sections(0).flaky());
}

TEST(ReportBuilderTest, BeginAttemptNeedsATaskId) {
  ReportBuilder b = NewBuilder();
  EXPECT_THAT(b.BeginAttempt("", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace taskfork::reporter
