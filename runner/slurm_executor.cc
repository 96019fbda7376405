#include "runner/slurm_executor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "base/errno.h"
#include "base/status_macros.h"
#include "fork/spawn.h"
#include "glog/logging.h"

namespace taskfork::runner {
namespace {

// `name` found on PATH, or kNotFound.
absl::StatusOr<std::string> FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    if (dir.empty()) continue;
    std::string candidate = absl::StrCat(dir, "/", name);
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(
      name, " is not on PATH (", path != nullptr ? path : "", "): install "
      "slurm-client or add its directory to PATH"));
}

// Runs a command to its end (bounded); its exit code, or the error.
absl::StatusOr<ExitStatus> RunCommand(std::vector<std::string> argv) {
  SpawnOptions options;
  options.argv = std::move(argv);
  TASKFORK_ASSIGN_OR_RETURN(Process process, Spawn(std::move(options)));
  return process.Join(absl::Seconds(30));
}

}  // namespace

SlurmExecutor::SlurmExecutor(SlurmExecutorOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<SlurmExecutor>> SlurmExecutor::Create(
    SlurmExecutorOptions options) {
  if (options.nodes < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("slurm nodes must be >= 1, got ", options.nodes));
  }
  if (options.runinfo_dir.empty()) {
    return absl::InvalidArgumentError("slurm executor: no runinfo directory");
  }
  std::unique_ptr<SlurmExecutor> executor(
      new SlurmExecutor(std::move(options)));
  SlurmExecutorOptions& opts = executor->options_;
  executor->slurm_job_name_ =
      absl::StrCat("taskfork-", opts.job_name, "-", opts.run_uid);
  if (opts.use_srun) {
    TASKFORK_ASSIGN_OR_RETURN(executor->srun_, FindOnPath("srun"));
    TASKFORK_ASSIGN_OR_RETURN(executor->scancel_, FindOnPath("scancel"));
    TASKFORK_ASSIGN_OR_RETURN(executor->squeue_, FindOnPath("squeue"));
  }
  if (opts.worker_binary.empty()) {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n < 0) return ErrnoError(errno, "readlink", "/proc/self/exe");
    opts.worker_binary.assign(exe, static_cast<size_t>(n));
  }

  unsigned char random[32];
  if (::getrandom(random, sizeof(random), 0) != sizeof(random)) {
    return ErrnoError(errno, "getrandom", "slurm worker token");
  }
  executor->token_ = absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(random), sizeof(random)));
  executor->token_path_ = absl::StrCat(opts.runinfo_dir, "/", kWorkerTokenFile);
  {
    TASKFORK_ASSIGN_OR_RETURN(
        OwnedFd fd, OwnedFd::Open(executor->token_path_,
                                  O_WRONLY | O_CREAT | O_EXCL, 0600));
    const std::string& token = executor->token_;
    if (::write(fd.get(), token.data(), token.size()) !=
        static_cast<ssize_t>(token.size())) {
      return ErrnoError(errno == 0 ? EIO : errno, "write",
                        executor->token_path_);
    }
    TASKFORK_RETURN_IF_ERROR(fd.Close());
  }

  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (::inet_pton(AF_INET, opts.listen_host.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "slurm listen host \"", opts.listen_host,
        "\" is not an IPv4 address"));
  }
  executor->listener_.Reset(
      ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!executor->listener_) return ErrnoError(errno, "socket", "TCP");
  const int fd = executor->listener_.get();
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    return ErrnoError(errno, "bind", opts.listen_host);
  }
  if (::listen(fd, 64) != 0) return ErrnoError(errno, "listen", opts.listen_host);
  socklen_t length = sizeof(address);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return ErrnoError(errno, "getsockname", opts.listen_host);
  }
  executor->address_ =
      absl::StrCat(opts.listen_host, ":", ntohs(address.sin_port));
  executor->waiting_.AddFd(fd);
  return executor;
}

SlurmExecutor::~SlurmExecutor() {
  // Closing a connection makes its worker end its tasks and exit.
  for (auto& worker : workers_) {
    if (worker->channel.has_value()) waiting_.RemoveFd(worker->channel->fd());
    worker->channel.reset();
  }
  for (auto& launcher : launchers_) {
    if (!launcher->reaped()) {
      // srun ends once its workers exited; one still waiting for its
      // allocation (or stuck) gets SIGTERM, which makes srun cancel it.
      const absl::StatusOr<ExitStatus> exit = launcher->Join(absl::Seconds(2));
      if (!exit.ok()) (void)launcher->Terminate(absl::Seconds(5));
    }
  }
  if (launched_ && options_.use_srun) CleanUpSlurmJob();
  ::unlink(token_path_.c_str());
}

