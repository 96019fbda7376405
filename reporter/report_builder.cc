#include "reporter/report_builder.h"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace taskfork::reporter {
namespace {

absl::Time EventTime(const google::protobuf::Timestamp& t) {
  return (t.seconds() == 0 && t.nanos() == 0) ? absl::Now() : FromProtoTime(t);
}

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

std::string UserName() {
  struct passwd pw;
  struct passwd* result = nullptr;
  char buf[1024];
  if (::getpwuid_r(::geteuid(), &pw, buf, sizeof(buf), &result) == 0 &&
      result != nullptr) {
    return pw.pw_name;
  }
  return absl::StrCat("uid ", ::geteuid());
}

double Seconds(absl::Time start, absl::Time stop) {
  if (start == absl::InfinitePast() || stop == absl::InfinitePast() ||
      start == absl::InfiniteFuture() || stop < start) {
    return 0;
  }
  return absl::ToDoubleSeconds(stop - start);
}


bool Passing(const ResultInfo& result) {
  return result.value() == RESULT_PASSED || result.value() == RESULT_PASSX;
}

// A child (top-level section) worse than `*result` lends its result and
// reason ("<child name>: <reason>").
void RaiseByChild(const Section& child, ResultInfo* result) {
  if (child.result().value() <= result->value()) return;
  *result = child.result();
  if (!result->reason().empty()) {
    result->set_reason(absl::StrCat(child.name(), ": ", result->reason()));
  }
}

std::string ResultWord(const ResultInfo& result) {
  const auto r = ResultFromCode(result.value());
  return r ? std::string(ResultName(*r)) : "no result";
}

// "passed on attempt 3 of 3 (attempt 1 Failed: x; attempt 2 Errored: y)"
std::string FlakyReason(
    uint32_t passed_on, uint32_t of,
    const google::protobuf::RepeatedPtrField<Attempt>& earlier) {
  std::string reason = absl::StrCat("flaky: passed on attempt ", passed_on,
                                    " of ", of, " (");
  bool first = true;
  for (const Attempt& a : earlier) {
    if (Passing(a.result())) continue;
    absl::StrAppend(&reason, first ? "" : "; ", "attempt ", a.number(), " ",
                    ResultWord(a.result()),
                    a.result().reason().empty() ? "" : ": ",
                    a.result().reason());
    first = false;
  }
  reason.push_back(')');
  return reason;
}

// Marks `*result` flaky (and says why in its reason, if it has none) when
// it passes after a worse earlier attempt.
bool MarkFlaky(uint32_t passed_on, uint32_t of,
               const google::protobuf::RepeatedPtrField<Attempt>& earlier,
               ResultInfo* result) {
  if (!Passing(*result)) return false;
  const bool failed_before =
      std::any_of(earlier.begin(), earlier.end(),
                  [](const Attempt& a) { return !Passing(a.result()); });
  if (failed_before && result->reason().empty()) {
    result->set_reason(FlakyReason(passed_on, of, earlier));
  }
  return failed_before;
}

// Folds the earlier attempts of a task into `*last` (its last attempt, as
// BuildAttempt made it): the task's history and flakiness, and its
// top-level sections matched by (name, occurrence), the latest run of each
// kept with the earlier runs as its history.
void MergeAttempts(std::vector<TaskReport>& earlier, TaskReport* last) {
  const uint32_t count = static_cast<uint32_t>(earlier.size() + 1);
  std::vector<Section> merged;
  std::vector<uint32_t> ran_in;  // attempt number of merged[i]
  std::map<std::pair<std::string, int>, size_t> slot;
  auto fold = [&](TaskReport& attempt, uint32_t number) {
    std::map<std::string, int> seen;
    for (Section& s : *attempt.mutable_sections()) {
      const int k = seen[s.name()]++;
      const auto [it, inserted] = slot.try_emplace({s.name(), k}, merged.size());
      if (inserted) {
        merged.push_back(std::move(s));
        ran_in.push_back(number);
        continue;
      }
      Section& old = merged[it->second];
      google::protobuf::RepeatedPtrField<Attempt> history;
      history.Swap(old.mutable_previous_attempts());
      Attempt* run = history.Add();
      run->set_number(ran_in[it->second]);
      *run->mutable_result() = old.result();
      *run->mutable_starttime() = old.starttime();
      *run->mutable_stoptime() = old.stoptime();
      const uint32_t runs = std::max<uint32_t>(old.attempts(), 1) + 1;
      old = std::move(s);
      old.set_attempts(runs);
      *old.mutable_previous_attempts() = std::move(history);
      old.set_flaky(MarkFlaky(number, count, old.previous_attempts(),
                              old.mutable_result()));
      ran_in[it->second] = number;
    }
  };
  for (size_t k = 0; k < earlier.size(); ++k) {
    fold(earlier[k], static_cast<uint32_t>(k + 1));
  }
  ResultInfo result = last->result();
  fold(*last, count);

  last->clear_sections();
  Summary* summary = last->mutable_summary();
  summary->Clear();
  for (size_t i = 0; i < merged.size(); ++i) {
    CountResult(merged[i].result(), summary);
    if (merged[i].flaky()) summary->set_flaky(summary->flaky() + 1);
    // Tests this attempt did not run again keep their earlier result.
    if (ran_in[i] != count) RaiseByChild(merged[i], &result);
    *last->add_sections() = std::move(merged[i]);
  }
  FinishSummary(summary);

  google::protobuf::RepeatedField<int64_t> pids;
  for (const TaskReport& attempt : earlier) {
    Attempt* a = last->add_previous_attempts();
    a->set_number(static_cast<uint32_t>(last->previous_attempts_size()));
    *a->mutable_result() = attempt.result();
    a->set_logfile(attempt.logfile());
    *a->mutable_starttime() = attempt.starttime();
    *a->mutable_stoptime() = attempt.stoptime();
    pids.Add(attempt.pids().begin(), attempt.pids().end());
  }
  pids.Add(last->pids().begin(), last->pids().end());
  last->mutable_pids()->Swap(&pids);
  if (earlier.front().has_starttime()) {
    *last->mutable_starttime() = earlier.front().starttime();
    if (last->has_stoptime()) {
      last->set_runtime(
          Seconds(FromProtoTime(last->starttime()),
                  FromProtoTime(last->stoptime())));
    }
  }
  last->set_attempts(count);
  last->set_flaky(
      MarkFlaky(count, count, last->previous_attempts(), &result));
  *last->mutable_result() = std::move(result);
}

}  // namespace

