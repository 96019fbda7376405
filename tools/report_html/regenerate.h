// Regenerates report.html (reporter/html_report.h) from the results.json of a
// finished run: its runinfo directory or its .tar.gz archive.
//
//   TASKFORK_ASSIGN_OR_RETURN(std::string written,
//                             RegenerateReportHtml("runs/latest", ""));
//   // written == "runs/latest/report.html"
#ifndef TASKFORK_TOOLS_REPORT_HTML_REGENERATE_H_
#define TASKFORK_TOOLS_REPORT_HTML_REGENERATE_H_

#include <string>

#include "absl/status/statusor.h"

namespace taskfork::report_html {

// Writes report.html for the run `input`, atomically, and returns its path:
//  - a directory: reads <input>/results.json, links the JobLog.* / TaskLog.*
//    files in it; `output` empty: <input>/report.html.
//  - a file ending in .tar.gz: reads the archive's <run>/results.json and
//    the names of the logs beside it; `output` empty: the archive's path
//    with ".tar.gz" replaced by ".report.html" (its log links resolve once
//    the archive is extracted next to a copy of it in <run>/).
// Errors: kNotFound (no input, or no results.json in it), kInvalidArgument
// (bad results.json), kDataLoss (a damaged archive), those of
// WriteFileAtomically; each names the file.
absl::StatusOr<std::string> RegenerateReportHtml(const std::string& input,
                                                 const std::string& output);

}  // namespace taskfork::report_html

#endif  // TASKFORK_TOOLS_REPORT_HTML_REGENERATE_H_
