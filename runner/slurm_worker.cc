#include "runner/slurm_worker.h"

#include <fcntl.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/errno.h"
#include "glog/logging.h"
#include "reporter/result.h"
#include "runner/local_executor.h"
#include "runner/task_function.h"

namespace taskfork::runner {

WorkerTaskEnd ToWire(Executor::RunId run, const TaskEnd& end) {
  WorkerTaskEnd wire;
  wire.run = run;
  if (end.outcome.ok()) {
    wire.outcome = TaskOutcome{static_cast<int>(end.outcome->result),
                               end.outcome->reason};
  } else {
    wire.outcome = end.outcome.status();
  }
  if (end.exit.has_value()) {
    const ExitStatus& e = *end.exit;
    wire.exit = WorkerExit{e.pid,          e.exit_code,  e.signal,
                           e.core_dumped,  e.user_cpu,   e.system_cpu,
                           e.max_rss_bytes, e.uncaught_exception};
  }
  return wire;
}

absl::StatusOr<TaskEnd> FromWire(const WorkerTaskEnd& wire) {
  TaskEnd end;
  if (wire.outcome.ok()) {
    const int value = wire.outcome->result;
    bool known = false;
    for (reporter::Result r : reporter::kAllResults) {
      known |= static_cast<int>(r) == value;
    }
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("run ", wire.run, ": result ", value,
                       " names no result"));
    }
    end.outcome = TaskFunctionOutcome{static_cast<reporter::Result>(value),
                                      wire.outcome->reason};
  } else {
    end.outcome = wire.outcome.status();
  }
  if (wire.exit.has_value()) {
    const WorkerExit& w = *wire.exit;
    ExitStatus e;
    e.pid = static_cast<pid_t>(w.pid);
    e.exit_code = w.exit_code;
    e.signal = w.signal;
    e.core_dumped = w.core_dumped;
    e.user_cpu = w.user_cpu;
    e.system_cpu = w.system_cpu;
    e.max_rss_bytes = w.max_rss_bytes;
    e.uncaught_exception = w.uncaught_exception;
    end.exit = std::move(e);
  }
  return end;
}

absl::Status WorkerChannel::SendPayload(absl::string_view payload) {
  if (payload.size() > kMaxWorkerFrameSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("worker message of ", payload.size(),
                     " bytes exceeds the maximum of ", kMaxWorkerFrameSize));
  }
  std::string frame(4, '\0');
  const uint32_t n = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  frame.append(payload.data(), payload.size());
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t w = ::send(fd_.get(), frame.data() + done,
                             frame.size() - done, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "send", "worker connection");
    }
    done += static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> WorkerChannel::Read() {
  absl::Span<char> space = decoder_.WritableSpace(64 << 10);
  const ssize_t n = RetryOnEintr(
      [&] { return ::read(fd_.get(), space.data(), space.size()); });
  if (n < 0) return ErrnoError(errno, "read", "worker connection");
  decoder_.Commit(static_cast<size_t>(n));
  if (n == 0) {
    const absl::Status finished = decoder_.Finish();
    if (!finished.ok()) return finished;
    return false;
  }
  return true;
}

absl::StatusOr<OwnedFd> ConnectTcp(absl::string_view address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == absl::string_view::npos || colon == 0 ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker address \"", address, "\": want HOST:PORT"));
  }
  const std::string host(address.substr(0, colon));
  const std::string service(address.substr(colon + 1));
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::NotFoundError(absl::StrCat("resolve ", host, ": ",
                                            ::gai_strerror(rc)));
  }
  absl::Status last = absl::UnavailableError(
      absl::StrCat("connect ", address, ": no address"));
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    OwnedFd fd(::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                        a->ai_protocol));
    if (!fd.valid()) {
      last = ErrnoError(errno, "socket", address);
      continue;
    }
    if (RetryOnEintr([&] { return ::connect(fd.get(), a->ai_addr,
                                            a->ai_addrlen); }) == 0) {
      ::freeaddrinfo(found);
      return fd;
    }
    last = ErrnoError(errno, "connect", address);
  }
  ::freeaddrinfo(found);
  return last;
}