google::protobuf::Timestamp ToProtoTime(absl::Time t) {
  google::protobuf::Timestamp out;
  if (t == absl::InfinitePast() || t == absl::InfiniteFuture()) return out;
  const int64_t nanos = absl::ToUnixNanos(t);
  out.set_seconds(nanos / 1000000000);
  out.set_nanos(static_cast<int32_t>(nanos % 1000000000));
  return out;
}

absl::Time FromProtoTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return absl::InfinitePast();
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

ResultInfo MakeResultInfo(Result result, absl::string_view reason) {
  ResultInfo info;
  info.set_value(static_cast<ResultCode>(ResultCodeOf(result)));
  info.set_reason(std::string(reason));
  return info;
}

void RollUpInto(ResultInfo* acc, const ResultInfo& other) {
  if (other.value() > acc->value()) *acc = other;
}

void CountResult(const ResultInfo& result, Summary* summary) {
  switch (result.value()) {
    case RESULT_SKIPPED:
      summary->set_skipped(summary->skipped() + 1);
      break;
    case RESULT_PASSED:
      summary->set_passed(summary->passed() + 1);
      break;
    case RESULT_PASSX:
      summary->set_passx(summary->passx() + 1);
      break;
    case RESULT_BLOCKED:
      summary->set_blocked(summary->blocked() + 1);
      break;
    case RESULT_FAILED:
      summary->set_failed(summary->failed() + 1);
      break;
    case RESULT_ERRORED:
      summary->set_errored(summary->errored() + 1);
      break;
    case RESULT_ABORTED:
      summary->set_aborted(summary->aborted() + 1);
      break;
    default:
      return;  // unspecified: not counted
  }
  summary->set_total(summary->total() + 1);
}

