#include "runner/job_reporter.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "reporter/report_builder.h"

namespace taskfork::runner {

absl::StatusOr<JobReporter> JobReporter::Start(const RunInfo& runinfo,
                                               const std::string& job_name,
                                               const std::string& tcp_listen) {
  reporter::ReporterServerOptions options;
  options.runinfo_dir = runinfo.dir();
  options.job_name = job_name;
  options.job_id = runinfo.uid();
  options.registered_tasks_only = true;  // RegisterTask registers each
  options.tcp_listen = tcp_listen;
  auto server = reporter::ReporterServer::Start(std::move(options));
  if (!server.ok()) {
    LOG(ERROR) << "reporter: " << server.status();
    return absl::Status(server.status().code(),
                        absl::StrCat("cannot start the reporter server: ",
                                     server.status().message()));
  }
  JobReporter reporter;
  reporter.server_.emplace(*std::move(server));
  LOG(INFO) << "reporter server pid " << reporter.server_->pid() << " on "
            << reporter.server_->socket_path()
            << (tcp_listen.empty() ? "" : " and ")
            << reporter.server_->tcp_address();
  return reporter;
}

std::string JobReporter::socket_path() const {
  return server_.has_value() ? server_->socket_path() : "";
}
std::string JobReporter::tcp_address() const {
  return server_.has_value() ? server_->tcp_address() : "";
}
std::string JobReporter::secret_file() const {
  return server_.has_value() ? server_->secret_file() : "";
}
int JobReporter::control_fd() const {
  return server_.has_value() ? server_->control_fd() : -1;
}
pid_t JobReporter::pid() const {
  return server_.has_value() ? server_->pid() : -1;
}

void JobReporter::Warn(std::string warning) {
  LOG(ERROR) << warning;
  warnings_.push_back(std::move(warning));
  failed_ = true;
}

void JobReporter::Check() {
  if (!server_.has_value()) return;
  const absl::Status alive = server_->CheckAlive();
  if (alive.ok()) return;
  Warn(absl::StrCat("reporter server died mid-run (", alive.message(),
                    "); results.json was written from the tasks' results"));
  const int fd = server_->control_fd();
  server_.reset();
  if (on_death_) on_death_(fd);
}

void JobReporter::CheckAfter(const absl::Status& status,
                             absl::string_view what, absl::string_view id) {
  if (status.ok()) return;
  LOG(WARNING) << "reporter: " << what << id << (id.empty() ? "" : ": ")
               << status;
  Check();
}

void JobReporter::RegisterTask(const TaskRecord& task) {
  if (!server_.has_value()) return;
  reporter::TaskInfo info;
  info.set_id(task.id);
  info.set_name(task.id);
  info.set_description(task.description);
  info.set_logfile(task.log_path);
  // Posted: sent with the next batch and applied before the next task
  // starts (Sync), one round trip for all the tasks added until then.
  registrations_unsynced_ = true;
  CheckAfter(server_->PostRegisterTask(info), "cannot register task ",
             task.id);
}

void JobReporter::Sync() {
  if (!registrations_unsynced_ || !server_.has_value()) return;
  registrations_unsynced_ = false;
  CheckAfter(server_->SyncPosted(), "cannot register the tasks: ");
}

void JobReporter::Flush() {
  if (server_.has_value()) CheckAfter(server_->FlushPosted(), "");
}

void JobReporter::TaskStarted(const std::string& id,
                              const std::string& description,
                              const std::string& log_path, pid_t pid,
                              absl::Time start_time) {
  if (!server_.has_value()) return;
  // The task's start as its own client would report it, so that a task
  // process that reports nothing never connects to the reporter.
  reporter::TaskStart start;
  start.set_name(id);
  start.set_description(description);
  start.set_logfile(log_path);
  *start.mutable_time() = reporter::ToProtoTime(start_time);
  CheckAfter(server_->PostTaskStarted(id, pid, start),
             "cannot record the start of ", id);
}

void JobReporter::TaskEnded(const std::string& id, pid_t pid,
                            const TaskResult& result) {
  if (!server_.has_value()) return;
  // With its pid (0 if it never ran) the task's stop is recorded too.
  CheckAfter(server_->PostTaskEnded(
                 id, pid, reporter::MakeResultInfo(result.result, result.reason),
                 absl::Now()),
             "cannot record the result of ", id);
}

void JobReporter::BeginAttempt(const std::string& id,
                               const std::string& log_path) {
  if (!server_.has_value()) return;
  CheckAfter(server_->PostBeginAttempt(id, log_path),
             "cannot begin another attempt of ", id);
}

std::vector<std::string> JobReporter::WriteReport(
    const FallbackJob& job, absl::Span<const TaskRecord> tasks,
    const std::string& dir,
    absl::flat_hash_map<std::string, reporter::ResultInfo>* reported) {
  if (server_.has_value()) {
    const int fd = server_->control_fd();
    auto finalized = server_->Finalize();
    server_.reset();
    if (on_death_) on_death_(fd);
    if (finalized.ok()) {
      // Each task's result as the report has it: its own rolled up with its
      // sections' (a section a forked child left open is Errored, say).
      for (const reporter::TaskReport& task : finalized->report.tasks()) {
        (*reported)[task.id()] = task.result();
      }
      return {finalized->paths.results_json, finalized->paths.xunit_xml,
              finalized->paths.report_html};
    }
    Warn(absl::StrCat("reporter could not finalize (",
                      finalized.status().ToString(),
                      "); results.json was written from the tasks' results"));
  }
  auto paths = WriteFallbackReport(job, tasks, dir);
  if (paths.ok()) {
    return {paths->results_json, paths->xunit_xml, paths->report_html};
  }
  LOG(ERROR) << "cannot write the report: " << paths.status();
  warnings_.push_back(
      absl::StrCat("no report written: ", paths.status().ToString()));
  failed_ = true;
  return {};
}

}  // namespace taskfork::runner