void SlurmExecutor::CleanUpSlurmJob() {
  const absl::StatusOr<ExitStatus> cancelled =
      RunCommand({scancel_, absl::StrCat("--name=", slurm_job_name_)});
  if (!cancelled.ok() || !cancelled->success()) {
    LOG(WARNING) << "scancel --name=" << slurm_job_name_ << ": "
                 << (cancelled.ok() ? cancelled->ToString()
                                    : cancelled.status().ToString());
  }
  // The job lingers as COMPLETING while slurmd tears the step down.
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (true) {
    // Exit 0 once squeue lists no job of that name.
    const absl::StatusOr<ExitStatus> listed = RunCommand(
        {"/bin/sh", "-c", "test -z \"$(\"$0\" -h -o %i -n \"$1\")\"",
         squeue_, slurm_job_name_});
    if (!listed.ok() || listed->success()) break;
    if (absl::Now() >= give_up) {
      LOG(WARNING) << "slurm job " << slurm_job_name_
                   << " still queued 20 s after scancel";
      break;
    }
    absl::SleepFor(absl::Milliseconds(50));  // squeue has no wait
  }
}

absl::Status SlurmExecutor::Launch() {
  launched_ = true;
  std::vector<std::string> worker = {options_.worker_binary};
  worker.insert(worker.end(), options_.worker_args.begin(),
                options_.worker_args.end());
  worker.push_back(absl::StrCat(kWorkerFlag, "=", address_));
  worker.push_back(absl::StrCat(kWorkerRunInfoFlag, "=", options_.runinfo_dir));
  const int count = options_.use_srun ? 1 : options_.nodes;
  for (int i = 0; i < count; ++i) {
    SpawnOptions spawn;
    if (options_.use_srun) {
      spawn.argv = {srun_,
                    absl::StrCat("--job-name=", slurm_job_name_),
                    absl::StrCat("--nodes=", options_.nodes),
                    "--ntasks-per-node=1"};
      spawn.argv.insert(spawn.argv.end(), options_.srun_args.begin(),
                        options_.srun_args.end());
    }
    spawn.argv.insert(spawn.argv.end(), worker.begin(), worker.end());
    // Its own group: a Ctrl-C at the terminal is the runner's to handle (the
    // tasks end through the workers), not srun's to forward. srun cancels
    // the step when the runner dies.
    spawn.process.own_process_group = true;
    spawn.process.parent_death_signal = SIGTERM;
    spawn.process.name = "taskfork-srun";
    TASKFORK_ASSIGN_OR_RETURN(Process process, Spawn(std::move(spawn)));
    launchers_.push_back(std::make_unique<Process>(std::move(process)));
    waiting_.Add(launchers_.back().get());
  }
  const absl::Time deadline = absl::Now() + options_.connect_timeout;
  while (Authenticated() < options_.nodes) {
    const bool launcher_alive = std::any_of(
        launchers_.begin(), launchers_.end(),
        [](const auto& p) { return !p->reaped(); });
    if (!launcher_alive) {
      // A worker that said why it cannot work and exited left its hello in
      // the socket (and its connection in the backlog): accept and read
      // what is there, without waiting, so that the reason is not lost.
      for (int round = 0; round < 3; ++round) {
        std::vector<int> unused;
        TASKFORK_RETURN_IF_ERROR(Pump(absl::InfinitePast(), {}, &unused));
      }
      break;
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          Authenticated(), " of ", options_.nodes, " slurm worker(s) of job ",
          slurm_job_name_, " connected in ",
          absl::FormatDuration(options_.connect_timeout),
          problems_.empty() ? "" : ": ", absl::StrJoin(problems_, "; ")));
    }
    std::vector<int> unused;
    TASKFORK_RETURN_IF_ERROR(Pump(deadline, {}, &unused));
  }
  return absl::OkStatus();
}

int SlurmExecutor::Authenticated() const {
  int n = 0;
  for (const auto& w : workers_) n += w->authenticated && w->channel ? 1 : 0;
  return n;
}

std::vector<pid_t> SlurmExecutor::worker_pids() const {
  std::vector<pid_t> pids;
  for (const auto& w : workers_) {
    if (w->authenticated && w->channel) pids.push_back(w->hello.pid);
  }
  return pids;
}

std::string SlurmExecutor::Describe(const Worker& worker) const {
  if (!worker.hello.slurm_job_id.empty()) {
    return absl::StrCat("slurm job ", worker.hello.slurm_job_id, " step ",
                        worker.hello.slurm_step_id, " on node ",
                        worker.hello.node);
  }
  return absl::StrCat("worker pid ", worker.hello.pid, " on node ",
                      worker.hello.node);
}

