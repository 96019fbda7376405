#include "tools/report_html/regenerate.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "reporter/html_report.h"
#include "reporter/results_json_reader.h"

namespace taskfork::report_html {
namespace {

using ::taskfork::reporter::JobReport;

struct ArchiveRun {
  std::string results_json;
  std::vector<std::string> log_files;
};

// The results.json of the run in `path` and the names of the logs beside it.
absl::StatusOr<ArchiveRun> ReadArchive(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  archive* a = ::archive_read_new();
  ::archive_read_support_filter_gzip(a);
  ::archive_read_support_format_tar(a);
  ArchiveRun run;
  bool found = false;
  absl::Status status;
  if (::archive_read_open_filename(a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    status = absl::DataLossError(
        absl::StrCat("open archive ", path, ": ", ::archive_error_string(a)));
  }
  archive_entry* entry;
  while (status.ok()) {
    const int r = ::archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) {
      status = absl::DataLossError(
          absl::StrCat("read archive ", path, ": ", ::archive_error_string(a)));
      break;
    }
    const std::string name = ::archive_entry_pathname(entry);
    const size_t slash = name.find('/');
    if (slash == std::string::npos || name.find('/', slash + 1) != std::string::npos) {
      continue;  // only the files of the run's directory
    }
    const std::string base = name.substr(slash + 1);
    if (absl::StartsWith(base, "TaskLog.") || absl::StartsWith(base, "JobLog.")) {
      run.log_files.push_back(base);
    } else if (base == "results.json") {
      found = true;
      char buf[1 << 16];
      for (;;) {
        const la_ssize_t n = ::archive_read_data(a, buf, sizeof(buf));
        if (n < 0) {
          status = absl::DataLossError(absl::StrCat(
              "read ", name, " in ", path, ": ", ::archive_error_string(a)));
          break;
        }
        if (n == 0) break;
        run.results_json.append(buf, n);
      }
    }
  }
  ::archive_read_free(a);
  TASKFORK_RETURN_IF_ERROR(status);
  if (!found) {
    return absl::NotFoundError(
        absl::StrCat("no <run>/results.json in archive ", path));
  }
  std::sort(run.log_files.begin(), run.log_files.end());
  return run;
}

}  // namespace

absl::StatusOr<std::string> RegenerateReportHtml(const std::string& input,
                                                 const std::string& output) {
  std::string out = output;
  std::vector<std::string> logs;
  JobReport report;
  if (absl::EndsWith(input, ".tar.gz")) {
    TASKFORK_ASSIGN_OR_RETURN(ArchiveRun run, ReadArchive(input));
    TASKFORK_ASSIGN_OR_RETURN(
        report, reporter::ParseResultsJson(
                    run.results_json, absl::StrCat(input, ": results.json")));
    logs = std::move(run.log_files);
    if (out.empty()) {
      out = absl::StrCat(input.substr(0, input.size() - 7), ".report.html");
    }
  } else {
    TASKFORK_ASSIGN_OR_RETURN(
        report, reporter::ReadResultsJson(absl::StrCat(input, "/results.json")));
    TASKFORK_ASSIGN_OR_RETURN(logs, reporter::ListLogFiles(input));
    if (out.empty()) out = absl::StrCat(input, "/report.html");
  }
  TASKFORK_RETURN_IF_ERROR(WriteFileAtomically(
      out, reporter::HtmlReport(report, {.log_files = std::move(logs)})));
  return out;
}

}  // namespace taskfork::report_html
