#include "tools/report_html/regenerate.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/html_report.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"
#include "reporter/results_json_reader.h"
#include "reporter/writers.h"

namespace taskfork::report_html {
namespace {

using ::taskfork::reporter::JobReport;
using ::taskfork::reporter::Result;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

std::string TempDir() {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/regen_XXXXXX");
  EXPECT_NE(::mkdtemp(dir.data()), nullptr);
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A task with a failed testcase holding a step a forked child (pid 101)
// reported, and a task that never ran.
JobReport SampleReport() {
  reporter::ReportBuilderOptions options;
  options.job_name = "nightly <b>";
  options.start_time = kT0;
  options.extra = {{"cli", "runner job.textpb"}};
  reporter::ReportBuilder b(options);
  reporter::TaskStart ts;
  ts.set_name("first task");
  ts.set_logfile("TaskLog.t1");
  *ts.mutable_time() = reporter::ToProtoTime(kT0 + absl::Milliseconds(3));
  EXPECT_THAT(b.StartTask("t1", 100, ts), IsOk());
  reporter::SectionStart s;
  s.set_id(1);
  s.set_type("Testcase");
  s.set_name("tc \"one\"");
  s.mutable_source()->set_file("suite.cc");
  s.mutable_source()->set_line(42);
  s.mutable_log()->set_file("TaskLog.t1");
  s.mutable_log()->set_begin(10);
  *s.mutable_time() = reporter::ToProtoTime(kT0 + absl::Milliseconds(4));
  EXPECT_THAT(b.StartSection("t1", 100, s), IsOk());
  s.set_id(2);
  s.set_parent_id(1);
  s.set_type("Step");
  s.set_name("in the child");
  *s.mutable_time() = reporter::ToProtoTime(kT0 + absl::Milliseconds(5));
  EXPECT_THAT(b.StartSection("t1", 101, s), IsOk());
  reporter::SectionStop e;
  e.set_id(2);
  *e.mutable_result() = reporter::MakeResultInfo(Result::kFailed, "1 != 2 <&>");
  *e.mutable_time() = reporter::ToProtoTime(kT0 + absl::Microseconds(6789));
  EXPECT_THAT(b.StopSection("t1", 101, e), IsOk());
  e.set_id(1);
  e.clear_result();
  e.set_log_size(77);
  *e.mutable_time() = reporter::ToProtoTime(kT0 + absl::Milliseconds(8));
  EXPECT_THAT(b.StopSection("t1", 100, e), IsOk());
  reporter::TaskInfo never;
  never.set_id("t2");
  EXPECT_THAT(b.RegisterTask(never), IsOk());
  return b.Build(kT0 + absl::Seconds(1));
}

TEST(ParseResultsJsonTest, ReadsBackWhatResultsJsonWrote) {
  const JobReport report = SampleReport();
  auto parsed = reporter::ParseResultsJson(reporter::ResultsJson(report), "results.json");
  ASSERT_THAT(parsed, IsOk());
  // Equal as far as results.json and report.html carry them.
  EXPECT_EQ(reporter::ResultsJson(*parsed), reporter::ResultsJson(report));
  EXPECT_EQ(reporter::HtmlReport(*parsed), reporter::HtmlReport(report));
}

TEST(RegenerateReportHtmlTest, RewritesTheRunDirectorysPage) {
  const std::string dir = TempDir();
  std::ofstream(dir + "/TaskLog.t1") << "log";
  std::ofstream(dir + "/TaskLog.t1:pid-101") << "child log";
  const JobReport report = SampleReport();
  ASSERT_THAT(reporter::WriteReport(report, dir), IsOk());
  const std::string original = ReadFile(dir + "/report.html");
  ASSERT_EQ(::unlink((dir + "/report.html").c_str()), 0);
  EXPECT_THAT(RegenerateReportHtml(dir, ""), IsOkAndHolds(dir + "/report.html"));
  EXPECT_EQ(ReadFile(dir + "/report.html"), original);
  EXPECT_THAT(original, HasSubstr("\"logs\":[\"TaskLog.t1\",\"TaskLog.t1:pid-101\"]"));
}

TEST(RegenerateReportHtmlTest, ReadsARunsArchive) {
  const std::string parent = TempDir();
  const std::string dir = parent + "/nightly.20231114";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  std::ofstream(dir + "/TaskLog.t1") << "log";
  std::ofstream(dir + "/JobLog.nightly") << "job log";
  const JobReport report = SampleReport();
  ASSERT_THAT(reporter::WriteReport(report, dir), IsOk());
  const std::string archive = parent + "/nightly.20231114.tar.gz";
  ASSERT_EQ(std::system(absl::StrCat("tar -czf ", archive, " -C ", parent,
                                     " nightly.20231114")
                            .c_str()),
            0);
  EXPECT_THAT(RegenerateReportHtml(archive, ""),
              IsOkAndHolds(parent + "/nightly.20231114.report.html"));
  EXPECT_EQ(ReadFile(parent + "/nightly.20231114.report.html"),
            ReadFile(dir + "/report.html"));
  const std::string out = parent + "/elsewhere.html";
  EXPECT_THAT(RegenerateReportHtml(archive, out), IsOkAndHolds(out));
}

TEST(RegenerateReportHtmlTest, ErrorsNameTheInput) {
  const std::string dir = TempDir();
  EXPECT_THAT(RegenerateReportHtml(dir + "/missing", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(dir + "/missing/results.json")));
  std::ofstream(dir + "/results.json") << "[1, 2]";
  EXPECT_THAT(RegenerateReportHtml(dir, ""),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(dir + "/results.json: ")));
  EXPECT_THAT(RegenerateReportHtml(dir + "/none.tar.gz", ""),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/none.tar.gz")));
  std::ofstream(dir + "/junk.tar.gz") << "not an archive";
  EXPECT_THAT(RegenerateReportHtml(dir + "/junk.tar.gz", ""),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr(dir + "/junk.tar.gz")));
  ASSERT_EQ(std::system(absl::StrCat("tar -czf ", dir, "/empty.tar.gz -C ", dir,
                                     " junk.tar.gz")
                            .c_str()),
            0);
  EXPECT_THAT(RegenerateReportHtml(dir + "/empty.tar.gz", ""),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no <run>/results.json in archive " + dir +
                                 "/empty.tar.gz")));
}

}  // namespace
}  // namespace taskfork::report_html