void FinishSummary(Summary* summary) {
  const uint32_t ok = summary->passed() + summary->passx() + summary->skipped();
  summary->set_success_rate(
      summary->total() == 0 ? 0.0 : 100.0 * ok / summary->total());
}

ReportBuilder::ReportBuilder(ReportBuilderOptions options)
    : options_(std::move(options)) {
  if (options_.job_id.empty()) options_.job_id = options_.job_name;
  if (options_.start_time == absl::InfinitePast()) {
    options_.start_time = absl::Now();
  }
  if (options_.host.empty()) options_.host = HostName();
  if (options_.submitter.empty()) options_.submitter = UserName();
}

ReportBuilder::TaskNode& ReportBuilder::GetOrAddTask(absl::string_view task_id) {
  auto it = by_id_.find(task_id);
  if (it != by_id_.end()) return *it->second;
  tasks_.push_back(std::make_unique<TaskNode>());
  TaskNode* task = tasks_.back().get();
  task->info.set_id(std::string(task_id));
  by_id_.emplace(std::string(task_id), task);
  return *task;
}

void ReportBuilder::Touch(TaskNode& task, int64_t pid, absl::Time time) {
  task.first_time = std::min(task.first_time, time);
  task.last_time = std::max(task.last_time, time);
  if (pid != 0 &&
      std::find(task.pids.begin(), task.pids.end(), pid) == task.pids.end()) {
    task.pids.push_back(pid);
  }
}

absl::Status ReportBuilder::RegisterTask(const TaskInfo& info) {
  if (info.id().empty()) {
    return absl::InvalidArgumentError("RegisterTask: the task id is empty");
  }
  if (by_id_.contains(info.id())) {
    return absl::AlreadyExistsError(
        absl::StrCat("task ", info.id(), " is already registered"));
  }
  GetOrAddTask(info.id()).info = info;
  return absl::OkStatus();
}

absl::Status ReportBuilder::StartTask(absl::string_view task_id, int64_t pid,
                                      const TaskStart& event) {
  if (task_id.empty()) return absl::InvalidArgumentError("empty task id");
  TaskNode& task = GetOrAddTask(task_id);
  if (task.started) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task_id, " started twice"));
  }
  task.started = true;
  task.start = event;
  const absl::Time time = EventTime(event.time());
  *task.start.mutable_time() = ToProtoTime(time);
  if (!event.name().empty()) task.info.set_name(event.name());
  if (!event.description().empty()) {
    task.info.set_description(event.description());
  }
  if (!event.logfile().empty()) task.info.set_logfile(event.logfile());
  Touch(task, pid, time);
  return absl::OkStatus();
}

absl::Status ReportBuilder::StopTask(absl::string_view task_id, int64_t pid,
                                     const TaskStop& event) {
  if (task_id.empty()) return absl::InvalidArgumentError("empty task id");
  TaskNode& task = GetOrAddTask(task_id);
  if (task.stopped) {
    return absl::FailedPreconditionError(
        absl::StrCat("task ", task_id, " stopped twice"));
  }
  task.stopped = true;
  task.stop = event;
  const absl::Time time = EventTime(event.time());
  *task.stop.mutable_time() = ToProtoTime(time);
  Touch(task, pid, time);
  return absl::OkStatus();
}

absl::Status ReportBuilder::StartSection(absl::string_view task_id, int64_t pid,
                                         const SectionStart& event) {
  return StartSection(task_id, pid, SectionStart(event));
}

