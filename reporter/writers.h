// Writers of a JobReport: pyATS-style results.json, JUnit XML and report.html,
// atomically.
//
//   JobReport report = builder.Build(absl::Now());
//   TASKFORK_ASSIGN_OR_RETURN(ReportPaths paths, WriteReport(report, runinfo));
//   // paths.results_json == runinfo + "/results.json"
//
// results.json (pyATS results.json version 2 names):
//   {"version": "2", "report": {"type": "TestSuite", "id", "name",
//    "starttime", "stoptime", "runtime", "host", "submitter", "totaltasks",
//    "result": {"value": "passed", "reason", "data"}, "summary": {...},
//    "task_summary": {...}, "extra": {...}, "tasks": [{"type": "Task", ...,
//    "sections": [{"type", "id", "name", ..., "xref": {"file", "line"},
//    "logs": {"file", "begin", "size"}, "sections": [...]}]}]}}
// Times are RFC 3339 with microseconds in UTC; runtime is seconds (a number).
// Differences from pyATS are listed in reporter/README.md.
//
// xunit.xml: <testsuites> (the job) -> <testsuite> per task -> <testcase> per
// top-level section (steps listed in its body); a task with no sections, or
// whose result is worse than its sections' (a crash), gets a testcase of its
// own. failed -> <failure>, errored/aborted -> <error>, skipped/blocked ->
// <skipped>. Jenkins' and GitLab's JUnit parsers accept it.
#ifndef TASKFORK_REPORTER_WRITERS_H_
#define TASKFORK_REPORTER_WRITERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {

// results.json text for `report` (UTF-8; invalid bytes become U+FFFD).
// Thread-safe.
std::string ResultsJson(const JobReport& report);

// JUnit XML text for `report` (XML 1.0; characters XML forbids become
// U+FFFD). Thread-safe.
std::string JunitXml(const JobReport& report);

struct ReportPaths {
  std::string results_json;  // <dir>/results.json
  std::string xunit_xml;     // <dir>/xunit.xml
  std::string report_html;   // <dir>/report.html (html_report.h)
};

// Writes results.json, xunit.xml and report.html (linking the JobLog.* and
// TaskLog.* files in `dir`) into `dir` with WriteFileAtomically (base/fd.h).
// Errors: those of WriteFileAtomically and ListLogFiles (html_report.h).
absl::StatusOr<ReportPaths> WriteReport(const JobReport& report,
                                        const std::string& dir);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_WRITERS_H_
