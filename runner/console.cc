#include "runner/console.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace taskfork::runner {
namespace {

using reporter::Result;

std::string Upper(Result r) {
  return absl::AsciiStrToUpper(reporter::ResultName(r));
}

// "Passed", "Passx", ...: the result's name as pyATS's report prints it.
std::string Capitalized(Result r) {
  std::string name(reporter::ResultName(r));
  name[0] = absl::ascii_toupper(name[0]);
  return name;
}

}  // namespace

std::string FormatShortDuration(absl::Duration d) {
  if (d < absl::Seconds(1)) {
    return absl::StrCat(absl::ToInt64Milliseconds(d), "ms");
  }
  const double seconds = absl::ToDoubleSeconds(d);
  if (seconds < 60) return absl::StrFormat("%.1fs", seconds);
  const int64_t minutes = static_cast<int64_t>(seconds / 60);
  const double rest = seconds - 60.0 * minutes;
  if (minutes < 60) return absl::StrFormat("%dm%04.1fs", minutes, rest);
  return absl::StrFormat("%dh%02dm%02ds", minutes / 60, minutes % 60,
                         static_cast<int>(rest));
}

Progress::Progress(int fd, bool tty, int total_tasks)
    : fd_(fd), tty_(tty), total_(total_tasks) {}

void Progress::Print(const std::string& text) {
  const char* data = text.data();
  size_t left = text.size();
  while (left > 0) {
    const ssize_t n = ::write(fd_, data, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // The console is gone; the report files still exist.
    data += n;
    left -= static_cast<size_t>(n);
  }
}

void Progress::Started(const std::string& id, pid_t pid, absl::Time now) {
  running_.emplace_back(id, now);
  if (!tty_) return;
  Refresh(now);
}

void Progress::Finished(const std::string& id, Result result,
                        absl::Duration runtime, const std::string& reason,
                        absl::Time now) {
  ++done_;
  std::string line =
      absl::StrFormat("[%d/%d] %-8s %s (%s)", done_, total_, Upper(result), id,
                      FormatShortDuration(runtime));
  if (!reason.empty() && !reporter::IsSuccess(result)) {
    absl::StrAppend(&line, ": ", reason.substr(0, 200));
  }
  Ended(id, std::move(line), now);
}

void Progress::Retrying(const std::string& id, Result result,
                        absl::Duration runtime, const std::string& reason,
                        int next, int of, absl::Time now) {
  std::string line =
      absl::StrFormat("[%d/%d] %-8s %s (%s)", done_, total_, Upper(result), id,
                      FormatShortDuration(runtime));
  if (!reason.empty()) absl::StrAppend(&line, ": ", reason.substr(0, 200));
  absl::StrAppendFormat(&line, "; retrying (attempt %d of %d)", next, of);
  Ended(id, std::move(line), now);
}

void Progress::Ended(const std::string& id, std::string line, absl::Time now) {
  running_.erase(std::remove_if(running_.begin(), running_.end(),
                                [&](const auto& r) { return r.first == id; }),
                 running_.end());
  if (tty_) {
    Clear();
    Print(line + "\n");
    Refresh(now);
  } else {
    Print(line + "\n");
  }
}

void Progress::Refresh(absl::Time now) {
  if (!tty_) return;
  std::vector<std::string> running;
  for (const auto& [id, start] : running_) {
    running.push_back(absl::StrCat(id, " ", FormatShortDuration(now - start)));
  }
  std::string block =
      absl::StrCat("[", done_, "/", total_, " done] ",
                   running.empty() ? "waiting"
                                   : "running: " + absl::StrJoin(running, ", "));
  // One line, cut to a terminal-friendly width; \r + erase-line redraws it.
  if (block.size() > 160) block = block.substr(0, 157) + "...";
  Print("\r\033[K" + block);
  block_shown_ = true;
}

void Progress::Clear() {
  if (tty_ && block_shown_) {
    Print("\r\033[K");
    block_shown_ = false;
  }
}

double SuccessRate(const std::vector<TaskSummaryRow>& tasks) {
  if (tasks.empty()) return 0;
  const auto successes = std::count_if(
      tasks.begin(), tasks.end(),
      [](const TaskSummaryRow& t) { return reporter::IsSuccess(t.result); });
  return 100.0 * static_cast<double>(successes) /
         static_cast<double>(tasks.size());
}

std::string FormatSummary(const JobSummary& summary) {
  std::string out;
  const std::string rule(78, '-');
  absl::StrAppend(&out, rule, "\n", "taskfork report: job ", summary.job_name,
                  "\n", rule, "\n");
  absl::StrAppendFormat(
      &out, "%-12s %s\n%-12s %s\n%-12s %s\n%-12s %s\n", "Job uid:", summary.uid,
      "Started:",
      absl::FormatTime("%Y-%m-%d %H:%M:%E3S", summary.start,
                       absl::LocalTimeZone()),
      "Stopped:",
      absl::FormatTime("%Y-%m-%d %H:%M:%E3S", summary.stop,
                       absl::LocalTimeZone()),
      "Elapsed:", FormatShortDuration(summary.stop - summary.start));

  absl::StrAppend(&out, "\nTask Result Summary\n");
  size_t width = 4;
  for (const TaskSummaryRow& task : summary.tasks) {
    width = std::max(width, task.id.size());
  }
  for (const TaskSummaryRow& task : summary.tasks) {
    absl::StrAppendFormat(&out, "  %-*s  %-8s %9s  %s\n", width, task.id,
                          Upper(task.result),
                          FormatShortDuration(task.runtime), task.log_path);
    if (!task.reason.empty() && !reporter::IsSuccess(task.result)) {
      absl::StrAppend(&out, "  ", std::string(width, ' '), "  reason: ",
                      task.reason, "\n");
    }
  }

  int counts[8] = {};
  for (const TaskSummaryRow& task : summary.tasks) {
    ++counts[static_cast<int>(task.result)];
  }
  absl::StrAppend(&out, "\nOverall Stats\n");
  for (Result r : reporter::kAllResults) {
    absl::StrAppendFormat(&out, "  %-8s %d\n", Capitalized(r) + ":",
                          counts[static_cast<int>(r)]);
  }
  absl::StrAppendFormat(&out, "  %-8s %d\n", "TOTAL:", summary.tasks.size());
  absl::StrAppendFormat(&out, "\nSuccess Rate: %.2f %%\n",
                        SuccessRate(summary.tasks));

  if (!summary.warnings.empty()) {
    absl::StrAppend(&out, "\nWarnings\n");
    for (const std::string& warning : summary.warnings) {
      absl::StrAppend(&out, "  ", warning, "\n");
    }
  }
  absl::StrAppend(&out, "\nRuninfo: ", summary.runinfo_dir, "\n");
  for (const std::string& file : summary.report_files) {
    absl::StrAppend(&out, "Report:  ", file, "\n");
  }
  absl::StrAppend(&out, rule, "\n");
  return out;
}

}  // namespace taskfork::runner
