#include "runner/task_body.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/errno.h"
#include "fork/spawn.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "runner/gtest_sections.h"
#include "tasklog/tasklog.h"

namespace taskfork::runner {
namespace {

using reporter::Result;

// Reports each GoogleTest test as a "Testcase" section of the task.
void ReportGTestSections(const std::vector<GTestSection>& tests,
                         reporter::ReportClient* client) {
  if (client == nullptr) return;
  for (const GTestSection& test : tests) {
    reporter::SectionOptions options;
    options.type = "Testcase";
    const absl::StatusOr<uint64_t> id = client->StartSection(
        test.name, options, test.file.c_str(), test.line);
    if (!id.ok()) {
      LOG(WARNING) << "cannot report test " << test.name << ": " << id.status();
      return;
    }
    const absl::Status stopped =
        client->StopSection(*id, test.result, test.reason);
    if (!stopped.ok()) {
      LOG(WARNING) << "cannot report test " << test.name << ": " << stopped;
      return;
    }
  }
}

// Where a GoogleTest command writes its JSON, and the sharding environment
// of one shard (empty when not sharded).
struct GTestOutput {
  std::string json_path;
  std::vector<std::pair<std::string, std::string>> shard_env;
};

GTestOutput GTestOutputOf(const TaskBodyConfig& config) {
  const std::string& id = config.definition->id;
  GTestOutput output;
  if (!config.shard.has_value()) {
    output.json_path = GTestJsonPath(config.runinfo_dir, id);
    return output;
  }
  const GTestShard& shard = *config.shard;
  output.json_path = GTestJsonPath(config.runinfo_dir, id, shard.index);
  output.shard_env = {
      {"GTEST_TOTAL_SHARDS", absl::StrCat(shard.total)},
      {"GTEST_SHARD_INDEX", absl::StrCat(shard.index)},
  };
  return output;
}

// fork + exec of the command from the task process; the command stays in the
// task's process group, so a timeout or Ctrl-C reaches it too.
TaskFunctionOutcome RunCommand(
    const TaskBodyConfig& config, const GTestOutput& gtest,
    const std::function<reporter::ReportClient*()>& reporter) {
  const TaskDefinition& task = *config.definition;
  std::vector<std::string> argv = task.argv;
  const std::string& json_path = gtest.json_path;
  if (task.gtest) {
    ::unlink(json_path.c_str());
    argv.push_back(absl::StrCat("--gtest_output=json:", json_path));
    if (!task.gtest_filter.empty()) {
      argv.push_back(absl::StrCat("--gtest_filter=", task.gtest_filter));
    }
  }
  SpawnOptions spawn;
  spawn.process.own_process_group = false;
  spawn.process.stdin_policy = config.command_stdin;
  spawn.process.env = task.env;
  spawn.process.env.insert(spawn.process.env.end(), gtest.shard_env.begin(),
                           gtest.shard_env.end());
  if (!config.reporter_socket.empty() && !task.gtest) {
    // Live reporting for binaries linking //reporter:gtest_listener; a gtest
    // task is reported from its JSON output instead (not twice).
    spawn.process.env.emplace_back(kReporterSocketEnv, config.reporter_socket);
    spawn.process.env.emplace_back(kTaskIdEnv, task.id);
  }
  spawn.working_directory = task.working_directory.empty()
                                ? config.runinfo_dir
                                : task.working_directory;
  LOG(INFO) << "running command: " << absl::StrJoin(argv, " ") << " (in "
            << spawn.working_directory << ")";
  std::fflush(nullptr);
  spawn.argv = argv;

  auto process = Spawn(std::move(spawn));
  if (!process.ok()) {
    return {Result::kErrored,
            absl::StrCat("cannot start ", argv[0], ": ",
                         process.status().ToString())};
  }
  const absl::StatusOr<ExitStatus> status = process->Join();
  if (!status.ok()) {
    if (process->exit_status() != nullptr) {
      // Reaped: its chdir or execve failed (Join names the path and errno).
      LOG(ERROR) << "taskfork: " << status.status().message();
      return {Result::kErrored,
              absl::StrCat(argv[0], " could not run (exit code ",
                           process->exit_status()->exit_code,
                           "): ", status.status().message())};
    }
    return {Result::kErrored, absl::StrCat("waiting for ", argv[0], ": ",
                                           status.status().ToString())};
  }
  LOG(INFO) << "command " << status->ToString();
  // The command wrote to its own TaskLog.<id>:pid-<pid> (a forked child);
  // bring its output into the task's log, as after a Pcall.
  if (tasklog::TaskLog* log = tasklog::TaskLog::Current(); log != nullptr) {
    const pid_t child = status->pid;
    const absl::Status merged = log->MergeChildLogs({&child, 1});
    if (!merged.ok()) LOG(WARNING) << "command output: " << merged;
  }

  TaskFunctionOutcome outcome;
  if (status->signaled()) {
    outcome = {Result::kErrored,
               absl::StrCat(argv[0], " killed by ", status->signal_name(),
                            status->core_dumped ? " (core dumped)" : "")};
  } else if (status->exit_code == kExecFailedExitCode) {
    // The program ran and exited 127 (e.g. a script whose interpreter or
    // a command it runs is missing): as a shell would say, it could not run.
    outcome = {Result::kErrored,
               absl::StrCat(argv[0], " could not run (exit code 127; see the "
                                     "task log)")};
  } else if (status->exit_code != 0) {
    outcome = {Result::kFailed,
               absl::StrCat(argv[0], " exited with code ", status->exit_code)};
  }
  if (task.gtest) {
    const auto tests = ReadGTestJson(json_path);
    if (tests.ok()) {
      ReportGTestSections(*tests, reporter());
      for (const GTestSection& test : *tests) {
        if (reporter::RollUp(outcome.result, test.result) != outcome.result &&
            test.result != Result::kSkipped) {
          outcome.result = test.result;
          outcome.reason = absl::StrCat(test.name, ": ", test.reason);
        }
      }
    } else {
      LOG(WARNING) << "no GoogleTest results: " << tests.status();
      outcome.result = reporter::RollUp(outcome.result, Result::kErrored);
      if (outcome.reason.empty()) {
        outcome.reason = std::string(tests.status().message());
      }
    }
  }
  return outcome;
}

}  // namespace

void RunnerLogLine(const char* file, int line, absl::string_view message) {
  if (const tasklog::TaskLog* log = tasklog::TaskLog::Current()) {
    log->Log(google::GLOG_INFO, file, line, message);
  } else {
    google::LogMessage(file, line).stream() << message;
  }
}

std::string RunTaskBody(const TaskBodyConfig& config) {
  const TaskDefinition& task = *config.definition;
  tasklog::TaskLogOptions log_options;
  log_options.truncate = true;
  log_options.capture_stdio = config.capture_stdio;
  const auto log = tasklog::TaskLog::Install(config.log_path, log_options);
  if (!log.ok()) {
    std::fprintf(stderr, "taskfork: task %s: cannot open its log: %s\n",
                 task.id.c_str(), log.status().ToString().c_str());
  }
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", task.id, " started (pid ", ::getpid(),
                             ")", task.description.empty() ? "" : ": ",
                             task.description));

