// report.html: one self-contained page (no network, opens from file://) of a
// JobReport: job header and counts, a timeline of the tasks by parallel slot
// with their child processes, each task's sections and steps as a tree
// rendered on demand, links to the logs next to the page, filters.
//
//   TASKFORK_ASSIGN_OR_RETURN(std::vector<std::string> logs, ListLogFiles(dir));
//   std::string html = HtmlReport(report, {.log_files = logs});
//
// The report's data is one JSON object in an inline
// <script type="application/json" id="report-data"> that the page's script
// renders with textContent only; every string from the report is valid UTF-8
// there (invalid bytes become U+FFFD) with '<', '>', '&', U+2028 and U+2029
// written as \u escapes, and the text in the page's static HTML is escaped
// for text and attribute values alike. The page reads filters from its URL
// fragment: `report.html#failed&q=name&open=task1,task2`.
#ifndef TASKFORK_REPORTER_HTML_REPORT_H_
#define TASKFORK_REPORTER_HTML_REPORT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {

struct HtmlReportOptions {
  // Names (not paths) of the log files in the directory of the page:
  // "JobLog.<job>", "TaskLog.<task>", "TaskLog.<task>:pid-<pid>". Each task
  // links its own, relative to the page.
  std::vector<std::string> log_files;
};

// The report.html text for `report`. Thread-safe.
std::string HtmlReport(const JobReport& report,
                       const HtmlReportOptions& options = {});

// The timeline's parallel slot of each task (index i: report.tasks(i)): in
// order of start time, each task takes the lowest slot free at its start (a
// slot is free from the stop of the task in it). A task that never started
// gets slot 0. Thread-safe.
std::vector<int> TimelineSlots(const JobReport& report);

// The names of the files in `dir` that start with "JobLog." or "TaskLog.",
// sorted. Errors: opendir's (kNotFound, kPermissionDenied, ...) naming `dir`.
absl::StatusOr<std::vector<std::string>> ListLogFiles(const std::string& dir);

// `s` escaped for HTML text and attribute values ('&', '<', '>', '"', '\''
// as references; control bytes other than tab and newline, and invalid UTF-8,
// as U+FFFD). Thread-safe.
std::string HtmlEscape(absl::string_view s);

// `s` as a JSON string literal safe inside an inline <script> (see above).
// Thread-safe.
std::string ScriptJsonString(absl::string_view s);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_HTML_REPORT_H_
