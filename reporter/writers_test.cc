#include "reporter/writers.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "glog/logging.h"
#include "gtest/gtest.h"
#include "reporter/junit_checker.h"
#include "reporter/report_builder.h"
#include "reporter/html_report.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1700000000);

std::string TempDir() {
  std::string tmpl = std::string(std::getenv("TEST_TMPDIR") ? std::getenv("TEST_TMPDIR")
                                                            : "/tmp") +
                     "/writers_XXXXXX";
  CHECK(::mkdtemp(tmpl.data()) != nullptr);
  return tmpl;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// A job with: t1 (a passed testcase with steps, a failed testcase with a
// nasty reason), t2 (registered, never ran), t3 (sections passed, crashed).
JobReport SampleReport() {
  ReportBuilderOptions options;
  options.job_name = "nightly <&> \"job\"";
  options.start_time = kT0;
  ReportBuilder b(options);
  auto start = [&](const char* task, uint64_t id, uint64_t parent,
                   const std::string& name) {
    SectionStart s;
    s.set_id(id);
    s.set_parent_id(parent);
    s.set_name(name);
    s.set_type(parent ? "Step" : "Testcase");
    s.mutable_source()->set_file("suite.cc");
    s.mutable_source()->set_line(42);
    s.mutable_log()->set_file("TaskLog.t1");
    s.mutable_log()->set_begin(100);
    *s.mutable_time() = ToProtoTime(kT0);
    CHECK(b.StartSection(task, 7, s).ok());
  };
  auto stop = [&](const char* task, uint64_t id, std::optional<Result> r,
                  const std::string& reason) {
    SectionStop s;
    s.set_id(id);
    if (r) *s.mutable_result() = MakeResultInfo(*r, reason);
    if (r) (*s.mutable_result()->mutable_data())["key"] = "value";
    s.set_log_size(50);
    *s.mutable_time() = ToProtoTime(kT0 + absl::Milliseconds(1500));
    CHECK(b.StopSection(task, 7, s).ok());
  };
  start("t1", 1, 0, "tc pass");
  start("t1", 2, 1, "step 1");
  stop("t1", 2, std::nullopt, "");
  stop("t1", 1, std::nullopt, "");
  start("t1", 3, 0, "tc fail");
  stop("t1", 3, Result::kFailed,
       "expected <1> & got \"2\"\nline two\x01 bad utf8 \xff end \xe2\x9c\x93");
  TaskInfo t2;
  t2.set_id("t2");
  CHECK(b.RegisterTask(t2).ok());
  start("t3", 1, 0, "tc");
  stop("t3", 1, Result::kPassed, "");
  b.RecordTaskResult("t3", MakeResultInfo(Result::kErrored, "killed by SIGSEGV"));
  return b.Build(kT0 + absl::Seconds(3));
}

TEST(ResultsJsonTest, IsValidJsonWithPyatsFields) {
  const std::string json = ResultsJson(SampleReport());
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok())
      << json;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("version").string_value(), "2");
  const auto& report = f.at("report").struct_value().fields();
  EXPECT_EQ(report.at("type").string_value(), "TestSuite");
  EXPECT_EQ(report.at("name").string_value(), "nightly <&> \"job\"");
  EXPECT_EQ(report.at("starttime").string_value(),
            "2023-11-14T22:13:20.000000+00:00");
  EXPECT_DOUBLE_EQ(report.at("runtime").number_value(), 3.0);
  EXPECT_EQ(report.at("totaltasks").number_value(), 3);
  EXPECT_EQ(report.at("result").struct_value().fields().at("value").string_value(),
            "errored");
  const auto& summary = report.at("summary").struct_value().fields();
  EXPECT_EQ(summary.at("passed").number_value(), 2);
  EXPECT_EQ(summary.at("failed").number_value(), 1);
  EXPECT_EQ(summary.at("total").number_value(), 3);
  EXPECT_NEAR(summary.at("success_rate").number_value(), 66.67, 1e-9);
  const auto& tasks = report.at("tasks").list_value().values();
  ASSERT_EQ(tasks.size(), 3);
  const auto& t1 = tasks[0].struct_value().fields();
  EXPECT_EQ(t1.at("type").string_value(), "Task");
  EXPECT_EQ(t1.at("id").string_value(), "t1");
  const auto& sections = t1.at("sections").list_value().values();
  ASSERT_EQ(sections.size(), 2);
  const auto& fail = sections[1].struct_value().fields();
  EXPECT_EQ(fail.at("type").string_value(), "Testcase");
  const auto& result = fail.at("result").struct_value().fields();
  EXPECT_EQ(result.at("value").string_value(), "failed");
  EXPECT_EQ(result.at("reason").string_value(),
            "expected <1> & got \"2\"\nline two\x01 bad utf8 \xef\xbf\xbd end "
            "\xe2\x9c\x93");
  EXPECT_EQ(result.at("data").struct_value().fields().at("key").string_value(),
            "value");
  const auto& xref = fail.at("xref").struct_value().fields();
  EXPECT_EQ(xref.at("file").string_value(), "suite.cc");
  EXPECT_EQ(xref.at("line").number_value(), 42);
  const auto& logs = fail.at("logs").struct_value().fields();
  EXPECT_EQ(logs.at("begin").number_value(), 100);
  EXPECT_EQ(logs.at("size").number_value(), 50);
  const auto& steps =
      sections[0].struct_value().fields().at("sections").list_value().values();
  ASSERT_EQ(steps.size(), 1);
  EXPECT_EQ(steps[0].struct_value().fields().at("type").string_value(), "Step");
  const auto& t2 = tasks[1].struct_value().fields();
  EXPECT_EQ(t2.at("result").struct_value().fields().at("value").string_value(),
            "blocked");
  EXPECT_TRUE(t2.at("starttime").has_null_value());
}