  // The client connects at the task's first report (reporter()), so a task
  // that reports nothing costs the reporter nothing: the runner reports its
  // start and end.
  std::optional<reporter::ReportClient> client;
  bool connect_tried = false;
  const std::function<reporter::ReportClient*()> connect =
      [&config, &task, &client, &connect_tried]() -> reporter::ReportClient* {
    if (connect_tried || config.reporter_socket.empty()) {
      return client ? &*client : nullptr;
    }
    connect_tried = true;
    reporter::ReportClientOptions options;
    options.socket_path = config.reporter_socket;
    options.task_id = task.id;
    options.log_position = []() -> std::optional<reporter::LogPosition> {
      tasklog::TaskLog* current = tasklog::TaskLog::Current();
      if (current == nullptr) return std::nullopt;
      const absl::StatusOr<int64_t> size = current->size();
      if (!size.ok()) return std::nullopt;
      return reporter::LogPosition{current->path(),
                                   static_cast<uint64_t>(*size)};
    };
    auto connected = reporter::ReportClient::Connect(std::move(options));
    if (connected.ok()) {
      client.emplace(std::move(*connected));
    } else {
      LOG(WARNING) << "reporter unavailable, the result still reaches the "
                      "runner: "
                   << connected.status();
    }
    return client ? &*client : nullptr;
  };

  TaskFunctionOutcome outcome;
  if (!task.argv.empty()) {
    outcome = RunCommand(config, GTestOutputOf(config), connect);
  } else {
    TaskContext context(task.id, task.args, config.runinfo_dir, connect);
    outcome = RunTaskFunction(task.body, context);
  }
  RunnerLogLine(__FILE__, __LINE__,
                absl::StrCat("task ", task.id, " ",
                             reporter::ResultName(outcome.result),
                             outcome.reason.empty() ? "" : ": ",
                             outcome.reason));
  if (client) {
    const absl::Status closed = client->Close();
    if (!closed.ok()) LOG(WARNING) << "reporter: " << closed;
  }
  std::fflush(nullptr);
  return serialize::Encode(
      TaskOutcome{static_cast<int>(outcome.result), std::move(outcome.reason)});
}

absl::StatusOr<TaskFunctionOutcome> DecodeTaskOutcome(absl::string_view bytes) {
  auto decoded = serialize::Decode<TaskOutcome>(bytes);
  if (!decoded.ok()) return decoded.status();
  const std::optional<Result> result = reporter::ResultFromCode(decoded->result);
  if (!result.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("task outcome names no result (code ", decoded->result,
                     ")"));
  }
  return TaskFunctionOutcome{*result, std::move(decoded->reason)};
}

}  // namespace taskfork::runner