absl::StatusOr<pid_t> SlurmExecutor::Start(RunId run,
                                           const TaskLaunch& launch) {
  CHECK(runs_.count(run) == 0) << "run " << run << " exists already";
  const TaskDefinition& d = *launch.definition;
  if (d.argv.empty() && d.function_name.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", d.id, ": a function task without a registered name (a "
        "lambda) cannot run on a Slurm worker; define it with TASKFORK_TASK "
        "and set TaskDefinition::function_name"));
  }
  if (launch.task_stdin != StdinPolicy::kDevNull) {
    return absl::FailedPreconditionError(absl::StrCat(
        "task ", d.id, ": a Slurm worker has no terminal (interactive mode "
        "needs the local executor)"));
  }
  if (!launched_) TASKFORK_RETURN_IF_ERROR(Launch());
  Worker* chosen = nullptr;
  for (auto& w : workers_) {
    if (!w->authenticated || !w->channel) continue;
    if (chosen == nullptr || w->runs.size() < chosen->runs.size()) {
      chosen = w.get();
    }
  }
  if (chosen == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "task ", d.id, ": no slurm worker of job ", slurm_job_name_,
        " is connected", problems_.empty() ? "" : ": ",
        absl::StrJoin(problems_, "; ")));
  }
  WorkerCommand command;
  command.kind = WorkerCommand::kStart;
  command.run = run;
  WorkerTask& t = command.task;
  t.id = d.id;
  t.function_name = d.function_name;
  t.args = d.args;
  t.argv = d.argv;
  t.env = d.env;
  t.working_directory = d.working_directory;
  t.gtest = d.gtest;
  t.gtest_filter = d.gtest_filter;
  if (launch.shard.has_value()) {
    t.shard = std::make_pair(launch.shard->index, launch.shard->total);
  }
  t.log_path = launch.log_path;
  t.runinfo_dir = launch.runinfo_dir;
  t.reporter_socket = launch.reporter_socket;
  t.reporter_secret_file = launch.reporter_secret_file;
  const absl::Status sent = chosen->channel->Send(command);
  if (!sent.ok()) {
    const std::string why = absl::StrCat(Describe(*chosen), " lost: ",
                                         sent.message());
    LoseWorker(*chosen, why);
    return absl::UnavailableError(absl::StrCat("task ", d.id, ": ", why));
  }
  chosen->runs.insert(run);
  runs_[run] = chosen;
  return 0;
}

void SlurmExecutor::SendOrLose(Worker& worker, const WorkerCommand& command) {
  const absl::Status sent = worker.channel->Send(command);
  if (!sent.ok()) {
    LoseWorker(worker, absl::StrCat(Describe(worker), " lost: ",
                                    sent.message()));
  }
}

void SlurmExecutor::Stop(RunId run, absl::Duration grace) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return;
  WorkerCommand command;
  command.kind = WorkerCommand::kStop;
  command.run = run;
  command.grace = grace;
  SendOrLose(*it->second, command);
}

void SlurmExecutor::Kill(RunId run) {
  auto it = runs_.find(run);
  if (it == runs_.end()) return;
  WorkerCommand command;
  command.kind = WorkerCommand::kKill;
  command.run = run;
  SendOrLose(*it->second, command);
}

void SlurmExecutor::LoseWorker(Worker& worker, const std::string& why) {
  if (!worker.channel.has_value()) return;
  LOG(WARNING) << why;
  if (worker.authenticated) problems_.push_back(why);
  for (RunId run : worker.runs) {
    TaskEnd end;
    end.outcome = absl::UnavailableError(why);
    ended_.emplace_back(run, std::move(end));
    runs_.erase(run);
  }
  worker.runs.clear();
  waiting_.RemoveFd(worker.channel->fd());
  worker.channel.reset();
}

void SlurmExecutor::Accept() {
  while (true) {
    sockaddr_in peer{};
    socklen_t length = sizeof(peer);
    const int fd = ::accept4(listener_.get(), reinterpret_cast<sockaddr*>(&peer),
                             &length, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        LOG(WARNING) << ErrnoError(errno, "accept", address_);
      }
      return;
    }
    auto worker = std::make_unique<Worker>();
    worker->channel.emplace(OwnedFd(fd));
    worker->hello_deadline = absl::Now() + options_.hello_timeout;
    waiting_.AddFd(fd);
    workers_.push_back(std::move(worker));
  }
}