TEST(JunitXmlTest, ParsesBackWithJunitStructure) {
  const std::string xml = JunitXml(SampleReport());
  auto root = ParseJunitXml(xml);
  ASSERT_THAT(root, IsOk()) << xml;
  EXPECT_EQ(root->name, "testsuites");
  EXPECT_EQ(root->attrs.at("name"), "nightly <&> \"job\"");
  // t1: 2 cases; t2: 1 (blocked, never ran); t3: 1 section + 1 task case.
  EXPECT_EQ(root->attrs.at("tests"), "5");
  EXPECT_EQ(root->attrs.at("failures"), "1");
  EXPECT_EQ(root->attrs.at("errors"), "1");
  EXPECT_EQ(root->attrs.at("skipped"), "1");
  const auto suites = root->Children("testsuite");
  ASSERT_EQ(suites.size(), 3u);
  EXPECT_EQ(suites[0]->attrs.at("name"), "t1");
  EXPECT_EQ(suites[0]->attrs.at("tests"), "2");
  EXPECT_EQ(suites[0]->attrs.at("timestamp"), "2023-11-14T22:13:20");
  const auto t1_cases = suites[0]->Children("testcase");
  ASSERT_EQ(t1_cases.size(), 2u);
  EXPECT_EQ(t1_cases[0]->attrs.at("name"), "tc pass");
  EXPECT_EQ(t1_cases[0]->attrs.at("classname"), "nightly <&> \"job\".t1");
  EXPECT_EQ(t1_cases[0]->attrs.at("time"), "1.500000");
  EXPECT_TRUE(t1_cases[0]->Children("failure").empty());
  EXPECT_THAT(t1_cases[0]->Children("system-out")[0]->text,
              HasSubstr("step 1: passed"));
  const auto failure = t1_cases[1]->Children("failure");
  ASSERT_EQ(failure.size(), 1u);
  EXPECT_THAT(failure[0]->attrs.at("message"),
              HasSubstr("failed: expected <1> & got \"2\"\nline two"));
  EXPECT_EQ(failure[0]->attrs.at("type"), "failed");
  const auto t2_cases = suites[1]->Children("testcase");
  ASSERT_EQ(t2_cases.size(), 1u);
  EXPECT_EQ(t2_cases[0]->Children("skipped")[0]->attrs.at("message"),
            "blocked: task t2 never ran");
  const auto t3_cases = suites[2]->Children("testcase");
  ASSERT_EQ(t3_cases.size(), 2u);
  EXPECT_EQ(t3_cases[1]->attrs.at("name"), "t3");
  EXPECT_EQ(t3_cases[1]->Children("error")[0]->attrs.at("message"),
            "errored: killed by SIGSEGV");
}

