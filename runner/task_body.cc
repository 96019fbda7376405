#include "runner/task_body.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "base/fd.h"
#include "fork/process_set.h"
#include "fork/spawn.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "runner/gtest_sections.h"
#include "runner/gtest_stream.h"
#include "runner/scheduler.h"
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

// How long a gtest task process waits for its binary to end after a SIGTERM
// (the binary got it too) before it SIGKILLs it: well inside the runner's
// default termination grace (5 s), so the task still reports its tests.
constexpr absl::Duration kGTestTerminationWait = absl::Seconds(2);
// Connections to a gtest task's stream port from other processes that are
// kept (unread) until the binary has ended; later ones are closed.
constexpr size_t kMaxOtherConnections = 4;

// fork + exec of `argv` from the task process with the task's environment
// plus `extra_env`; the command stays in the task's process group, so a
// timeout or Ctrl-C reaches it too.
absl::StatusOr<Process> SpawnCommand(
    const TaskBodyConfig& config, const std::vector<std::string>& argv,
    const std::vector<std::pair<std::string, std::string>>& extra_env) {
  const TaskDefinition& task = *config.definition;
  SpawnOptions spawn;
  spawn.process.own_process_group = false;
  spawn.process.stdin_policy = config.command_stdin;
  spawn.process.env = task.env;
  spawn.process.env.insert(spawn.process.env.end(), extra_env.begin(),
                           extra_env.end());
  spawn.working_directory = task.working_directory.empty()
                                ? config.runinfo_dir
                                : task.working_directory;
  LOG(INFO) << "running command: " << absl::StrJoin(argv, " ") << " (in "
            << spawn.working_directory << ")";
  std::fflush(nullptr);
  spawn.argv = argv;
  return Spawn(std::move(spawn));
}

// The outcome of a Join() that failed: the command could not run, or the
// wait failed.
TaskFunctionOutcome JoinFailure(const std::string& program,
                                const Process& process,
                                const absl::Status& status) {
  if (process.exit_status() != nullptr) {
    // Reaped: its chdir or execve failed (Join names the path and errno).
    LOG(ERROR) << "taskfork: " << status.message();
    return {Result::kErrored,
            absl::StrCat(program, " could not run (exit code ",
                         process.exit_status()->exit_code,
                         "): ", status.message())};
  }
  return {Result::kErrored,
          absl::StrCat("waiting for ", program, ": ", status.ToString())};
}

// How the command ended, as the task's outcome; merges its TaskLog part.
TaskFunctionOutcome CommandOutcome(const std::string& program,
                                   const ExitStatus& status) {
  LOG(INFO) << "command " << status.ToString();
  // The command wrote to its own TaskLog.<id>:pid-<pid> (a forked child);
  // bring its output into the task's log, as after a Pcall.
  if (tasklog::TaskLog* log = tasklog::TaskLog::Current(); log != nullptr) {
    const pid_t child = status.pid;
    const absl::Status merged = log->MergeChildLogs({&child, 1});
    if (!merged.ok()) LOG(WARNING) << "command output: " << merged;
  }
  TaskFunctionOutcome outcome;
  if (status.signaled()) {
    outcome = {Result::kErrored,
               absl::StrCat(program, " killed by ", status.signal_name(),
                            status.core_dumped ? " (core dumped)" : "")};
  } else if (status.exit_code == kExecFailedExitCode) {
    // The program ran and exited 127 (e.g. a script whose interpreter or
    // a command it runs is missing): as a shell would say, it could not run.
    outcome = {Result::kErrored,
               absl::StrCat(program, " could not run (exit code 127; see the "
                                     "task log)")};
  } else if (status.exit_code != 0) {
    outcome = {Result::kFailed,
               absl::StrCat(program, " exited with code ", status.exit_code)};
  }
  return outcome;
}

