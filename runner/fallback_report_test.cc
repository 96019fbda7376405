#include "runner/fallback_report.h"

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/result.h"

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

TEST(WriteFallbackReport, WritesEveryTaskWithItsOwnResult) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/fallback";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::vector<TaskRecord> records(2);
  records[0].id = "ran";
  records[0].description = "it ran";
  records[0].log_path = dir + "/TaskLog.ran";
  records[0].result =
      TaskResult{Result::kFailed, "exited with code 3", absl::Seconds(1), ""};
  records[1].id = "never";
  const absl::Time start = absl::Now();
  auto paths = WriteFallbackReport(
      {.job_name = "job", .job_id = "job.1", .start = start,
       .stop = start + absl::Seconds(2)},
      records, dir);
  ASSERT_THAT(paths, IsOk());
  EXPECT_EQ(paths->results_json, dir + "/results.json");
  const std::string json = ReadFile(paths->results_json);
  EXPECT_THAT(json, HasSubstr("\"ran\""));
  EXPECT_THAT(json, HasSubstr("exited with code 3"));
  EXPECT_THAT(json, HasSubstr("\"never\""));
  EXPECT_THAT(json, HasSubstr("it ran"));
  EXPECT_THAT(json, HasSubstr("\"failed\""));
  EXPECT_THAT(json, HasSubstr("\"blocked\""));  // never started
  const std::string xml = ReadFile(paths->xunit_xml);
  EXPECT_THAT(xml, HasSubstr("ran"));
  EXPECT_THAT(xml, HasSubstr("never"));
}

TEST(WriteFallbackReport, AnUnwritableDirectoryIsAnErrorNamingIt) {
  auto paths = WriteFallbackReport({.job_name = "job"}, {},
                                   "/nonexistent/taskfork-fallback");
  EXPECT_THAT(paths, StatusIs(absl::StatusCode::kNotFound,
                              HasSubstr("/nonexistent/taskfork-fallback")));
}

}  // namespace
}  // namespace taskfork::runner
