#include "reporter/writers.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "reporter/html_report.h"
#include "reporter/internal/utf8.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::reporter_internal::DecodeUtf8;
using ::taskfork::reporter_internal::kReplacement;

void AppendJsonString(absl::string_view s, std::string* out) {
  reporter_internal::AppendJsonString(s, reporter_internal::JsonContext::kFile,
                                      out);
}

void AppendXmlText(absl::string_view s, std::string* out) {
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(s, i, &cp);
    const bool allowed =
        n != 0 && (cp == 0x9 || cp == 0xa || cp == 0xd ||
                   (cp >= 0x20 && cp <= 0xd7ff) ||
                   (cp >= 0xe000 && cp <= 0xfffd) || cp >= 0x10000);
    if (!allowed) {
      out->append(kReplacement.data(), kReplacement.size());
      i += n == 0 ? 1 : n;
      continue;
    }
    switch (s[i]) {
      case '&':
        out->append("&amp;");
        break;
      case '<':
        out->append("&lt;");
        break;
      case '>':
        out->append("&gt;");
        break;
      case '"':
        out->append("&quot;");
        break;
      case '\'':
        out->append("&apos;");
        break;
      case '\n':
        out->append("&#10;");  // keeps newlines inside attribute values
        break;
      case '\r':
        out->append("&#13;");
        break;
      case '\t':
        out->append("&#9;");
        break;
      default:
        out->append(s.data() + i, n);
    }
    i += n;
  }
}

std::string TimeString(const google::protobuf::Timestamp& t) {
  const absl::Time time = FromProtoTime(t);
  if (time == absl::InfinitePast()) return "";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6S+00:00", time, absl::UTCTimeZone());
}

std::string Number(double d) { return absl::StrFormat("%.6f", d); }

// A minimal JSON object writer: Key() then a value; nested via Begin/End.
class Json {
 public:
  std::string Take() { return std::move(out_); }
  void BeginObject() { Value(); out_.push_back('{'); first_ = true; }
  void EndObject() { out_.push_back('}'); first_ = false; }
  void BeginArray() { Value(); out_.push_back('['); first_ = true; }
  void EndArray() { out_.push_back(']'); first_ = false; }
  void Key(absl::string_view key) {
    if (!first_) out_.push_back(',');
    AppendJsonString(key, &out_);
    out_.push_back(':');
    after_key_ = true;
  }
  void String(absl::string_view s) { Value(); AppendJsonString(s, &out_); }
  void Raw(absl::string_view s) { Value(); out_.append(s.data(), s.size()); }
  void Field(absl::string_view key, absl::string_view s) { Key(key); String(s); }
  void FieldRaw(absl::string_view key, absl::string_view s) { Key(key); Raw(s); }
  void FieldTime(absl::string_view key, const google::protobuf::Timestamp& t) {
    const std::string s = TimeString(t);
    Key(key);
    if (s.empty()) {
      Raw("null");
    } else {
      String(s);
    }
  }

