// Reads back the results.json that reporter::ResultsJson (writers.h) wrote:
// for tools that look at a finished run (report.html regeneration, the
// runner's --rerun_failed).
//
//   TASKFORK_ASSIGN_OR_RETURN(JobReport report,
//                             ParseResultsJson(text, "runs/latest/results.json"));
#ifndef TASKFORK_REPORTER_RESULTS_JSON_READER_H_
#define TASKFORK_REPORTER_RESULTS_JSON_READER_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {

// The JobReport that ResultsJson wrote as `json` (its fields; the
// pids of sections and tasks, times to the microsecond). `what` names the
// input in errors. Errors: kInvalidArgument (not JSON, not a results.json
// version 2 report, a time that is not RFC 3339).
absl::StatusOr<JobReport> ParseResultsJson(absl::string_view json,
                                           absl::string_view what);

// Reads and parses the file `path`. Errors: those of open/read naming the
// path and errno (kNotFound for a missing file), and ParseResultsJson's.
absl::StatusOr<JobReport> ReadResultsJson(const std::string& path);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_RESULTS_JSON_READER_H_