// A plain command task: run it to its end.
TaskFunctionOutcome RunCommand(const TaskBodyConfig& config) {
  const TaskDefinition& task = *config.definition;
  std::vector<std::pair<std::string, std::string>> env;
  if (!config.reporter_socket.empty()) {
    // Live reporting for binaries linking //reporter:gtest_listener (a gtest
    // task is reported from its JSON output or stream instead, not twice).
    env.emplace_back(kReporterSocketEnv, config.reporter_socket);
    if (!config.reporter_secret_file.empty()) {
      env.emplace_back(kReporterSecretFileEnv, config.reporter_secret_file);
    }
    env.emplace_back(kTaskIdEnv, task.id);
    env.emplace_back(kReporterTaskIdEnv, task.id);
  }
  auto process = SpawnCommand(config, task.argv, env);
  if (!process.ok()) {
    return {Result::kErrored,
            absl::StrCat("cannot start ", task.argv[0], ": ",
                         process.status().ToString())};
  }
  const absl::StatusOr<ExitStatus> status = process->Join();
  if (!status.ok()) return JoinFailure(task.argv[0], *process, status.status());
  return CommandOutcome(task.argv[0], *status);
}

// The listening socket a GoogleTest binary streams its events to.
struct StreamListener {
  OwnedFd fd;
  int port = 0;
};

// A TCP socket on 127.0.0.1, an ephemeral port, a backlog of one.
absl::StatusOr<StreamListener> ListenOnLoopback() {
  StreamListener listener;
  listener.fd.Reset(
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener.fd.valid()) return ErrnoError(errno, "socket", "AF_INET");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  if (::bind(listener.fd.get(), reinterpret_cast<sockaddr*>(&address),
             sizeof(address)) != 0) {
    return ErrnoError(errno, "bind", "127.0.0.1:0");
  }
  if (::listen(listener.fd.get(), 1) != 0) {
    return ErrnoError(errno, "listen", "127.0.0.1");
  }
  socklen_t length = sizeof(address);
  if (::getsockname(listener.fd.get(), reinterpret_cast<sockaddr*>(&address),
                    &length) != 0) {
    return ErrnoError(errno, "getsockname", "127.0.0.1");
  }
  listener.port = ntohs(address.sin_port);
  return listener;
}