 private:
  // Called before any value: separates array elements.
  void Value() {
    if (after_key_) {
      after_key_ = false;
    } else if (!first_) {
      out_.push_back(',');
    }
    first_ = false;
  }
  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

absl::string_view ValueName(const ResultInfo& result) {
  const auto r = ResultFromCode(result.value());
  return r ? ResultName(*r) : "";
}

void WriteResult(Json& j, const ResultInfo& result) {
  j.Key("result");
  j.BeginObject();
  if (result.value() == RESULT_UNSPECIFIED) {
    j.FieldRaw("value", "null");
  } else {
    j.Field("value", ValueName(result));
  }
  if (!result.reason().empty()) j.Field("reason", result.reason());
  if (!result.data().empty()) {
    j.Key("data");
    j.BeginObject();
    // Sorted for a stable file.
    std::vector<std::pair<std::string, std::string>> data(result.data().begin(),
                                                          result.data().end());
    std::sort(data.begin(), data.end());
    for (const auto& [k, v] : data) j.Field(k, v);
    j.EndObject();
  }
  j.EndObject();
}

void WriteSummary(Json& j, absl::string_view key, const Summary& s) {
  j.Key(key);
  j.BeginObject();
  j.FieldRaw("passed", absl::StrCat(s.passed()));
  j.FieldRaw("passx", absl::StrCat(s.passx()));
  j.FieldRaw("failed", absl::StrCat(s.failed()));
  j.FieldRaw("errored", absl::StrCat(s.errored()));
  j.FieldRaw("aborted", absl::StrCat(s.aborted()));
  j.FieldRaw("blocked", absl::StrCat(s.blocked()));
  j.FieldRaw("skipped", absl::StrCat(s.skipped()));
  j.FieldRaw("total", absl::StrCat(s.total()));
  j.FieldRaw("success_rate", absl::StrFormat("%.2f", s.success_rate()));
  j.FieldRaw("flaky", absl::StrCat(s.flaky()));
  j.EndObject();
}

// Retries: only for what ran more than once.
void WriteAttempts(
    Json& j, uint32_t attempts, bool flaky,
    const google::protobuf::RepeatedPtrField<Attempt>& previous) {
  if (attempts < 2) return;
  j.FieldRaw("attempts", absl::StrCat(attempts));
  j.FieldRaw("flaky", flaky ? "true" : "false");
  j.Key("previous_attempts");
  j.BeginArray();
  for (const Attempt& a : previous) {
    j.BeginObject();
    j.FieldRaw("number", absl::StrCat(a.number()));
    WriteResult(j, a.result());
    if (!a.logfile().empty()) j.Field("logfile", a.logfile());
    j.FieldTime("starttime", a.starttime());
    j.FieldTime("stoptime", a.stoptime());
    j.EndObject();
  }
  j.EndArray();
}

void WriteSection(Json& j, const Section& s) {
  j.BeginObject();
  j.Field("type", s.type());
  j.Field("id", s.id());
  j.Field("name", s.name());
  j.Field("description", s.description());
  j.FieldTime("starttime", s.starttime());
  j.FieldTime("stoptime", s.stoptime());
  j.FieldRaw("runtime", Number(s.runtime()));
  if (s.has_xref()) {
    j.Key("xref");
    j.BeginObject();
    j.Field("file", s.xref().file());
    j.FieldRaw("line", absl::StrCat(s.xref().line()));
    j.EndObject();
  }
  if (s.has_logs()) {
    j.Key("logs");
    j.BeginObject();
    j.Field("file", s.logs().file());
    j.FieldRaw("begin", absl::StrCat(s.logs().begin()));
    j.FieldRaw("size", absl::StrCat(s.logs().size()));
    j.EndObject();
  }
  j.FieldRaw("pid", absl::StrCat(s.pid()));
  WriteResult(j, s.result());
  WriteAttempts(j, s.attempts(), s.flaky(), s.previous_attempts());
  WriteSummary(j, "summary", s.summary());
  j.Key("sections");
  j.BeginArray();
  for (const Section& child : s.sections()) WriteSection(j, child);
  j.EndArray();
  j.EndObject();
}

void WriteTask(Json& j, const TaskReport& t) {
  j.BeginObject();
  j.Field("type", t.type());
  j.Field("id", t.id());
  j.Field("name", t.name());
  j.Field("description", t.description());
  j.FieldTime("starttime", t.starttime());
  j.FieldTime("stoptime", t.stoptime());
  j.FieldRaw("runtime", Number(t.runtime()));
  j.Field("logfile", t.logfile());
  j.Key("pids");
  j.BeginArray();
  for (int64_t pid : t.pids()) j.Raw(absl::StrCat(pid));
  j.EndArray();
  WriteResult(j, t.result());
  WriteAttempts(j, t.attempts(), t.flaky(), t.previous_attempts());
  WriteSummary(j, "summary", t.summary());
  j.Key("sections");
  j.BeginArray();
  for (const Section& s : t.sections()) WriteSection(j, s);
  j.EndArray();
  j.EndObject();
}

// JUnit ---------------------------------------------------------------------

void AppendAttr(absl::string_view name, absl::string_view value,
                std::string* out) {
  absl::StrAppend(out, " ", name, "=\"");
  AppendXmlText(value, out);
  out->push_back('"');
}

// Lists `sections` (steps) with their results, indented by depth.
void AppendStepLines(const Section& section, int depth, std::string* out) {
  for (const Section& child : section.sections()) {
    absl::StrAppend(out, std::string(2 * depth, ' '), child.name(), ": ",
                    ValueName(child.result()));
    if (!child.result().reason().empty()) {
      absl::StrAppend(out, " (", child.result().reason(), ")");
    }
    out->push_back('\n');
    AppendStepLines(child, depth + 1, out);
  }
}

struct Counts {
  int tests = 0, failures = 0, errors = 0, skipped = 0;
  void Add(ResultCode r) {
    ++tests;
    if (r == RESULT_FAILED) ++failures;
    if (r == RESULT_ERRORED || r == RESULT_ABORTED) ++errors;
    if (r == RESULT_SKIPPED || r == RESULT_BLOCKED) ++skipped;
  }
};

// Earlier attempts as Maven Surefire writes reruns (read by Jenkins and
// GitLab): <flakyFailure>/<flakyError> when the test passed in the end,
// <rerunFailure>/<rerunError> when it did not.
void AppendAttempts(const ResultInfo& final_result,
                    const google::protobuf::RepeatedPtrField<Attempt>& earlier,
                    std::string* out) {
  const bool passed = final_result.value() == RESULT_PASSED ||
                      final_result.value() == RESULT_PASSX;
  for (const Attempt& a : earlier) {
    const ResultCode r = a.result().value();
    if (r != RESULT_FAILED && r != RESULT_ERRORED && r != RESULT_ABORTED) {
      continue;
    }
    const char* element =
        r == RESULT_FAILED ? (passed ? "flakyFailure" : "rerunFailure")
                           : (passed ? "flakyError" : "rerunError");
    const std::string value(ValueName(a.result()));
    absl::StrAppend(out, "      <", element);
    AppendAttr("message",
               absl::StrCat("attempt ", a.number(), ": ", value,
                            a.result().reason().empty() ? "" : ": ",
                            a.result().reason()),
               out);
    AppendAttr("type", value, out);
    out->append("/>\n");
  }
}

void AppendTestcase(absl::string_view classname, absl::string_view name,
                    double time, const ResultInfo& result,
                    absl::string_view body, std::string* out,
                    const google::protobuf::RepeatedPtrField<Attempt>& earlier =
                        google::protobuf::RepeatedPtrField<Attempt>()) {
  out->append("    <testcase");
  AppendAttr("classname", classname, out);
  AppendAttr("name", name, out);
  AppendAttr("time", Number(time), out);
  out->append(">\n");
  const std::string value(ValueName(result));
  const std::string message =
      result.reason().empty() ? value : absl::StrCat(value, ": ", result.reason());
  const char* element = nullptr;
  switch (result.value()) {
    case RESULT_FAILED:
      element = "failure";
      break;
    case RESULT_ERRORED:
    case RESULT_ABORTED:
      element = "error";
      break;
    case RESULT_SKIPPED:
    case RESULT_BLOCKED:
      element = "skipped";
      break;
    default:
      break;
  }
  if (element != nullptr) {
    absl::StrAppend(out, "      <", element);
    AppendAttr("message", message, out);
    AppendAttr("type", value, out);
    if (body.empty() || std::string(element) == "skipped") {
      out->append("/>\n");
    } else {
      out->append(">");
      AppendXmlText(body, out);
      absl::StrAppend(out, "</", element, ">\n");
    }
  }
  AppendAttempts(result, earlier, out);
  if (!body.empty()) {
    out->append("      <system-out>");
    AppendXmlText(body, out);
    out->append("</system-out>\n");
  }
  out->append("    </testcase>\n");
}


}  // namespace

