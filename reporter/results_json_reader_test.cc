#include "reporter/results_json_reader.h"

#include <cstdlib>
#include <fstream>
#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/report_builder.h"
#include "reporter/writers.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseResultsJsonTest, ReadsBackRetriesAndFlakyMarks) {
  ReportBuilder b({.job_name = "j", .start_time = absl::FromUnixSeconds(1700000000)});
  SectionStart start;
  start.set_id(1);
  start.set_name("a");
  SectionStop stop;
  stop.set_id(1);
  *stop.mutable_result() = MakeResultInfo(Result::kFailed, "boom");
  ASSERT_THAT(b.StartSection("t1", 7, start), IsOk());
  ASSERT_THAT(b.StopSection("t1", 7, stop), IsOk());
  ASSERT_THAT(b.BeginAttempt("t1", "TaskLog.t1:attempt-2"), IsOk());
  *stop.mutable_result() = MakeResultInfo(Result::kPassed);
  ASSERT_THAT(b.StartSection("t1", 8, start), IsOk());
  ASSERT_THAT(b.StopSection("t1", 8, stop), IsOk());
  const JobReport report = b.Build(absl::FromUnixSeconds(1700000005));
  ASSERT_TRUE(report.tasks(0).flaky());

  auto parsed = ParseResultsJson(ResultsJson(report), "results.json");
  ASSERT_THAT(parsed, IsOk());
  EXPECT_EQ(ResultsJson(*parsed), ResultsJson(report));
  const TaskReport& t = parsed->tasks(0);
  EXPECT_TRUE(t.flaky());
  EXPECT_EQ(t.attempts(), 2u);
  ASSERT_EQ(t.previous_attempts_size(), 1);
  EXPECT_EQ(t.previous_attempts(0).result().value(), RESULT_FAILED);
  EXPECT_TRUE(t.sections(0).flaky());
  EXPECT_EQ(parsed->summary().flaky(), 1u);
}

TEST(ParseResultsJsonTest, RejectsWhatIsNotAResultsJson) {
  EXPECT_THAT(ParseResultsJson("{", "a/results.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("a/results.json: not JSON")));
  EXPECT_THAT(ParseResultsJson("{\"version\": \"1\", \"report\": {}}", "x"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("x: not a results.json version 2")));
  EXPECT_THAT(
      ParseResultsJson(
          "{\"version\": \"2\", \"report\": {\"starttime\": \"yesterday\"}}", "x"),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("starttime \"yesterday\" is not an RFC 3339 time")));
}

TEST(ReadResultsJsonTest, ReadsAFileAndNamesOneItCannot) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  const std::string path = dir + "/results.json";
  ReportBuilder b({.job_name = "j"});
  std::ofstream(path) << ResultsJson(b.Build(absl::Now()));
  auto read = ReadResultsJson(path);
  ASSERT_THAT(read, IsOk());
  EXPECT_EQ(read->name(), "j");
  EXPECT_THAT(ReadResultsJson(dir + "/none.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("open " + dir + "/none.json")));
  std::ofstream(dir + "/bad.json") << "{";
  EXPECT_THAT(ReadResultsJson(dir + "/bad.json"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir + "/bad.json: not JSON")));
}

}  // namespace
}  // namespace taskfork::reporter