absl::Status ReportBuilder::StartSection(absl::string_view task_id, int64_t pid,
                                         SectionStart&& event) {
  if (task_id.empty()) return absl::InvalidArgumentError("empty task id");
  if (event.id() == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ", task_id, ": section id 0 is reserved"));
  }
  TaskNode& task = GetOrAddTask(task_id);
  SectionNode* parent = nullptr;
  if (event.parent_id() != 0) {
    auto it = task.sections.find(event.parent_id());
    if (it == task.sections.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("task ", task_id, ": section ", event.id(),
                       " names unknown parent section ", event.parent_id()));
    }
    parent = it->second;
    if (parent->stopped) {
      return absl::FailedPreconditionError(
          absl::StrCat("task ", task_id, ": section ", event.id(),
                       " starts under stopped section ", event.parent_id()));
    }
  }
  auto [it, inserted] = task.sections.try_emplace(event.id(), nullptr);
  if (!inserted) {
    return absl::AlreadyExistsError(absl::StrCat(
        "task ", task_id, ": section id ", event.id(), " used twice"));
  }
  SectionNode& node = task.nodes.emplace_back();
  it->second = &node;
  const uint64_t id = event.id();
  const absl::Time time = EventTime(event.time());
  node.start = std::move(event);
  node.pid = pid;
  *node.start.mutable_time() = ToProtoTime(time);
  if (parent != nullptr) {
    parent->children.push_back(id);
  } else {
    task.top_level.push_back(id);
  }
  task.open[pid].push_back(id);
  Touch(task, pid, time);
  return absl::OkStatus();
}

absl::Status ReportBuilder::StopSection(absl::string_view task_id, int64_t pid,
                                        const SectionStop& event) {
  return StopSection(task_id, pid, SectionStop(event));
}

absl::Status ReportBuilder::StopSection(absl::string_view task_id, int64_t pid,
                                        SectionStop&& event) {
  if (task_id.empty()) return absl::InvalidArgumentError("empty task id");
  auto task_it = by_id_.find(task_id);
  if (task_it == by_id_.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown task ", task_id, " stops section ", event.id()));
  }
  TaskNode& task = *task_it->second;
  auto it = task.sections.find(event.id());
  if (it == task.sections.end()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "task ", task_id, " stops unknown section ", event.id()));
  }
  SectionNode& node = *it->second;
  if (node.stopped) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", task_id, " stops section ", event.id(), " twice"));
  }
  node.stopped = true;
  const absl::Time time = EventTime(event.time());
  node.stop = std::move(event);
  *node.stop.mutable_time() = ToProtoTime(time);
  auto open_it = task.open.find(node.pid);
  if (open_it != task.open.end()) {
    auto& ids = open_it->second;
    // Usually the innermost: search from the back.
    auto pos = std::find(ids.rbegin(), ids.rend(), node.stop.id());
    if (pos != ids.rend()) ids.erase(std::next(pos).base());
    if (ids.empty()) task.open.erase(open_it);
  }
  Touch(task, pid, time);
  return absl::OkStatus();
}

void ReportBuilder::RecordTaskResult(absl::string_view task_id,
                                     const ResultInfo& result) {
  TaskNode& task = GetOrAddTask(task_id);
  if (!task.has_recorded) {
    task.recorded = result;
    task.has_recorded = true;
  } else {
    RollUpInto(&task.recorded, result);
  }
}

int ReportBuilder::CloseOpenSections(absl::string_view task_id, int64_t pid,
                                     const ResultInfo& result,
                                     absl::Time when) {
  auto task_it = by_id_.find(task_id);
  if (task_it == by_id_.end()) return 0;
  TaskNode& task = *task_it->second;
  auto open_it = task.open.find(pid);
  if (open_it == task.open.end()) return 0;
  std::vector<uint64_t> ids = std::move(open_it->second);
  task.open.erase(open_it);
  for (auto id = ids.rbegin(); id != ids.rend(); ++id) {
    SectionNode& node = *task.sections.find(*id)->second;
    node.stopped = true;
    node.stop.set_id(*id);
    *node.stop.mutable_result() = result;
    *node.stop.mutable_time() = ToProtoTime(when);
  }
  Touch(task, pid, when);
  return static_cast<int>(ids.size());
}