std::string ResultsJson(const JobReport& r) {
  Json j;
  j.BeginObject();
  j.Field("version", "2");
  j.Key("report");
  j.BeginObject();
  j.Field("type", r.type());
  j.Field("id", r.id());
  j.Field("name", r.name());
  j.FieldTime("starttime", r.starttime());
  j.FieldTime("stoptime", r.stoptime());
  j.FieldRaw("runtime", Number(r.runtime()));
  j.Field("host", r.host());
  j.Field("submitter", r.submitter());
  j.FieldRaw("totaltasks", absl::StrCat(r.totaltasks()));
  WriteResult(j, r.result());
  WriteSummary(j, "summary", r.summary());
  WriteSummary(j, "task_summary", r.task_summary());
  j.Key("extra");
  j.BeginObject();
  std::vector<std::pair<std::string, std::string>> extra(r.extra().begin(),
                                                         r.extra().end());
  std::sort(extra.begin(), extra.end());
  for (const auto& [k, v] : extra) j.Field(k, v);
  j.EndObject();
  j.Key("tasks");
  j.BeginArray();
  for (const TaskReport& t : r.tasks()) WriteTask(j, t);
  j.EndArray();
  j.EndObject();
  j.EndObject();
  std::string out = j.Take();
  out.push_back('\n');
  return out;
}

