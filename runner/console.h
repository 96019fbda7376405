// What the runner prints: live progress while the job runs and the final
// summary (pyATS's "Easypy Report").
//
//   Progress progress(STDOUT_FILENO, /*tty=*/::isatty(STDOUT_FILENO), tasks);
//   progress.Started("t1", pid, now);  ...  progress.Finished("t1", result, now);
//   std::cout << FormatSummary(summary);
#ifndef TASKFORK_RUNNER_CONSOLE_H_
#define TASKFORK_RUNNER_CONSOLE_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "reporter/result.h"

namespace taskfork::runner {

// Live progress on one output descriptor. On a terminal it keeps a status
// block at the bottom ("[2/6 done] running: t3 4.1s, t4 0.2s") redrawn by
// Refresh(); otherwise it prints one line per finished task and no escapes.
// Thread-compatible (the runner's main loop owns it).
class Progress {
 public:
  Progress(int fd, bool tty, int total_tasks);

  void Started(const std::string& id, pid_t pid, absl::Time now);
  void Finished(const std::string& id, reporter::Result result,
                absl::Duration runtime, const std::string& reason,
                absl::Time now);
  // An attempt ended and the task runs again (attempt `next` of `of`): a
  // line like Finished's, not counted as done.
  void Retrying(const std::string& id, reporter::Result result,
                absl::Duration runtime, const std::string& reason, int next,
                int of, absl::Time now);
  // Redraws the status block (terminal only; no-op otherwise).
  void Refresh(absl::Time now);
  // Removes the status block before the summary is printed.
  void Clear();
  // Writes `text` as is (the summary). A closed console is ignored: the
  // report files still exist.
  void Print(const std::string& text);

 private:
  int fd_;
  bool tty_;
  int total_;
  int done_ = 0;
  bool block_shown_ = false;
  // Removes `id` from the running ones and prints `line`.
  void Ended(const std::string& id, std::string line, absl::Time now);
  // id -> start time, in start order.
  std::vector<std::pair<std::string, absl::Time>> running_;
};

// One task's row in the summary.
struct TaskSummaryRow {
  std::string id;
  std::string description;
  reporter::Result result = reporter::Result::kPassed;
  absl::Duration runtime;
  std::string reason;
  std::string log_path;
};

struct JobSummary {
  std::string job_name;
  std::string uid;
  absl::Time start;
  absl::Time stop;
  std::vector<TaskSummaryRow> tasks;
  std::string runinfo_dir;
  std::vector<std::string> report_files;  // results.json, xunit.xml, archive
  std::vector<std::string> warnings;      // e.g. "reporter died: ..."
};

// The end-of-run report, plain text, ending with a newline.
std::string FormatSummary(const JobSummary& summary);

// Success rate in percent: (passed + passx + skipped) / total; 0 for no tasks.
double SuccessRate(const std::vector<TaskSummaryRow>& tasks);

// "1m02.5s", "3.2s", "250ms": short human durations for the console.
std::string FormatShortDuration(absl::Duration d);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_CONSOLE_H_