// Reads what the stream socket has now into `stream`; closes it (and says
// false) at end-of-file or on an error.
bool ReadStream(OwnedFd& socket, GTestStream& stream) {
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(socket.get(), buffer, sizeof(buffer));
    if (n > 0) {
      stream.Append(absl::string_view(buffer, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
    if (n < 0) {
      LOG(WARNING) << "GoogleTest stream: "
                   << ErrnoError(errno, "read", "the stream socket");
    }
    socket.Reset();
    return false;
  }
}

// The inode of the TCP socket whose local port is `local_port` and remote
// port `remote_port` (both on 127.0.0.1), from /proc/net/tcp; 0 if none.
uint64_t LoopbackSocketInode(int local_port, int remote_port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    // "sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout
    // inode ...", addresses as hex "0100007F:D431".
    const std::vector<absl::string_view> fields =
        absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (fields.size() < 10) continue;
    const std::vector<absl::string_view> local = absl::StrSplit(fields[1], ':');
    const std::vector<absl::string_view> remote =
        absl::StrSplit(fields[2], ':');
    int port = 0;
    int peer = 0;
    uint64_t inode = 0;
    if (local.size() == 2 && remote.size() == 2 && local[0] == "0100007F" &&
        remote[0] == "0100007F" && absl::SimpleHexAtoi(local[1], &port) &&
        absl::SimpleHexAtoi(remote[1], &peer) && port == local_port &&
        peer == remote_port && absl::SimpleAtoi(fields[9], &inode)) {
      return inode;
    }
  }
  return 0;
}

// Whether `pid` has the socket `inode` open (one of its /proc/PID/fd).
bool HasSocketOpen(pid_t pid, uint64_t inode) {
  const std::string directory = absl::StrCat("/proc/", pid, "/fd");
  DIR* fds = ::opendir(directory.c_str());
  if (fds == nullptr) return false;
  const std::string wanted = absl::StrCat("socket:[", inode, "]");
  bool found = false;
  while (const dirent* entry = ::readdir(fds)) {
    char target[64];
    const std::string path = absl::StrCat(directory, "/", entry->d_name);
    const ssize_t n = ::readlink(path.c_str(), target, sizeof(target));
    if (n > 0 && absl::string_view(target, n) == wanted) {
      found = true;
      break;
    }
  }
  ::closedir(fds);
  return found;
}

// Whether the accepted connection `socket` may be `process`'s: its end of
// the connection is one of the process's descriptors, or it is closed
// already (an ended process's, which cannot be asked any more). A
// connection whose other end another process holds open is not.
bool ConnectedBy(int socket, const Process& process) {
  sockaddr_in ours{};
  sockaddr_in peer{};
  socklen_t length = sizeof(ours);
  if (::getsockname(socket, reinterpret_cast<sockaddr*>(&ours), &length) !=
      0) {
    return false;
  }
  length = sizeof(peer);
  if (::getpeername(socket, reinterpret_cast<sockaddr*>(&peer), &length) !=
      0) {
    return false;
  }
  // 0 also when the other end was closed (the kernel shows no inode then).
  const uint64_t inode =
      LoopbackSocketInode(ntohs(peer.sin_port), ntohs(ours.sin_port));
  return inode == 0 || HasSocketOpen(process.pid(), inode);
}

// Accepts the connections pending on `listener` until one may be the
// binary's (ConnectedBy), which becomes `socket`; the listener is closed
// then, so any later connection is refused. Connections another process
// holds open go to `others`, unread, to be asked again once the binary has
// ended (an ending binary may have closed its descriptors before it counts
// as ended). An accept error closes the listener (no stream then).
void AcceptStream(const Process& binary, OwnedFd& listener, OwnedFd& socket,
                  std::vector<OwnedFd>& others) {
  while (listener.valid() && !socket.valid()) {
    OwnedFd accepted(RetryOnEintr([&] {
      return ::accept4(listener.get(), nullptr, nullptr,
                       SOCK_CLOEXEC | SOCK_NONBLOCK);
    }));
    if (!accepted.valid()) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        LOG(WARNING) << "GoogleTest stream: "
                     << ErrnoError(errno, "accept", "127.0.0.1");
        listener.Reset();
      }
      return;
    }
    if (ConnectedBy(accepted.get(), binary)) {
      socket = std::move(accepted);
      listener.Reset();
    } else if (others.size() < kMaxOtherConnections) {
      others.push_back(std::move(accepted));
    }
  }
}

// The name of the first of `signals`, or "" if empty.
std::string FirstSignalName(const std::vector<int>& signals) {
  if (signals.empty()) return "";
  const char* abbrev = ::sigabbrev_np(signals[0]);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev)
                           : absl::StrCat("signal ", signals[0]);
}