std::string JunitXml(const JobReport& r) {
  std::string suites;
  Counts total;
  for (const TaskReport& t : r.tasks()) {
    Counts counts;
    std::string cases;
    const std::string classname = absl::StrCat(r.name(), ".", t.id());
    ResultCode worst = RESULT_UNSPECIFIED;
    for (const Section& s : t.sections()) {
      std::string body;
      AppendStepLines(s, 0, &body);
      AppendTestcase(classname, s.name(), s.runtime(), s.result(), body, &cases,
                     s.previous_attempts());
      counts.Add(s.result().value());
      worst = std::max(worst, s.result().value());
    }
    if (t.sections().empty() || t.result().value() > worst) {
      // The task's own result is not visible through its sections (no
      // sections, or a crash / timeout the runner recorded): one testcase.
      AppendTestcase(classname, t.id(), t.runtime(), t.result(), "", &cases,
                     t.previous_attempts());
      counts.Add(t.result().value());
    }
    absl::StrAppend(&suites, "  <testsuite");
    AppendAttr("name", t.id(), &suites);
    AppendAttr("tests", absl::StrCat(counts.tests), &suites);
    AppendAttr("failures", absl::StrCat(counts.failures), &suites);
    AppendAttr("errors", absl::StrCat(counts.errors), &suites);
    AppendAttr("skipped", absl::StrCat(counts.skipped), &suites);
    AppendAttr("time", Number(t.runtime()), &suites);
    const std::string ts = TimeString(t.starttime());
    if (!ts.empty()) AppendAttr("timestamp", ts.substr(0, 19), &suites);
    AppendAttr("hostname", r.host(), &suites);
    suites.append(">\n");
    suites.append(cases);
    suites.append("  </testsuite>\n");
    total.tests += counts.tests;
    total.failures += counts.failures;
    total.errors += counts.errors;
    total.skipped += counts.skipped;
  }
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites";
  AppendAttr("name", r.name(), &out);
  AppendAttr("tests", absl::StrCat(total.tests), &out);
  AppendAttr("failures", absl::StrCat(total.failures), &out);
  AppendAttr("errors", absl::StrCat(total.errors), &out);
  AppendAttr("skipped", absl::StrCat(total.skipped), &out);
  AppendAttr("time", Number(r.runtime()), &out);
  out.append(">\n");
  out.append(suites);
  out.append("</testsuites>\n");
  return out;
}

absl::StatusOr<ReportPaths> WriteReport(const JobReport& report,
                                        const std::string& dir) {
  ReportPaths paths{dir + "/results.json", dir + "/xunit.xml",
                    dir + "/report.html"};
  TASKFORK_RETURN_IF_ERROR(WriteFileAtomically(paths.results_json,
                                               ResultsJson(report)));
  TASKFORK_RETURN_IF_ERROR(WriteFileAtomically(paths.xunit_xml,
                                               JunitXml(report)));
  TASKFORK_ASSIGN_OR_RETURN(std::vector<std::string> logs, ListLogFiles(dir));
  TASKFORK_RETURN_IF_ERROR(WriteFileAtomically(
      paths.report_html, HtmlReport(report, {.log_files = std::move(logs)})));
  return paths;
}

}  // namespace taskfork::reporter
