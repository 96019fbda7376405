#include "runner/local_executor.h"

#include <signal.h>

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "runner/task_body.h"

namespace taskfork::runner {

absl::StatusOr<pid_t> LocalExecutor::Start(RunId run,
                                           const TaskLaunch& launch) {
  CHECK(Find(run) == nullptr) << "run " << run << " exists already";
  const TaskDefinition& definition = *launch.definition;
  ProcessOptions options;
  options.name = absl::StrCat("task:", definition.id).substr(0, 15);
  options.set_cmdline_title = false;
  options.own_process_group = true;
  options.parent_death_signal = SIGKILL;
  options.stdin_policy = launch.task_stdin;
  options.reset_signals = true;

  TaskBodyConfig config;
  config.definition = launch.definition;
  config.log_path = launch.log_path;
  config.runinfo_dir = launch.runinfo_dir;
  config.reporter_socket = launch.reporter_socket;
  config.reporter_secret_file = launch.reporter_secret_file;
  config.command_stdin = launch.task_stdin == StdinPolicy::kDevNull
                             ? StdinPolicy::kDevNull
                             : StdinPolicy::kInherit;
  config.shard = launch.shard;
  config.capture_stdio =
      launch.task_stdin != StdinPolicy::kControllingTerminal;
  absl::StatusOr<Process> process = Process::StartWithResultBytes(
      std::move(options), [config]() { return RunTaskBody(config); });
  if (!process.ok()) return process.status();

  auto free_slot = std::find_if(runs_.begin(), runs_.end(),
                                [](const auto& r) { return !r->process; });
  if (free_slot == runs_.end()) {
    runs_.push_back(std::make_unique<Run>());
    free_slot = runs_.end() - 1;
  }
  Run& slot = **free_slot;
  slot.id = run;
  slot.task_id = definition.id;
  slot.process.emplace(*std::move(process));
  slot.kill_at.reset();
  waiting_.Add(&*slot.process);
  return slot.process->pid();
}

LocalExecutor::Run* LocalExecutor::Find(RunId run) {
  for (auto& slot : runs_) {
    if (slot->process.has_value() && slot->id == run) return slot.get();
  }
  return nullptr;
}

void LocalExecutor::Stop(RunId id, absl::Duration grace) {
  Run* run = Find(id);
  if (run == nullptr) return;
  (void)run->process->Signal(SIGTERM);
  const absl::Time kill_at = absl::Now() + grace;
  if (!run->kill_at.has_value() || kill_at < *run->kill_at) {
    run->kill_at = kill_at;
  }
}

void LocalExecutor::Kill(RunId id) {
  Run* run = Find(id);
  if (run != nullptr) (void)run->process->Signal(SIGKILL);
}

absl::Status LocalExecutor::Wait(absl::Time deadline,
                                 absl::Span<const int> fds, Events* events) {
  events->ended.clear();
  events->ready_fds.clear();
  for (int fd : fds) waiting_.AddFd(fd);
  absl::Status status;
  while (events->ended.empty() && events->ready_fds.empty()) {
    absl::Time wake = deadline;
    for (const auto& run : runs_) {
      if (run->process.has_value() && run->kill_at.has_value()) {
        wake = std::min(wake, *run->kill_at);
      }
    }
    absl::StatusOr<ProcessSet::Ready> ready = waiting_.Wait(wake);
    if (!ready.ok()) {
      status = ready.status();
      break;
    }
    events->ready_fds = std::move(ready->fds);
    for (Process* exited : ready->exited) {
      for (auto& run : runs_) {
        if (run->process.has_value() && &*run->process == exited) {
          events->ended.emplace_back(run->id, Finish(*run));
        }
      }
    }
    const absl::Time now = absl::Now();
    for (auto& run : runs_) {
      if (run->process.has_value() && run->kill_at.has_value() &&
          now >= *run->kill_at) {
        LOG(WARNING) << "task " << run->task_id
                     << " outlived its termination grace: SIGKILL";
        (void)run->process->Signal(SIGKILL);
        run->kill_at.reset();
      }
    }
    if (now >= deadline) break;
  }
  for (int fd : fds) waiting_.RemoveFd(fd);
  return status;
}

TaskEnd LocalExecutor::Finish(Run& run) {
  Process& process = *run.process;
  // Whatever the task left in its process group (a grandchild that ignored
  // SIGTERM, a forgotten background job) ends with it: the zombie of the
  // task process still holds the group id, so this cannot hit a stranger.
  (void)process.Signal(SIGKILL);
  TaskEnd end;
  const absl::StatusOr<ExitStatus> exit = process.Join();
  if (exit.ok()) end.exit = *exit;
  absl::StatusOr<std::string> bytes = process.TakeResultBytes();
  end.outcome = bytes.ok() ? DecodeTaskOutcome(*bytes) : bytes.status();
  waiting_.Remove(&process);
  run.process.reset();
  run.kill_at.reset();
  return end;
}

}  // namespace taskfork::runner