// t1 ran twice: "a" failed then passed (flaky), "b" failed both times;
// t2 failed, then passed with no sections (a flaky task).
JobReport RetriedReport() {
  ReportBuilderOptions options;
  options.job_name = "retried";
  options.start_time = kT0;
  ReportBuilder b(options);
  auto test = [&](const char* task, uint64_t id, const char* name, Result r) {
    SectionStart start;
    start.set_id(id);
    start.set_name(name);
    start.set_type("Testcase");
    CHECK(b.StartSection(task, 7, start).ok());
    SectionStop stop;
    stop.set_id(id);
    *stop.mutable_result() =
        MakeResultInfo(r, r == Result::kPassed ? "" : "boom");
    CHECK(b.StopSection(task, 7, stop).ok());
  };
  test("t1", 1, "a", Result::kFailed);
  test("t1", 2, "b", Result::kFailed);
  CHECK(b.BeginAttempt("t1", "TaskLog.t1.attempt-2").ok());
  test("t1", 1, "a", Result::kPassed);
  test("t1", 2, "b", Result::kFailed);
  b.RecordTaskResult("t2", MakeResultInfo(Result::kFailed, "exit code 1"));
  CHECK(b.BeginAttempt("t2", "TaskLog.t2.attempt-2").ok());
  b.RecordTaskResult("t2", MakeResultInfo(Result::kPassed));
  return b.Build(kT0 + absl::Seconds(3));
}

TEST(ResultsJsonTest, RetriesHaveAttemptsAndFlakyMarks) {
  const std::string json = ResultsJson(RetriedReport());
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &parsed).ok())
      << json;
  const auto& report = parsed.fields().at("report").struct_value().fields();
  EXPECT_EQ(report.at("summary").struct_value().fields().at("flaky").number_value(),
            1);
  EXPECT_EQ(
      report.at("task_summary").struct_value().fields().at("flaky").number_value(),
      1);
  const auto& tasks = report.at("tasks").list_value().values();
  const auto& t1 = tasks[0].struct_value().fields();
  EXPECT_EQ(t1.at("attempts").number_value(), 2);
  EXPECT_FALSE(t1.at("flaky").bool_value());
  const auto& a = t1.at("sections").list_value().values()[0].struct_value().fields();
  EXPECT_TRUE(a.at("flaky").bool_value());
  EXPECT_EQ(a.at("attempts").number_value(), 2);
  const auto& earlier = a.at("previous_attempts").list_value().values();
  ASSERT_EQ(earlier.size(), 1);
  EXPECT_EQ(earlier[0].struct_value().fields().at("number").number_value(), 1);
  EXPECT_EQ(earlier[0]
                .struct_value()
                .fields()
                .at("result")
                .struct_value()
                .fields()
                .at("value")
                .string_value(),
            "failed");
  const auto& t2 = tasks[1].struct_value().fields();
  EXPECT_TRUE(t2.at("flaky").bool_value());
  const auto& t2_earlier = t2.at("previous_attempts").list_value().values();
  ASSERT_EQ(t2_earlier.size(), 1);
  // Registered without a log file: none is written.
  EXPECT_EQ(t2_earlier[0].struct_value().fields().count("logfile"), 0u);
  // A task that ran once has no retry fields.
  const auto& once = ResultsJson(SampleReport());
  EXPECT_THAT(once, ::testing::Not(HasSubstr("\"attempts\"")));
}

TEST(JunitXmlTest, RetriesAreSurefireFlakyAndRerunElements) {
  const std::string xml = JunitXml(RetriedReport());
  auto root = ParseJunitXml(xml);  // valid against junit.xsd
  ASSERT_THAT(root, IsOk()) << xml;
  const auto suites = root->Children("testsuite");
  ASSERT_EQ(suites.size(), 2u);
  const auto cases = suites[0]->Children("testcase");
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_TRUE(cases[0]->Children("failure").empty());
  const auto flaky = cases[0]->Children("flakyFailure");
  ASSERT_EQ(flaky.size(), 1u);
  EXPECT_EQ(flaky[0]->attrs.at("message"), "attempt 1: failed: boom");
  EXPECT_EQ(cases[1]->Children("failure").size(), 1u);
  EXPECT_EQ(cases[1]->Children("rerunFailure").size(), 1u);
  const auto t2 = suites[1]->Children("testcase");
  ASSERT_EQ(t2.size(), 1u);
  EXPECT_EQ(t2[0]->Children("flakyFailure")[0]->attrs.at("message"),
            "attempt 1: failed: exit code 1");
  EXPECT_EQ(root->attrs.at("failures"), "1");
}

