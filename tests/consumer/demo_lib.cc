#include "demo_lib.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fork/pcall.h"
#include "ipc/queue.h"
#include "ipc/typed.h"
#include "reporter/client.h"
#include "reporter/server.h"

namespace consumer {

absl::StatusOr<std::vector<int64_t>> SquaresInChildren(
    const std::vector<int64_t>& values) {
  return taskfork::Pcall([](int64_t v) { return v * v; }, values);
}

absl::StatusOr<int64_t> SumThroughQueue(int producers, int per_producer) {
  absl::StatusOr<taskfork::ipc::Queue> queue = taskfork::ipc::Queue::Create();
  if (!queue.ok()) return queue.status();
  std::vector<int> ids;
  for (int i = 0; i < producers; ++i) ids.push_back(i);
  // The children put everything, then return how many they put; the queue
  // (1 MiB) holds every message, so they never wait for the parent.
  absl::StatusOr<std::vector<int>> put = taskfork::Pcall(
      [&](int id) {
        for (int n = 0; n < per_producer; ++n) {
          Hero hero{absl::StrCat("hero ", id, ".", n), {id, n, 1}};
          if (!taskfork::ipc::PutValue(*queue, hero).ok()) return -1;
        }
        return per_producer;
      },
      ids);
  if (!put.ok()) return put.status();
  int64_t sum = 0;
  for (int i = 0; i < producers * per_producer; ++i) {
    absl::StatusOr<Hero> hero = taskfork::ipc::GetValue<Hero>(*queue, absl::Seconds(30));
    if (!hero.ok()) return hero.status();
    for (int64_t score : hero->scores) sum += score;
  }
  return sum;
}

absl::StatusOr<ReportSummary> ReportFromChild(const std::string& dir) {
  taskfork::reporter::ReporterServerOptions options;
  options.runinfo_dir = dir;
  options.job_name = "consumer";
  absl::StatusOr<taskfork::reporter::ReporterServer> server =
      taskfork::reporter::ReporterServer::Start(options);
  if (!server.ok()) return server.status();
  taskfork::reporter::TaskInfo task;
  task.set_id("child");
  if (absl::Status s = server->RegisterTask(task); !s.ok()) return s;

  const std::string socket = server->socket_path();
  // The child's status comes back as its result: absl::Status serializes.
  absl::StatusOr<std::vector<absl::Status>> reported = taskfork::Pcall(
      [&socket](int) -> absl::Status {
        taskfork::reporter::ReportClientOptions client_options;
        client_options.socket_path = socket;
        client_options.task_id = "child";
        absl::StatusOr<taskfork::reporter::ReportClient> client =
            taskfork::reporter::ReportClient::Connect(client_options);
        if (!client.ok()) return client.status();
        if (absl::Status s = client->StartTask(); !s.ok()) return s;
        {
          taskfork::reporter::ScopedSection section = client->Section("links");
          section.SetResult(taskfork::reporter::Result::kFailed, "eth0 down");
        }
        if (absl::Status s =
                client->StopTask(taskfork::reporter::Result::kFailed, "a link");
            !s.ok()) {
          return s;
        }
        return client->Close();
      },
      std::vector<int>{0});
  if (!reported.ok()) return reported.status();
  if (!(*reported)[0].ok()) return (*reported)[0];

  absl::StatusOr<taskfork::reporter::FinalizeResult> done = server->Finalize();
  if (!done.ok()) return done.status();
  ReportSummary summary;
  summary.results_json = done->paths.results_json;
  for (const taskfork::reporter::TaskReport& t : done->report.tasks()) {
    if (t.id() != "child") continue;
    summary.sections = t.sections_size();
    summary.task_result = taskfork::reporter::ResultCode_Name(t.result().value());
    if (t.sections_size() > 0) {
      summary.section_result =
          taskfork::reporter::ResultCode_Name(t.sections(0).result().value());
    }
  }
  return summary;
}

}  // namespace consumer