namespace {

std::string EnvOr(const char* name, std::string fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::string(value) : fallback;
}

absl::StatusOr<std::string> ReadToken(const std::string& path) {
  absl::StatusOr<OwnedFd> fd = OwnedFd::Open(path, O_RDONLY);
  if (!fd.ok()) return fd.status();
  char buffer[256];
  const ssize_t n =
      RetryOnEintr([&] { return ::read(fd->get(), buffer, sizeof(buffer)); });
  if (n < 0) return ErrnoError(errno, "read", path);
  if (n == 0) return absl::DataLossError(absl::StrCat(path, " is empty"));
  return std::string(buffer, static_cast<size_t>(n));
}

// The task a command names, as the LocalExecutor runs it here. Errors:
// kFailedPrecondition for a function this binary does not register.
absl::StatusOr<TaskDefinition> ToDefinition(const WorkerTask& task,
                                            const std::string& node) {
  TaskDefinition d;
  d.id = task.id;
  d.args = task.args;
  d.argv = task.argv;
  d.env = task.env;
  d.working_directory = task.working_directory;
  d.gtest = task.gtest;
  d.gtest_filter = task.gtest_filter;
  if (task.argv.empty()) {
    const TaskRegistry::Entry* entry =
        TaskRegistry::Global().Find(task.function_name);
    if (entry == nullptr) {
      return absl::FailedPreconditionError(absl::StrCat(
          "task ", task.id, ": the worker on node ", node,
          " has no task function \"", task.function_name,
          "\" (is it the runner binary that registers it?)"));
    }
    d.function_name = task.function_name;
    d.body = entry->function;
  }
  return d;
}

}  // namespace

