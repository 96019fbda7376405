#include "reporter/html_report.h"

#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/report_builder.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

// What tasks may put in a name or reason: markup, quotes, control bytes,
// invalid UTF-8 (a lone continuation byte, a truncated sequence, an encoded
// surrogate) and the two line terminators JavaScript once rejected.
const char kHostile[] =
    "</script><script>alert('x')</script><!-- \"q\" & 'a' \x01\x1b\x7f"
    " \xff\x80 \xe2\x9c \xed\xa0\x80 \xe2\x80\xa8\xe2\x80\xa9 \xe2\x9c\x93";

size_t Count(absl::string_view haystack, absl::string_view needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != absl::string_view::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST(HtmlEscapeTest, EscapesMarkupQuotesControlBytesAndInvalidUtf8) {
  EXPECT_EQ(HtmlEscape("<b a=\"1\" c='2'>&amp;</b>"),
            "&lt;b a=&quot;1&quot; c=&#39;2&#39;&gt;&amp;amp;&lt;/b&gt;");
  EXPECT_EQ(HtmlEscape("a\tb\nc\x01" "d\x7f"),
            "a\tb\nc\xef\xbf\xbd" "d\xef\xbf\xbd");
  EXPECT_EQ(HtmlEscape("x\xffy\xe2\x9c"), "x\xef\xbf\xbdy\xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(HtmlEscape("\xe2\x9c\x93 ok"), "\xe2\x9c\x93 ok");
}

TEST(ScriptJsonStringTest, CannotCloseTheScriptAndIsValidUtf8) {
  EXPECT_EQ(ScriptJsonString("</script>"), "\"\\u003c/script\\u003e\"");
  EXPECT_EQ(ScriptJsonString("a&b \"q\" \\"), "\"a\\u0026b \\\"q\\\" \\\\\"");
  EXPECT_EQ(ScriptJsonString("\x01\n\t\x7f"), "\"\\u0001\\n\\t\\u007f\"");
  EXPECT_EQ(ScriptJsonString("\xe2\x80\xa8\xe2\x80\xa9"), "\"\\u2028\\u2029\"");
  EXPECT_EQ(ScriptJsonString("\xff\xed\xa0\x80"),
            "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
  EXPECT_EQ(ScriptJsonString("\xe2\x9c\x93"), "\"\xe2\x9c\x93\"");
}

SectionStart Start(uint64_t id, uint64_t parent, const std::string& name,
                   absl::Duration at) {
  SectionStart s;
  s.set_id(id);
  s.set_parent_id(parent);
  s.set_name(name);
  s.set_type(parent ? "Step" : "Testcase");
  s.mutable_source()->set_file("suite.cc");
  s.mutable_source()->set_line(42);
  *s.mutable_time() = ToProtoTime(kT0 + at);
  return s;
}

SectionStop Stop(uint64_t id, Result r, const std::string& reason,
                 absl::Duration at) {
  SectionStop s;
  s.set_id(id);
  *s.mutable_result() = MakeResultInfo(r, reason);
  *s.mutable_time() = ToProtoTime(kT0 + at);
  return s;
}

void RunTask(ReportBuilder& b, const std::string& id, absl::Duration start,
             absl::Duration stop, Result result) {
  TaskStart ts;
  ts.set_name(id);
  *ts.mutable_time() = ToProtoTime(kT0 + start);
  ASSERT_THAT(b.StartTask(id, 100, ts), IsOk());
  TaskStop te;
  *te.mutable_result() = MakeResultInfo(result, "");
  *te.mutable_time() = ToProtoTime(kT0 + stop);
  ASSERT_THAT(b.StopTask(id, 100, te), IsOk());
}

JobReport HostileReport() {
  ReportBuilderOptions options;
  options.job_name = kHostile;
  options.job_id = kHostile;
  options.start_time = kT0;
  ReportBuilder b(options);
  TaskStart ts;
  ts.set_name(kHostile);
  *ts.mutable_time() = ToProtoTime(kT0);
  CHECK(b.StartTask("t1", 100, ts).ok());
  CHECK(b.StartSection("t1", 100, Start(1, 0, kHostile, absl::Seconds(1))).ok());
  // A step reported by a forked child (pid 101) inside the parent's section.
  CHECK(b.StartSection("t1", 101, Start(2, 1, "child step", absl::Seconds(2))).ok());
  CHECK(b.StopSection("t1", 101, Stop(2, Result::kPassed, "", absl::Seconds(3))).ok());
  CHECK(b.StopSection("t1", 100,
                      Stop(1, Result::kFailed, kHostile, absl::Seconds(4))).ok());
  TaskStop te;
  *te.mutable_time() = ToProtoTime(kT0 + absl::Seconds(5));
  CHECK(b.StopTask("t1", 100, te).ok());
  return b.Build(kT0 + absl::Seconds(6));
}

TEST(HtmlReportTest, TaskTextCannotEscapeItsPlace) {
  const std::string html = HtmlReport(HostileReport());
  // The page's own two scripts and nothing else.
  EXPECT_EQ(Count(html, "<script"), 2);
  EXPECT_EQ(Count(html, "</script"), 2);
  EXPECT_EQ(Count(html, "<!--"), 0);
  EXPECT_THAT(html, Not(HasSubstr("<script>alert")));
  // The data holds no markup characters and no raw line terminators.
  const std::string marker = "id=\"report-data\">";
  const size_t begin = html.find(marker) + marker.size();
  ASSERT_GT(begin, marker.size());
  const std::string data = html.substr(begin, html.find("</script>", begin) - begin);
  EXPECT_EQ(data.front(), '{');
  EXPECT_EQ(data.find_first_of("<>&"), std::string::npos) << data;
  EXPECT_THAT(data, Not(HasSubstr("\xe2\x80\xa8")));
  EXPECT_THAT(data, Not(HasSubstr("\xe2\x80\xa9")));
  EXPECT_THAT(data, HasSubstr("\\u2028\\u2029"));
  EXPECT_THAT(html, HasSubstr("\\u003c/script\\u003e\\u003cscript\\u003ealert"));
  EXPECT_THAT(html, HasSubstr("&lt;/script&gt;&lt;script&gt;alert(&#39;x&#39;)"));
  // Every byte outside ASCII is part of valid UTF-8; no control bytes but
  // newlines.
  for (size_t i = 0; i < html.size(); ++i) {
    const auto c = static_cast<unsigned char>(html[i]);
    EXPECT_TRUE(c >= 0x20 || c == '\n') << "control byte at " << i;
    if (c == 0x7f) ADD_FAILURE() << "DEL at " << i;
  }
  // Valid UTF-8: re-encoding it replaces nothing more.
  const absl::string_view fffd = "\xef\xbf\xbd";
  EXPECT_GT(Count(html, fffd), 0);
  EXPECT_EQ(Count(ScriptJsonString(html), fffd), Count(html, fffd));
}

TEST(HtmlReportTest, HoldsHeaderCountsAndEachTaskWithItsLogs) {
  ReportBuilderOptions options;
  options.job_name = "nightly";
  options.job_id = "nightly.20231114";
  options.host = "build-7";
  options.start_time = kT0;
  ReportBuilder b(options);
  RunTask(b, "t1", absl::Seconds(0), absl::Seconds(2), Result::kPassed);
  RunTask(b, "t10", absl::Seconds(1), absl::Seconds(3), Result::kFailed);
  const std::string html =
      HtmlReport(b.Build(kT0 + absl::Seconds(4)),
                 {.log_files = {"JobLog.nightly", "TaskLog.t1", "TaskLog.t1:pid-7",
                                "TaskLog.t10"}});
  EXPECT_THAT(html, HasSubstr("<dt>uid</dt><dd>nightly.20231114</dd>"));
  EXPECT_THAT(html, HasSubstr("<dt>host</dt><dd>build-7</dd>"));
  EXPECT_THAT(html, HasSubstr("<tr><th>tasks</th><td>1</td><td>0</td><td>1</td>"));
  EXPECT_THAT(html, HasSubstr("\"id\":\"t1\",\"name\":\"t1\",\"start\":0.000,"
                              "\"stop\":2000.000,"));
  EXPECT_THAT(html, HasSubstr("\"result\":\"passed\",\"slot\":0,"));
  EXPECT_THAT(html, HasSubstr("\"result\":\"failed\",\"slot\":1,"));
  EXPECT_THAT(html, HasSubstr("\"logs\":[\"TaskLog.t1\",\"TaskLog.t1:pid-7\"]"));
  EXPECT_THAT(html, HasSubstr("\"logs\":[\"TaskLog.t10\"]"));
}

TEST(HtmlReportTest, MarksFlakyTasksAndTestsAndListsAttemptLogs) {
  ReportBuilderOptions options;
  options.job_name = "nightly";
  options.start_time = kT0;
  ReportBuilder b(options);
  SectionStart start;
  start.set_id(1);
  start.set_name("a");
  SectionStop stop;
  stop.set_id(1);
  *stop.mutable_result() = MakeResultInfo(Result::kFailed, "boom");
  ASSERT_TRUE(b.StartSection("t1", 7, start).ok());
  ASSERT_TRUE(b.StopSection("t1", 7, stop).ok());
  ASSERT_TRUE(b.BeginAttempt("t1", "").ok());
  *stop.mutable_result() = MakeResultInfo(Result::kPassed);
  ASSERT_TRUE(b.StartSection("t1", 8, start).ok());
  ASSERT_TRUE(b.StopSection("t1", 8, stop).ok());
  const std::string html =
      HtmlReport(b.Build(kT0 + absl::Seconds(4)),
                 {.log_files = {"TaskLog.t1", "TaskLog.t1:attempt-2"}});
  EXPECT_THAT(html, HasSubstr("\"result\":\"passed\",\"reason\":\"flaky: "
                              "passed on attempt 2 of 2 (attempt 1 failed: a: "
                              "boom)\""));
  EXPECT_THAT(html, HasSubstr("\"flaky\":1,\"attempts\":2,"));
  EXPECT_THAT(html, HasSubstr("\"p\":8,\"k\":1"));
  EXPECT_THAT(html, HasSubstr("\"logs\":[\"TaskLog.t1\",\"TaskLog.t1:attempt-2\"]"));
  EXPECT_THAT(html, HasSubstr("'badge flaky'"));
}

TEST(HtmlReportTest, ChildProcessesGetTheSpanOfTheirSections) {
  const std::string html = HtmlReport(HostileReport());
  EXPECT_THAT(html, HasSubstr("\"pids\":[100,101],\"children\":[[101,2000.000,3000.000]]"));
  EXPECT_THAT(html, HasSubstr("\"n\":\"child step\",\"r\":\"passed\",\"s\":2000.000,"
                              "\"d\":1.000000,\"f\":\"suite.cc\",\"l\":42,\"p\":101"));
}

TEST(TimelineSlotsTest, EachTaskTakesTheLowestFreeSlot) {
  ReportBuilderOptions options;
  options.start_time = kT0;
  ReportBuilder b(options);
  RunTask(b, "a", absl::Seconds(0), absl::Seconds(10), Result::kPassed);
  RunTask(b, "b", absl::Seconds(1), absl::Seconds(5), Result::kPassed);
  RunTask(b, "c", absl::Seconds(6), absl::Seconds(12), Result::kPassed);
  RunTask(b, "d", absl::Seconds(10), absl::Seconds(20), Result::kPassed);
  RunTask(b, "e", absl::Seconds(7), absl::Seconds(8), Result::kPassed);
  TaskInfo never;
  never.set_id("never");
  ASSERT_THAT(b.RegisterTask(never), IsOk());
  const JobReport report = b.Build(kT0 + absl::Seconds(21));
  std::vector<std::string> ids;
  for (const TaskReport& t : report.tasks()) ids.push_back(t.id());
  ASSERT_THAT(ids, ElementsAre("a", "b", "c", "d", "e", "never"));
  // a [0,10) slot 0; b [1,5) slot 1; c [6,12) slot 1; e [7,8) slot 2;
  // d [10,20) slot 0 (a stopped at 10); never started: 0.
  EXPECT_THAT(TimelineSlots(report), ElementsAre(0, 1, 1, 0, 2, 0));
}

TEST(ListLogFilesTest, ListsJobAndTaskLogsSorted) {
  std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/logs_XXXXXX");
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  for (const char* name : {"TaskLog.b", "results.json", "TaskLog.a:pid-3",
                           "JobLog.j", "env.txt", "TaskLog.a"}) {
    std::ofstream(absl::StrCat(dir, "/", name)) << "x";
  }
  EXPECT_THAT(ListLogFiles(dir),
              IsOkAndHolds(ElementsAre("JobLog.j", "TaskLog.a", "TaskLog.a:pid-3",
                                       "TaskLog.b")));
}

TEST(ListLogFilesTest, MissingDirectoryIsNotFoundNamingIt) {
  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/nope");
  EXPECT_THAT(ListLogFiles(dir),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("opendir " + dir)));
}

}  // namespace
}  // namespace taskfork::reporter