void SlurmExecutor::ReadWorker(Worker& worker) {
  const absl::StatusOr<bool> more = worker.channel->Read();
  if (!worker.authenticated) {
    absl::StatusOr<std::optional<WorkerHello>> hello =
        more.ok() ? worker.channel->Next<WorkerHello>()
                  : absl::StatusOr<std::optional<WorkerHello>>(more.status());
    if (hello.ok() && !hello->has_value() && *more) return;  // partial
    std::string refused;
    if (!hello.ok()) {
      refused = std::string(hello.status().message());
    } else if (!hello->has_value()) {
      refused = "connection closed before the hello";
    } else if ((*hello)->token != token_) {
      refused = "wrong token";
    } else if (!(*hello)->error.empty()) {
      problems_.push_back((*hello)->error);
      LOG(WARNING) << (*hello)->error;
      waiting_.RemoveFd(worker.channel->fd());
      worker.channel.reset();
      return;
    } else {
      worker.hello = **std::move(hello);
      worker.authenticated = true;
      LOG(INFO) << Describe(worker) << " connected (worker pid "
                << worker.hello.pid << ")";
      return;
    }
    LOG(WARNING) << "refused a connection to the slurm executor at "
                 << address_ << ": " << refused;
    waiting_.RemoveFd(worker.channel->fd());
    worker.channel.reset();
    return;
  }
  if (!more.ok()) {
    LoseWorker(worker, absl::StrCat(Describe(worker), " lost: ",
                                    more.status().message()));
    return;
  }
  while (true) {
    absl::StatusOr<std::optional<WorkerTaskEnd>> message =
        worker.channel->Next<WorkerTaskEnd>();
    if (!message.ok()) {
      LoseWorker(worker, absl::StrCat(Describe(worker), " lost: bad message: ",
                                      message.status().message()));
      return;
    }
    if (!message->has_value()) break;
    const WorkerTaskEnd& wire = **message;
    auto it = runs_.find(wire.run);
    if (it == runs_.end() || it->second != &worker) {
      LoseWorker(worker, absl::StrCat(Describe(worker),
                                      " lost: it ended run ", wire.run,
                                      " that it does not run"));
      return;
    }
    absl::StatusOr<TaskEnd> end = FromWire(wire);
    if (!end.ok()) {
      LoseWorker(worker, absl::StrCat(Describe(worker), " lost: ",
                                      end.status().message()));
      return;
    }
    worker.runs.erase(wire.run);
    runs_.erase(it);
    ended_.emplace_back(wire.run, *std::move(end));
  }
  if (!*more) {
    LoseWorker(worker, absl::StrCat(Describe(worker),
                                    " lost: connection closed"));
  }
}

absl::Status SlurmExecutor::Pump(absl::Time deadline,
                                 absl::Span<const int> fds,
                                 std::vector<int>* ready_fds) {
  absl::Time wake = deadline;
  for (const auto& w : workers_) {
    if (w->channel && !w->authenticated) wake = std::min(wake, w->hello_deadline);
  }
  TASKFORK_ASSIGN_OR_RETURN(ProcessSet::Ready ready, waiting_.Wait(wake));
  for (int fd : ready.fds) {
    if (fd == listener_.get()) {
      Accept();
      continue;
    }
    bool is_worker = false;
    for (auto& w : workers_) {
      if (w->channel && w->channel->fd() == fd) {
        is_worker = true;
        ReadWorker(*w);
        break;
      }
    }
    if (!is_worker &&
        std::find(fds.begin(), fds.end(), fd) != fds.end()) {
      ready_fds->push_back(fd);
    }
  }
  for (Process* exited : ready.exited) {
    const absl::StatusOr<ExitStatus> exit = exited->Join();
    waiting_.Remove(exited);
    const std::string what = options_.use_srun ? "srun" : "worker";
    std::string why = absl::StrCat(
        what, " of job ", slurm_job_name_, ": ",
        exit.ok() ? exit->ToString() : exit.status().ToString());
    if (Authenticated() < options_.nodes || !exit.ok() || !exit->success()) {
      LOG(WARNING) << why;
      problems_.push_back(std::move(why));
    }
  }
  const absl::Time now = absl::Now();
  for (auto& w : workers_) {
    if (w->channel && !w->authenticated && now >= w->hello_deadline) {
      LOG(WARNING) << "refused a connection to the slurm executor at "
                   << address_ << ": no hello in "
                   << absl::FormatDuration(options_.hello_timeout);
      waiting_.RemoveFd(w->channel->fd());
      w->channel.reset();
    }
  }
  workers_.erase(std::remove_if(workers_.begin(), workers_.end(),
                                [](const auto& w) {
                                  return !w->channel && w->runs.empty();
                                }),
                 workers_.end());
  return absl::OkStatus();
}

absl::Status SlurmExecutor::Wait(absl::Time deadline,
                                 absl::Span<const int> fds, Events* events) {
  events->ended.clear();
  events->ready_fds.clear();
  for (int fd : fds) waiting_.AddFd(fd);
  absl::Status status;
  while (ended_.empty() && events->ready_fds.empty()) {
    status = Pump(deadline, fds, &events->ready_fds);
    if (!status.ok() || absl::Now() >= deadline) break;
  }
  for (int fd : fds) waiting_.RemoveFd(fd);
  events->ended = std::move(ended_);
  ended_.clear();
  return status;
}

}  // namespace taskfork::runner