TEST(JunitCheckerTest, RejectsMalformedXml) {
  for (const char* bad :
       {"<a>", "<a></b>", "<a x=1/>", "<a x=\"1\" x=\"2\"/>", "<a>&bogus;</a>",
        "<a>\x01</a>", "<a/><b/>", "<a x=\"<\"/>", "<a>\xff</a>", "<a>&</a>"}) {
    EXPECT_THAT(ParseXml(bad), StatusIs(absl::StatusCode::kInvalidArgument))
        << bad;
  }
  auto ok = ParseXml("<?xml version=\"1.0\"?>\n<a x='1'><b/>t&amp;</a>\n");
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->name, "a");
  EXPECT_EQ(ok->attrs.at("x"), "1");
  EXPECT_EQ(ok->text, "t&");
  EXPECT_EQ(ok->Children("b").size(), 1u);
}

TEST(JunitCheckerTest, RejectsWhatTheSchemaForbids) {
  const std::string ok =
      "<testsuites><testsuite name=\"t\" tests=\"1\" time=\"0.5\" "
      "timestamp=\"2023-11-14T22:13:20\"><testcase name=\"c\" time=\"0.5\">"
      "<failure message=\"m\" type=\"failed\">x</failure><system-out>x</system-out>"
      "</testcase></testsuite></testsuites>";
  EXPECT_THAT(ParseJunitXml(ok), IsOk());
  for (const char* bad : {
           "<testsuites><bogus/></testsuites>",                       // unknown element
           "<testsuites><testsuite tests=\"0\"/></testsuites>",       // no name
           "<testsuites><testsuite name=\"t\" tests=\"-1\"/></testsuites>",
           "<testsuites><testsuite name=\"t\" tests=\"1\">"
           "<testcase name=\"c\" time=\"soon\"/></testsuite></testsuites>",
           "<testsuites><testsuite name=\"t\" tests=\"1\" timestamp=\"yesterday\"/>"
           "</testsuites>",
           "<testsuites><testsuite name=\"t\" tests=\"1\"><testcase name=\"c\">"
           "<failure/><error/></testcase></testsuite></testsuites>",  // two outcomes
           "<testcase name=\"c\"><system-out/><failure/></testcase>",  // order
       }) {
    EXPECT_THAT(ParseJunitXml(bad), StatusIs(absl::StatusCode::kInvalidArgument,
                                             HasSubstr("junit.xsd")))
        << bad;
  }
}

TEST(JunitCheckerTest, NamesAMissingOrBrokenSchema) {
  EXPECT_THAT(ParseValidXml("<a/>", "/nonexistent/junit.xsd"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/junit.xsd")));
  const std::string broken = TempDir() + "/broken.xsd";
  std::ofstream(broken) << "<notaschema/>";
  EXPECT_THAT(ParseValidXml("<a/>", broken),
              StatusIs(absl::StatusCode::kInternal, HasSubstr(broken)));
}

TEST(WriteReportTest, WritesTheThreeFiles) {
  const std::string dir = TempDir();
  {
    std::ofstream log(dir + "/TaskLog.t1:pid-9");
    log << "child log\n";
  }
  const JobReport report = SampleReport();
  auto paths = WriteReport(report, dir);
  ASSERT_THAT(paths, IsOk());
  EXPECT_EQ(paths->results_json, dir + "/results.json");
  EXPECT_EQ(paths->xunit_xml, dir + "/xunit.xml");
  EXPECT_EQ(paths->report_html, dir + "/report.html");
  EXPECT_EQ(ReadFile(paths->results_json), ResultsJson(report));
  EXPECT_EQ(ReadFile(paths->xunit_xml), JunitXml(report));
  EXPECT_EQ(ReadFile(paths->report_html),
            HtmlReport(report, {.log_files = {"TaskLog.t1:pid-9"}}));
  EXPECT_THAT(ListDir(dir),
              ::testing::ElementsAre("TaskLog.t1:pid-9", "report.html",
                                     "results.json", "xunit.xml"));
}

TEST(WriteReportTest, MissingDirectoryIsNotFound) {
  const std::string dir = TempDir() + "/missing";
  EXPECT_THAT(WriteReport(SampleReport(), dir),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir)));
}

}  // namespace
}  // namespace taskfork::reporter