// A gtest command task: runs the GoogleTest binary `argv` with its JSON
// output to `json_path` and its live event stream to a socket of this
// process, and `extra_env` added to the task's environment, waiting in one
// ppoll on the binary, the stream and SIGTERM/SIGINT (blocked, a signalfd).
// Reports one section per test: from the JSON when the binary wrote it,
// else from the stream (the running test Errored after a crash, Aborted
// after a SIGTERM).
TaskFunctionOutcome RunGTestCommand(
    const TaskBodyConfig& config,
    const std::function<reporter::ReportClient*()>& reporter,
    const std::string& json_path,
    const std::vector<std::pair<std::string, std::string>>& extra_env) {
  const TaskDefinition& task = *config.definition;
  const std::string& program = task.argv[0];
  std::vector<std::string> argv = task.argv;
  ::unlink(json_path.c_str());
  argv.push_back(absl::StrCat("--gtest_output=json:", json_path));
  if (!task.gtest_filter.empty()) {
    argv.push_back(absl::StrCat("--gtest_filter=", task.gtest_filter));
  }

  // A SIGTERM (timeout, Ctrl-C: the runner signals the task's group) is an
  // event of the wait below, not the end of this process.
  absl::StatusOr<InterruptSignals> signals = InterruptSignals::Create();
  if (!signals.ok()) {
    LOG(WARNING) << "a SIGTERM will end this task without its test results: "
                 << signals.status();
  }
  absl::StatusOr<StreamListener> listener = ListenOnLoopback();
  if (listener.ok()) {
    argv.push_back(
        absl::StrCat("--gtest_stream_result_to=127.0.0.1:", listener->port));
  } else {
    LOG(WARNING) << "no GoogleTest stream (a crash loses the test results): "
                 << listener.status();
  }

  auto process = SpawnCommand(config, argv, extra_env);
  if (!process.ok()) {
    return {Result::kErrored, absl::StrCat("cannot start ", program, ": ",
                                           process.status().ToString())};
  }

  GTestStream stream;
  OwnedFd socket;
  std::vector<OwnedFd> others;  // connections not (yet) known the binary's
  std::string terminated_by;  // the signal's name, once one arrived
  absl::Time kill_at = absl::InfiniteFuture();
  ProcessSet waiting;
  waiting.Add(&*process);
  if (listener.ok()) waiting.AddFd(listener->fd.get());
  if (signals.ok()) waiting.AddFd(signals->fd());
  while (true) {
    absl::StatusOr<ProcessSet::Ready> ready = waiting.Wait(kill_at);
    if (!ready.ok()) {
      LOG(ERROR) << "waiting for " << program << ": " << ready.status();
      break;  // the Join below waits without the stream
    }
    for (int fd : ready->fds) {
      if (listener.ok() && fd == listener->fd.get()) {
        AcceptStream(*process, listener->fd, socket, others);
        if (!listener->fd.valid()) waiting.RemoveFd(fd);
        if (socket.valid()) waiting.AddFd(socket.get());
      } else if (socket.valid() && fd == socket.get()) {
        if (!ReadStream(socket, stream)) waiting.RemoveFd(fd);
      } else if (signals.ok() && fd == signals->fd()) {
        const std::string name = FirstSignalName(signals->Read());
        if (name.empty() || !terminated_by.empty()) continue;
        terminated_by = name;
        LOG(WARNING) << terminated_by << ": ending " << program
                     << " (SIGKILL in "
                     << absl::FormatDuration(kGTestTerminationWait) << ")";
        (void)process->Signal(SIGTERM);
        kill_at = absl::Now() + kGTestTerminationWait;
      }
    }
    if (!ready->exited.empty()) break;
    if (absl::Now() >= kill_at) {
      LOG(WARNING) << program << " outlived "
                   << absl::FormatDuration(kGTestTerminationWait)
                   << " after SIGTERM: SIGKILL";
      (void)process->Kill();
      break;
    }
  }
  // A SIGTERM to the task's group reaches this process before the binary
  // can die of it.
  if (signals.ok() && terminated_by.empty()) {
    terminated_by = FirstSignalName(signals->Read());
  }
  // What the binary wrote before it ended is in the socket (or the
  // listener's queue) now: read it to its end-of-file, waiting a little
  // for what the kernel still moves, not for a descendant of the binary
  // that holds the socket on.
  waiting.Remove(&*process);
  if (!socket.valid() && listener.ok()) {
    AcceptStream(*process, listener->fd, socket, others);
  }
  // Without a connection taken (the listener still open), the binary's may
  // have looked like another process's while the binary was ending: its end
  // is closed now. (So is that of another process that has ended too, which
  // cannot be told apart then.)
  const bool took_one = !listener.ok() || !listener->fd.valid();
  for (OwnedFd& other : others) {
    if (!took_one && !socket.valid() && ConnectedBy(other.get(), *process)) {
      socket = std::move(other);
    }
  }
  const size_t ignored = std::count_if(
      others.begin(), others.end(),
      [](const OwnedFd& other) { return other.valid(); });
  if (ignored > 0) {
    LOG(WARNING) << "GoogleTest stream: ignored " << ignored
                 << " connection(s) held open by another process than pid "
                 << process->pid();
  }
  others.clear();
  if (socket.valid()) {
    ProcessSet drain;
    drain.AddFd(socket.get());
    const absl::Time drain_until = absl::Now() + absl::Seconds(1);
    while (ReadStream(socket, stream) && drain.Wait(drain_until).ok() &&
           absl::Now() < drain_until) {
    }
    if (socket.valid()) {
      LOG(WARNING) << "GoogleTest stream: no end-of-file 1s after " << program
                   << " ended (a process it started holds the socket?)";
    }
  }

  const absl::StatusOr<ExitStatus> status = process->Join();
  if (!status.ok()) return JoinFailure(program, *process, status.status());
  TaskFunctionOutcome outcome = CommandOutcome(program, *status);

  const absl::StatusOr<std::vector<GTestSection>> json =
      ReadGTestJson(json_path);
  std::vector<GTestSection> tests;
  std::string running_reason;  // the running test's, when it gets one
  if (json.ok()) {
    tests = *json;
  } else if (stream.started()) {
    LOG(WARNING) << "no GoogleTest JSON (" << json.status().message()
                 << "): the results come from its stream ("
                 << stream.finished().size() << " tests ended"
                 << (stream.running().empty()
                         ? ""
                         : absl::StrCat(", ", stream.running(), " running"))
                 << ")";
    if (!stream.running().empty()) {
      if (!terminated_by.empty()) {
        running_reason = absl::StrCat(
            stream.running(), " was running when the task was terminated (",
            terminated_by, ")");
        tests = stream.Sections(Result::kAborted, running_reason);
      } else {
        running_reason = absl::StrCat(
            stream.running(), ": ",
            status->signaled()
                ? absl::StrCat("killed by ", status->signal_name(),
                               status->core_dumped ? " (core dumped)" : "")
                : absl::StrCat("exited with code ", status->exit_code),
            " while running");
        tests = stream.Sections(Result::kErrored, running_reason);
      }
    } else {
      tests = stream.finished();
    }
  } else {
    LOG(WARNING) << "no GoogleTest results: " << json.status();
  }
  ReportGTestSections(tests, reporter());
  if (!terminated_by.empty()) {
    if (reporter::ReportClient* client = reporter(); client != nullptr) {
      const absl::Status flushed = client->Flush();
      if (!flushed.ok()) LOG(WARNING) << "reporter: " << flushed;
    }
  }

  if (!running_reason.empty()) {
    outcome = {terminated_by.empty() ? Result::kErrored : Result::kAborted,
               running_reason};
    return outcome;
  }
  for (const GTestSection& test : tests) {
    if (reporter::RollUp(outcome.result, test.result) != outcome.result &&
        test.result != Result::kSkipped) {
      outcome.result = test.result;
      outcome.reason = absl::StrCat(test.name, ": ", test.reason);
    }
  }
  if (!json.ok() && (tests.empty() || outcome.result == Result::kPassed)) {
    // Nothing to show, or a binary that passed without writing its JSON.
    outcome.result = reporter::RollUp(outcome.result, Result::kErrored);
    if (outcome.reason.empty()) {
      outcome.reason = std::string(json.status().message());
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
    options.secret_file = config.reporter_secret_file;
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
  if (!task.argv.empty() && task.gtest) {
    const GTestOutput output = GTestOutputOf(config);
    outcome = RunGTestCommand(config, connect, output.json_path,
                              output.shard_env);
  } else if (!task.argv.empty()) {
    outcome = RunCommand(config);
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