int RunSlurmWorker(const WorkerConfig& config) {
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  WorkerHello hello;
  hello.node = EnvOr("SLURMD_NODENAME", host);
  hello.pid = ::getpid();
  hello.slurm_job_id = EnvOr("SLURM_JOB_ID", "");
  hello.slurm_step_id = EnvOr("SLURM_STEP_ID", "");
  const std::string me = absl::StrCat("taskfork worker on node ", hello.node);

  const std::string token_path =
      absl::StrCat(config.runinfo_dir, "/", kWorkerTokenFile);
  absl::StatusOr<std::string> token = ReadToken(token_path);
  if (!token.ok()) {
    std::fprintf(stderr, "%s: cannot read the run's token: %s\n", me.c_str(),
                 std::string(token.status().message()).c_str());
    return 3;
  }
  hello.token = *std::move(token);
  // Task logs and reports are written to the runinfo directory from here.
  const std::string probe = absl::StrCat(config.runinfo_dir, "/.worker-",
                                         hello.node, "-", hello.pid);
  const int probe_fd = ::open(probe.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (probe_fd < 0) {
    hello.error = absl::StrCat("node ", hello.node, " cannot write ",
                               config.runinfo_dir, ": ",
                               ErrnoError(errno, "open", probe).message());
  } else {
    ::close(probe_fd);
    ::unlink(probe.c_str());
  }

  absl::StatusOr<OwnedFd> fd = ConnectTcp(config.address);
  if (!fd.ok()) {
    std::fprintf(stderr, "%s: %s\n", me.c_str(),
                 std::string(fd.status().message()).c_str());
    return 3;
  }
  WorkerChannel channel(*std::move(fd));
  if (absl::Status sent = channel.Send(hello); !sent.ok() ||
                                              !hello.error.empty()) {
    std::fprintf(stderr, "%s: %s\n", me.c_str(),
                 hello.error.empty() ? std::string(sent.message()).c_str()
                                     : hello.error.c_str());
    return 3;
  }

  LocalExecutor executor;
  std::map<uint64_t, std::unique_ptr<TaskDefinition>> definitions;
  Executor::Events events;
  auto send_end = [&](uint64_t run, const TaskEnd& end) {
    definitions.erase(run);
    const absl::Status sent = channel.Send(ToWire(run, end));
    if (!sent.ok()) LOG(WARNING) << me << ": " << sent;
  };
  while (true) {
    const absl::Status waited =
        executor.Wait(absl::InfiniteFuture(), {channel.fd()}, &events);
    if (!waited.ok()) {
      std::fprintf(stderr, "%s: %s\n", me.c_str(), waited.ToString().c_str());
      return 4;
    }
    for (const auto& [run, end] : events.ended) send_end(run, end);
    if (events.ready_fds.empty()) continue;
    const absl::StatusOr<bool> more = channel.Read();
    if (!more.ok() || !*more) {
      // The runner is gone (or cut a frame): the executor's destructor ends
      // every task's process group, so nothing is left on the node.
      if (!more.ok()) {
        std::fprintf(stderr, "%s: %s\n", me.c_str(),
                     more.status().ToString().c_str());
      }
      return more.ok() ? 0 : 4;
    }
    while (true) {
      absl::StatusOr<std::optional<WorkerCommand>> command =
          channel.Next<WorkerCommand>();
      if (!command.ok()) {
        std::fprintf(stderr, "%s: bad command from the runner: %s\n",
                     me.c_str(), command.status().ToString().c_str());
        return 4;
      }
      if (!command->has_value()) break;
      const WorkerCommand& c = **command;
      switch (c.kind) {
        case WorkerCommand::kStart: {
          if (definitions.count(c.run) != 0) {
            std::fprintf(stderr, "%s: run %llu started twice\n", me.c_str(),
                         static_cast<unsigned long long>(c.run));
            return 4;
          }
          absl::StatusOr<TaskDefinition> definition =
              ToDefinition(c.task, hello.node);
          if (!definition.ok()) {
            TaskEnd end;
            end.outcome = definition.status();
            send_end(c.run, end);
            break;
          }
          auto& owned = definitions[c.run];
          owned = std::make_unique<TaskDefinition>(*std::move(definition));
          TaskLaunch launch;
          launch.definition = owned.get();
          launch.log_path = c.task.log_path;
          launch.runinfo_dir = c.task.runinfo_dir;
          launch.reporter_socket = c.task.reporter_socket;
          launch.reporter_secret_file = c.task.reporter_secret_file;
          if (c.task.shard.has_value()) {
            launch.shard = GTestShard{c.task.shard->first,
                                      c.task.shard->second};
          }
          const absl::StatusOr<pid_t> pid = executor.Start(c.run, launch);
          if (!pid.ok()) {
            TaskEnd end;
            end.outcome = pid.status();
            send_end(c.run, end);
          }
          break;
        }
        case WorkerCommand::kStop:
          executor.Stop(c.run, c.grace);
          break;
        case WorkerCommand::kKill:
          executor.Kill(c.run);
          break;
        default:
          std::fprintf(stderr, "%s: unknown command %d\n", me.c_str(),
                       c.kind);
          return 4;
      }
    }
  }
}

std::optional<int> MaybeRunSlurmWorker(int argc, char** argv) {
  WorkerConfig config;
  bool worker = false;
  const std::string address_prefix = absl::StrCat(kWorkerFlag, "=");
  const std::string runinfo_prefix = absl::StrCat(kWorkerRunInfoFlag, "=");
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (absl::ConsumePrefix(&arg, address_prefix)) {
      worker = true;
      config.address = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, runinfo_prefix)) {
      config.runinfo_dir = std::string(arg);
    }
  }
  if (!worker) return std::nullopt;
  if (config.address.empty() || config.runinfo_dir.empty()) {
    std::fprintf(stderr, "taskfork worker: want %s=HOST:PORT and %s=DIR\n",
                 kWorkerFlag, kWorkerRunInfoFlag);
    return 2;
  }
  return RunSlurmWorker(config);
}

}  // namespace taskfork::runner
