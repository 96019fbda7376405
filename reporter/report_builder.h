// ReportBuilder: turns reporter events into the report tree (JobReport).
//
//   ReportBuilder builder({.job_name = "nightly"});
//   builder.RegisterTask(task_info);                 // from the job spec
//   builder.StartSection("t1", pid, start);  builder.StopSection("t1", pid, stop);
//   JobReport report = builder.Build(absl::Now());   // -> writers.h
//
// The ReporterServer applies every client event to one of these; the runner
// can also use one in-process (e.g. to write results.json from Task.result
// when the server died).
//
// Result rules applied by Build():
// - section: its own result (Passed when it stopped without one, Aborted when
//   it had not stopped) rolled up with its children's; a child that raises
//   the result lends its reason ("<child name>: <reason>").
// - task: roll-up of TaskStop's result, every RecordTaskResult(), and its
//   top-level sections. With none of these: Blocked ("task <id> never ran")
//   if nothing was reported for it, else Aborted ("task <id> had not stopped
//   when the report was built").
// - job: roll-up of its tasks (Skipped when there are none).
// - retries (BeginAttempt): the task's result is its last attempt's; a
//   top-level section is matched across attempts by name (the k-th of that
//   name) and the last attempt that ran it has its result, so the tests a
//   retry did not run again keep their earlier result. A task or section
//   that passed after a worse attempt is `flaky`; the earlier attempts are
//   listed in `previous_attempts`.
// Summaries: a section's counts its direct children, a task's its top-level
// sections, the job's `summary` is the sum of its tasks' (pyATS's "overall
// stats"), the job's `task_summary` counts tasks.
#ifndef TASKFORK_REPORTER_REPORT_BUILDER_H_
#define TASKFORK_REPORTER_REPORT_BUILDER_H_

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "reporter/report.pb.h"
#include "reporter/result.h"

namespace taskfork::reporter {

struct ReportBuilderOptions {
  std::string job_name;           // JobReport.name
  std::string job_id;             // JobReport.id; empty: job_name
  absl::Time start_time = absl::InfinitePast();  // InfinitePast: now
  std::string host;               // empty: gethostname()
  std::string submitter;          // empty: the effective user's name
  // JobReport.extra: what else the runner knows (cli, job file, hashes...).
  std::map<std::string, std::string> extra;
};

// ResultInfo{value, reason}.
ResultInfo MakeResultInfo(Result result, absl::string_view reason = {});

// The roll-up of `*acc` and `other` into `*acc`: the larger value wins with
// its reason and data; on a tie `*acc` is kept. RESULT_UNSPECIFIED is
// smaller than every result.
void RollUpInto(ResultInfo* acc, const ResultInfo& other);

// Builds a JobReport from events. Thread-compatible (the server uses one
// from its single event-loop thread). Fork: a forked child gets a copy.
class ReportBuilder {
 public:
  explicit ReportBuilder(ReportBuilderOptions options);
  ReportBuilder(ReportBuilder&&) = default;
  ReportBuilder& operator=(ReportBuilder&&) = default;

  // Declares a task before it runs, so it appears in the report even if it
  // never does. Errors: kInvalidArgument (empty id), kAlreadyExists (the id
  // was registered before).
  absl::Status RegisterTask(const TaskInfo& info);

  // Apply one client event of process `pid` of task `task_id`. An unknown
  // task id is created (clients may run without a registering runner).
  // Events without a time get the time of the call.
  // Errors (the event is not applied): kInvalidArgument for an empty task id,
  // a section id 0, or a parent/stopped section id that the task does not
  // have; kAlreadyExists for a section id used before in the task;
  // kFailedPrecondition for a section stopped twice, a child of a stopped
  // section, or a task started/stopped twice.
  absl::Status StartTask(absl::string_view task_id, int64_t pid,
                         const TaskStart& event);
  absl::Status StopTask(absl::string_view task_id, int64_t pid,
                        const TaskStop& event);
  absl::Status StartSection(absl::string_view task_id, int64_t pid,
                            const SectionStart& event);
  // The same, taking the event's contents (the server's path: no copy).
  absl::Status StartSection(absl::string_view task_id, int64_t pid,
                            SectionStart&& event);
  absl::Status StopSection(absl::string_view task_id, int64_t pid,
                           const SectionStop& event);
  absl::Status StopSection(absl::string_view task_id, int64_t pid,
                           SectionStop&& event);

  // Rolls `result` into the task's result (creating the task if unknown):
  // the runner's Task.result, or a server-detected client error.
  void RecordTaskResult(absl::string_view task_id, const ResultInfo& result);

  // Stops every section of task `task_id` that process `pid` started and did
  // not stop, innermost first, with `result` at time `when`. Returns how
  // many it stopped (0 for an unknown task).
  int CloseOpenSections(absl::string_view task_id, int64_t pid,
                        const ResultInfo& result, absl::Time when);

  // The task runs again: what was reported for it so far becomes its
  // previous attempt, and events from now on build the new one (its TaskLog
  // `logfile`; empty: the same). An unknown task id is created.
  // kInvalidArgument for an empty task id.
  absl::Status BeginAttempt(absl::string_view task_id,
                            absl::string_view logfile);

  // Number of sections not stopped yet of process `pid` of task `task_id`.
  int OpenSectionCount(absl::string_view task_id, int64_t pid) const;

  // The report as of `now` (the job's stoptime). Does not change the builder.
  JobReport Build(absl::Time now) const;

 private:
  struct SectionNode {
    SectionStart start;
    SectionStop stop;
    bool stopped = false;
    int64_t pid = 0;
    std::vector<uint64_t> children;
  };
  struct TaskNode {
    TaskInfo info;
    bool started = false;
    bool stopped = false;
    TaskStart start;
    TaskStop stop;
    ResultInfo recorded;  // roll-up of RecordTaskResult()
    bool has_recorded = false;
    absl::Time first_time = absl::InfiniteFuture();
    absl::Time last_time = absl::InfinitePast();
    std::vector<uint64_t> top_level;
    std::deque<SectionNode> nodes;  // stable addresses
    absl::flat_hash_map<uint64_t, SectionNode*> sections;
    // Open section ids per pid, in start order.
    absl::flat_hash_map<int64_t, std::vector<uint64_t>> open;
    std::vector<int64_t> pids;
    // Earlier attempts (BeginAttempt), first one first; theirs is empty.
    std::vector<std::unique_ptr<TaskNode>> previous;
  };

  TaskNode& GetOrAddTask(absl::string_view task_id);
  void Touch(TaskNode& task, int64_t pid, absl::Time time);
  void BuildSection(const TaskNode& task, const SectionNode& node,
                    absl::string_view task_id, absl::Time now,
                    Section* out) const;
  // One attempt of a task: times, pids, sections, summary and result.
  // Section ids are "<id_base>.<section id>".
  void BuildAttempt(const TaskNode& task, absl::string_view id_base,
                    absl::Time now, TaskReport* out) const;

  ReportBuilderOptions options_;
  std::vector<std::unique_ptr<TaskNode>> tasks_;  // in first-seen order
  absl::flat_hash_map<std::string, TaskNode*> by_id_;
};

// absl::Time <-> google.protobuf.Timestamp (absl::InfinitePast() <-> unset).
google::protobuf::Timestamp ToProtoTime(absl::Time t);
absl::Time FromProtoTime(const google::protobuf::Timestamp& t);

// Adds `result` to `*summary`'s counters (not success_rate).
void CountResult(const ResultInfo& result, Summary* summary);
// Sets summary->success_rate from its counters.
void FinishSummary(Summary* summary);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_REPORT_BUILDER_H_