int ReportBuilder::OpenSectionCount(absl::string_view task_id,
                                    int64_t pid) const {
  auto task_it = by_id_.find(task_id);
  if (task_it == by_id_.end()) return 0;
  auto open_it = task_it->second->open.find(pid);
  return open_it == task_it->second->open.end()
             ? 0
             : static_cast<int>(open_it->second.size());
}

absl::Status ReportBuilder::BeginAttempt(absl::string_view task_id,
                                         absl::string_view logfile) {
  if (task_id.empty()) {
    return absl::InvalidArgumentError("BeginAttempt: empty task id");
  }
  TaskNode& task = GetOrAddTask(task_id);
  // Moving keeps the sections' addresses (deque, maps of pointers).
  auto done = std::make_unique<TaskNode>(std::move(task));
  TaskNode next;
  next.info = done->info;
  if (!logfile.empty()) next.info.set_logfile(std::string(logfile));
  next.previous = std::move(done->previous);
  next.previous.push_back(std::move(done));
  task = std::move(next);
  return absl::OkStatus();
}

void ReportBuilder::BuildSection(const TaskNode& task, const SectionNode& node,
                                 absl::string_view task_id, absl::Time now,
                                 Section* out) const {
  const SectionStart& start = node.start;
  out->set_type(start.type().empty() ? "Section" : start.type());
  out->set_id(absl::StrCat(task_id, ".", start.id()));
  out->set_name(start.name());
  out->set_description(start.description());
  *out->mutable_starttime() = start.time();
  const absl::Time stop_time =
      node.stopped ? FromProtoTime(node.stop.time()) : now;
  *out->mutable_stoptime() = ToProtoTime(stop_time);
  out->set_runtime(Seconds(FromProtoTime(start.time()), stop_time));
  if (start.has_source()) *out->mutable_xref() = start.source();
  if (start.has_log()) {
    *out->mutable_logs() = start.log();
    out->mutable_logs()->set_size(node.stop.log_size());
  }
  out->set_pid(node.pid);

  ResultInfo result;
  if (!node.stopped) {
    result = MakeResultInfo(
        Result::kAborted, "section was still running when the report was built");
  } else if (node.stop.result().value() == RESULT_UNSPECIFIED) {
    result = node.stop.result();
    result.set_value(RESULT_PASSED);
  } else {
    result = node.stop.result();
  }
  Summary* summary = out->mutable_summary();
  for (uint64_t child_id : node.children) {
    const SectionNode& child = *task.sections.find(child_id)->second;
    Section* child_out = out->add_sections();
    BuildSection(task, child, task_id, now, child_out);
    CountResult(child_out->result(), summary);
    if (child_out->result().value() > result.value()) {
      result = child_out->result();
      if (!result.reason().empty()) {
        result.set_reason(absl::StrCat(child_out->name(), ": ", result.reason()));
      }
    }
  }
  FinishSummary(summary);
  *out->mutable_result() = std::move(result);
}

void ReportBuilder::BuildAttempt(const TaskNode& task,
                                 absl::string_view id_base, absl::Time now,
                                 TaskReport* out) const {
  const absl::Time start = task.started ? FromProtoTime(task.start.time())
                                        : task.first_time;
  const absl::Time stop = task.stopped ? FromProtoTime(task.stop.time())
                                       : task.last_time;
  if (start != absl::InfiniteFuture()) {
    *out->mutable_starttime() = ToProtoTime(start);
  }
  if (stop != absl::InfinitePast()) *out->mutable_stoptime() = ToProtoTime(stop);
  out->set_runtime(Seconds(start, stop));
  for (int64_t pid : task.pids) out->add_pids(pid);

  ResultInfo result;
  if (task.stopped) RollUpInto(&result, task.stop.result());
  if (task.has_recorded) RollUpInto(&result, task.recorded);
  Summary* summary = out->mutable_summary();
  for (uint64_t id : task.top_level) {
    Section* section = out->add_sections();
    BuildSection(task, *task.sections.find(id)->second, id_base, now, section);
    CountResult(section->result(), summary);
    RaiseByChild(*section, &result);
  }
  if (result.value() == RESULT_UNSPECIFIED) {
    const bool never_ran = !task.started && task.sections.empty();
    result = never_ran
                 ? MakeResultInfo(Result::kBlocked,
                                  absl::StrCat("task ", task.info.id(),
                                               " never ran"))
                 : MakeResultInfo(
                       Result::kAborted,
                       absl::StrCat("task ", task.info.id(),
                                    " had not stopped when the report was "
                                    "built"));
  }
  FinishSummary(summary);
  *out->mutable_result() = std::move(result);
}

JobReport ReportBuilder::Build(absl::Time now) const {
  JobReport job;
  job.set_type("TestSuite");
  job.set_id(options_.job_id);
  job.set_name(options_.job_name);
  *job.mutable_starttime() = ToProtoTime(options_.start_time);
  *job.mutable_stoptime() = ToProtoTime(now);
  job.set_runtime(Seconds(options_.start_time, now));
  job.set_host(options_.host);
  job.set_submitter(options_.submitter);
  job.set_totaltasks(static_cast<uint32_t>(tasks_.size()));
  for (const auto& [key, value] : options_.extra) (*job.mutable_extra())[key] = value;

  ResultInfo job_result;
  Summary* job_summary = job.mutable_summary();
  Summary* task_summary = job.mutable_task_summary();
  for (const auto& task_ptr : tasks_) {
    const TaskNode& task = *task_ptr;
    TaskReport* out = job.add_tasks();
    out->set_type("Task");
    out->set_id(task.info.id());
    out->set_name(task.info.name().empty() ? task.info.id() : task.info.name());
    out->set_description(task.info.description());
    out->set_logfile(task.info.logfile());
    if (task.previous.empty()) {
      BuildAttempt(task, task.info.id(), now, out);
    } else {
      std::vector<TaskReport> attempts(task.previous.size());
      for (size_t k = 0; k < task.previous.size(); ++k) {
        BuildAttempt(*task.previous[k],
                     absl::StrCat(task.info.id(), ".attempt", k + 1), now,
                     &attempts[k]);
        attempts[k].set_logfile(task.previous[k]->info.logfile());
      }
      BuildAttempt(task, task.info.id(), now, out);
      MergeAttempts(attempts, out);
    }
    const ResultInfo& result = out->result();
    const Summary* summary = &out->summary();
    if (out->flaky()) task_summary->set_flaky(task_summary->flaky() + 1);
    job_summary->set_flaky(job_summary->flaky() + summary->flaky());

    CountResult(result, task_summary);
    job_summary->set_passed(job_summary->passed() + summary->passed());
    job_summary->set_passx(job_summary->passx() + summary->passx());
    job_summary->set_failed(job_summary->failed() + summary->failed());
    job_summary->set_errored(job_summary->errored() + summary->errored());
    job_summary->set_aborted(job_summary->aborted() + summary->aborted());
    job_summary->set_blocked(job_summary->blocked() + summary->blocked());
    job_summary->set_skipped(job_summary->skipped() + summary->skipped());
    job_summary->set_total(job_summary->total() + summary->total());
    if (result.value() > job_result.value()) {
      job_result = result;
      if (!result.reason().empty()) {
        job_result.set_reason(absl::StrCat("task ", task.info.id(), ": ",
                                           result.reason()));
      }
    }
  }
  FinishSummary(job_summary);
  FinishSummary(task_summary);
  if (job_result.value() == RESULT_UNSPECIFIED) {
    job_result = MakeResultInfo(Result::kSkipped, "the job has no tasks");
  }
  *job.mutable_result() = std::move(job_result);
  return job;
}

}  // namespace taskfork::reporter
