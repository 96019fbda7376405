// SlurmExecutor and its workers without Slurm: the workers are this test
// binary started as local processes (use_srun = false), the same launcher
// seam srun uses; main() below enters worker mode for them.
#include "runner/slurm_executor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/spawn.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/result.h"
#include "runner/slurm_worker.h"
#include "runner/task_definition.h"
#include "runner/task_function.h"
#include "serialize/serialize.h"

TASKFORK_TASK(slurm_test_pass)(taskfork::runner::TaskContext&) {
  return absl::OkStatus();
}

TASKFORK_TASK(slurm_test_fail)(taskfork::runner::TaskContext& context) {
  return absl::InternalError(absl::StrCat("failed with ", context.args()[0]));
}

// Writes its pid into the FIFO args[0] (the test's open blocks until then),
// then sleeps until it is ended.
TASKFORK_TASK(slurm_test_block)(taskfork::runner::TaskContext& context) {
  const int fd = ::open(context.args()[0].c_str(), O_WRONLY | O_CLOEXEC);
  const std::string pid = absl::StrCat(::getpid(), "\n");
  (void)!::write(fd, pid.data(), pid.size());
  ::close(fd);
  ::pause();
  return absl::OkStatus();
}

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using reporter::Result;

std::string TmpDir() { return std::getenv("TEST_TMPDIR"); }

class SlurmExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(TmpDir(), "/run-", ::testing::UnitTest::GetInstance()
                                                ->current_test_info()
                                                ->name());
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0) << dir_;
  }

  std::unique_ptr<SlurmExecutor> MakeExecutor(int workers) {
    SlurmExecutorOptions options;
    options.job_name = "test";
    options.run_uid = "1";
    options.runinfo_dir = dir_;
    options.nodes = workers;
    options.use_srun = false;
    absl::StatusOr<std::unique_ptr<SlurmExecutor>> executor =
        SlurmExecutor::Create(std::move(options));
    EXPECT_THAT(executor.status(), IsOk());
    return executor.ok() ? *std::move(executor) : nullptr;
  }

  TaskLaunch Launch(TaskDefinition definition) {
    definitions_.push_back(
        std::make_unique<TaskDefinition>(std::move(definition)));
    TaskLaunch launch;
    launch.definition = definitions_.back().get();
    launch.runinfo_dir = dir_;
    launch.log_path = dir_ + "/TaskLog." + definitions_.back()->id;
    return launch;
  }

  static TaskDefinition Function(std::string id, std::string name,
                                 std::vector<std::string> args = {}) {
    TaskDefinition d;
    d.id = std::move(id);
    d.function_name = std::move(name);
    d.args = std::move(args);
    return d;
  }

  // Waits (bounded) until every run in `runs` ended.
  std::map<Executor::RunId, TaskEnd> WaitAll(Executor& executor,
                                             std::vector<Executor::RunId> runs) {
    std::map<Executor::RunId, TaskEnd> ends;
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (ends.size() < runs.size() && absl::Now() < deadline) {
      Executor::Events events;
      EXPECT_THAT(executor.Wait(deadline, {}, &events), IsOk());
      for (auto& [run, end] : events.ended) {
        EXPECT_EQ(ends.count(run), 0u) << "run " << run << " ended twice";
        ends.emplace(run, std::move(end));
      }
    }
    EXPECT_EQ(ends.size(), runs.size());
    return ends;
  }

  // Makes a FIFO the block task writes its pid into.
  std::string MakeFifo(const std::string& name) {
    const std::string path = dir_ + "/" + name;
    EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0) << path;
    return path;
  }
  // Blocks until the task opened the FIFO; returns the pid it wrote.
  static pid_t ReadPid(const std::string& fifo) {
    const int fd = ::open(fifo.c_str(), O_RDONLY | O_CLOEXEC);
    char buffer[32] = {};
    const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
    ::close(fd);
    int pid = 0;
    EXPECT_GT(n, 0);
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(buffer), &pid));
    return pid;
  }
  // Waits (bounded) until `pid` (not a child of ours) is gone.
  static bool WaitGone(pid_t pid) {
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (fd < 0) return errno == ESRCH;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, 20000);
    ::close(fd);
    return ready == 1;
  }

  std::string dir_;
  std::vector<std::unique_ptr<TaskDefinition>> definitions_;
};

TEST_F(SlurmExecutorTest, RunsFunctionAndCommandTasksOnWorkers) {
  auto executor = MakeExecutor(2);
  ASSERT_NE(executor, nullptr);
  TaskDefinition command;
  command.id = "cmd";
  command.argv = {"/bin/sh", "-c", "echo out; exit 3"};
  ASSERT_THAT(executor->Start(1, Launch(Function("pass", "slurm_test_pass"))),
              IsOkAndHolds(0));
  ASSERT_THAT(executor->Start(
                  2, Launch(Function("fail", "slurm_test_fail", {"x"}))),
              IsOk());
  ASSERT_THAT(executor->Start(3, Launch(command)), IsOk());
  EXPECT_EQ(executor->worker_pids().size(), 2u);
  auto ends = WaitAll(*executor, {1, 2, 3});
  ASSERT_EQ(ends.size(), 3u);
  ASSERT_THAT(ends[1].outcome.status(), IsOk());
  EXPECT_EQ(ends[1].outcome->result, Result::kPassed);
  ASSERT_TRUE(ends[1].exit.has_value());
  EXPECT_TRUE(ends[1].exit->success());
  ASSERT_THAT(ends[2].outcome.status(), IsOk());
  EXPECT_EQ(ends[2].outcome->result, Result::kFailed);
  EXPECT_THAT(ends[2].outcome->reason, HasSubstr("failed with x"));
  ASSERT_THAT(ends[3].outcome.status(), IsOk());
  EXPECT_EQ(ends[3].outcome->result, Result::kFailed);
  EXPECT_THAT(ends[3].outcome->reason, HasSubstr("3"));
}

TEST_F(SlurmExecutorTest, LambdaWithoutNameIsFailedPrecondition) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  TaskDefinition lambda;
  lambda.id = "lam";
  lambda.body = [](TaskContext&) { return absl::OkStatus(); };
  EXPECT_THAT(executor->Start(1, Launch(lambda)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("task lam: a function task without a "
                                 "registered name")));
  TaskLaunch interactive = Launch(Function("i", "slurm_test_pass"));
  interactive.task_stdin = StdinPolicy::kControllingTerminal;
  EXPECT_THAT(executor->Start(2, interactive),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no terminal")));
}

TEST_F(SlurmExecutorTest, UnknownFunctionOnWorkerEndsWithItsName) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  ASSERT_THAT(executor->Start(1, Launch(Function("u", "no_such_function"))),
              IsOk());
  auto ends = WaitAll(*executor, {1});
  EXPECT_THAT(ends[1].outcome.status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no task function \"no_such_function\"")));
}

TEST_F(SlurmExecutorTest, StopEndsTheTaskOnItsWorker) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  const std::string fifo = MakeFifo("stop");
  ASSERT_THAT(executor->Start(
                  1, Launch(Function("b", "slurm_test_block", {fifo}))),
              IsOk());
  const pid_t task = ReadPid(fifo);
  executor->Stop(1, absl::Seconds(5));
  auto ends = WaitAll(*executor, {1});
  ASSERT_TRUE(ends[1].exit.has_value());
  EXPECT_EQ(ends[1].exit->signal, SIGTERM);
  EXPECT_EQ(ends[1].exit->pid, task);
  EXPECT_TRUE(WaitGone(task));
}

TEST_F(SlurmExecutorTest, KilledWorkerErrorsItsTasksAndNothingIsLeft) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  const std::string fifo = MakeFifo("lost");
  ASSERT_THAT(executor->Start(
                  1, Launch(Function("b", "slurm_test_block", {fifo}))),
              IsOk());
  const pid_t task = ReadPid(fifo);
  ASSERT_EQ(executor->worker_pids().size(), 1u);
  const pid_t worker = executor->worker_pids()[0];
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  auto ends = WaitAll(*executor, {1});
  EXPECT_THAT(ends[1].outcome.status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr(absl::StrCat("worker pid ", worker,
                                              " on node "))));
  EXPECT_THAT(ends[1].outcome.status().message(),
              HasSubstr("lost: connection closed"));
  EXPECT_TRUE(WaitGone(task)) << "task pid " << task;
  // Later tasks have no worker left.
  EXPECT_THAT(executor->Start(2, Launch(Function("p", "slurm_test_pass"))),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("no slurm worker of job taskfork-test-1")));
}

TEST_F(SlurmExecutorTest, DestroyingTheExecutorEndsWorkersAndTasks) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  const std::string fifo = MakeFifo("end");
  ASSERT_THAT(executor->Start(
                  1, Launch(Function("b", "slurm_test_block", {fifo}))),
              IsOk());
  const pid_t task = ReadPid(fifo);
  const pid_t worker = executor->worker_pids()[0];
  executor.reset();
  EXPECT_TRUE(WaitGone(task));
  EXPECT_TRUE(WaitGone(worker));
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/" + kWorkerTokenFile).c_str(), &st), 0)
      << "token file left";
}

TEST_F(SlurmExecutorTest, WorkerThatCannotWriteTheRunInfoDirSaysSo) {
  // The worker runs in a mount namespace where the runinfo directory is
  // read-only (root writes through permission bits).
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  SlurmExecutorOptions options;
  options.job_name = "test";
  options.run_uid = "1";
  options.runinfo_dir = dir_;
  options.use_srun = false;
  options.worker_binary = "/usr/bin/unshare";
  options.worker_args = {
      "-m", "/bin/sh", "-c",
      absl::StrCat("mount --bind ", dir_, " ", dir_, " && mount -o "
                   "remount,bind,ro ", dir_, " && exec \"$0\" \"$@\""),
      std::string(exe, n)};
  absl::StatusOr<std::unique_ptr<SlurmExecutor>> executor =
      SlurmExecutor::Create(std::move(options));
  ASSERT_THAT(executor.status(), IsOk());
  EXPECT_THAT(
      (*executor)->Start(1, Launch(Function("p", "slurm_test_pass"))),
      StatusIs(absl::StatusCode::kUnavailable,
               AllOf(HasSubstr(absl::StrCat(" cannot write ", dir_, ": open ",
                                            dir_, "/.worker-")),
                     HasSubstr("EROFS"))));
}

TEST_F(SlurmExecutorTest, WorkersThatDoNotConnectInTimeFailStart) {
  SlurmExecutorOptions options;
  options.job_name = "slow";
  options.run_uid = "1";
  options.runinfo_dir = dir_;
  options.use_srun = false;
  options.worker_binary = "/bin/sh";  // a launcher that never connects
  options.worker_args = {"-c", "exec sleep 300"};
  options.connect_timeout = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<SlurmExecutor>> executor =
      SlurmExecutor::Create(std::move(options));
  ASSERT_THAT(executor.status(), IsOk());
  EXPECT_THAT(
      (*executor)->Start(1, Launch(Function("p", "slurm_test_pass"))),
      StatusIs(absl::StatusCode::kDeadlineExceeded,
               HasSubstr("0 of 1 slurm worker(s) of job taskfork-slow-1 "
                         "connected in 200ms")));
}

// A raw client of the executor's listener.
OwnedFd ConnectTo(const std::string& address) {
  absl::StatusOr<OwnedFd> fd = ConnectTcp(address);
  EXPECT_THAT(fd.status(), IsOk());
  return fd.ok() ? *std::move(fd) : OwnedFd();
}

// Pumps the executor until it closed `client` (its Wait returns the fd as
// ready on hang-up), then checks the worker still serves tasks.
void ExpectRefused(SlurmExecutor& executor, OwnedFd client,
                   Executor::RunId probe_run, TaskLaunch probe) {
  Executor::Events events;
  ASSERT_THAT(executor.Wait(absl::Now() + absl::Seconds(20), {client.get()},
                            &events),
              IsOk());
  ASSERT_EQ(events.ready_fds.size(), 1u);
  char byte;
  EXPECT_EQ(::read(client.get(), &byte, 1), 0) << "not closed by the executor";
  ASSERT_THAT(executor.Start(probe_run, probe), IsOk());
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  bool ended = false;
  while (!ended && absl::Now() < deadline) {
    ASSERT_THAT(executor.Wait(deadline, {}, &events), IsOk());
    for (auto& [run, end] : events.ended) ended |= run == probe_run;
  }
  EXPECT_TRUE(ended);
}

void SendFrame(int fd, const std::string& payload, uint32_t length) {
  std::string frame(4, '\0');
  for (int i = 0; i < 4; ++i) frame[i] = static_cast<char>(length >> (8 * i));
  frame += payload;
  ASSERT_EQ(::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(frame.size()));
}

TEST_F(SlurmExecutorTest, RefusesWrongTokenGarbageAndOversizeHellos) {
  auto executor = MakeExecutor(1);
  ASSERT_NE(executor, nullptr);
  ASSERT_THAT(executor->Start(1, Launch(Function("p1", "slurm_test_pass"))),
              IsOk());
  WaitAll(*executor, {1});

  WorkerHello impostor;
  impostor.token = "not the token";
  impostor.node = "evil";
  OwnedFd a = ConnectTo(executor->address());
  const std::string bytes = serialize::Encode(impostor);
  SendFrame(a.get(), bytes, bytes.size());
  ExpectRefused(*executor, std::move(a), 2, Launch(Function("p2", "slurm_test_pass")));

  OwnedFd b = ConnectTo(executor->address());
  SendFrame(b.get(), "garbage!", 8);
  ExpectRefused(*executor, std::move(b), 3, Launch(Function("p3", "slurm_test_pass")));

  OwnedFd c = ConnectTo(executor->address());
  SendFrame(c.get(), "", 0xffffffffu);
  ExpectRefused(*executor, std::move(c), 4, Launch(Function("p4", "slurm_test_pass")));

  OwnedFd d = ConnectTo(executor->address());
  SendFrame(d.get(), "xy", 100);  // then closes mid-frame
  ::shutdown(d.get(), SHUT_WR);
  ExpectRefused(*executor, std::move(d), 5, Launch(Function("p5", "slurm_test_pass")));
  EXPECT_EQ(executor->worker_pids().size(), 1u);
}

TEST(SlurmExecutorCreate, ChecksOptionsAndTheSlurmCommands) {
  const std::string dir = TmpDir() + "/create";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  SlurmExecutorOptions zero;
  zero.runinfo_dir = dir;
  zero.nodes = 0;
  EXPECT_THAT(SlurmExecutor::Create(zero),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("slurm nodes must be >= 1, got 0")));
  SlurmExecutorOptions no_dir;
  EXPECT_THAT(SlurmExecutor::Create(no_dir),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("no runinfo directory")));
  SlurmExecutorOptions host;
  host.runinfo_dir = dir;
  host.use_srun = false;
  host.listen_host = "localhost";
  EXPECT_THAT(SlurmExecutor::Create(host),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"localhost\" is not an IPv4 address")));
  SlurmExecutorOptions missing_dir;
  missing_dir.runinfo_dir = dir + "/missing";
  missing_dir.use_srun = false;
  EXPECT_THAT(SlurmExecutor::Create(missing_dir),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(dir + "/missing/slurm_worker.token")));
  const std::string path = std::getenv("PATH");
  ASSERT_EQ(::setenv("PATH", "/nonexistent", 1), 0);
  SlurmExecutorOptions no_srun;
  no_srun.runinfo_dir = dir;
  EXPECT_THAT(SlurmExecutor::Create(no_srun),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("srun is not on PATH (/nonexistent)")));
  ASSERT_EQ(::setenv("PATH", path.c_str(), 1), 0);
}

// A worker of the test's own, speaking the protocol by hand: the executor's
// launcher is /bin/true (no real worker), so every run goes to it.
class FakeWorkerTest : public SlurmExecutorTest {
 protected:
  void SetUp() override {
    SlurmExecutorTest::SetUp();
    SlurmExecutorOptions options;
    options.job_name = "fake";
    options.run_uid = "1";
    options.runinfo_dir = dir_;
    options.use_srun = false;
    options.worker_binary = "/bin/true";
    absl::StatusOr<std::unique_ptr<SlurmExecutor>> executor =
        SlurmExecutor::Create(std::move(options));
    ASSERT_THAT(executor.status(), IsOk());
    executor_ = *std::move(executor);
    absl::StatusOr<OwnedFd> fd = ConnectTcp(executor_->address());
    ASSERT_THAT(fd.status(), IsOk());
    channel_.emplace(*std::move(fd));
    WorkerHello hello;
    const int token = ::open((dir_ + "/" + kWorkerTokenFile).c_str(),
                             O_RDONLY | O_CLOEXEC);
    char buffer[128];
    const ssize_t n = ::read(token, buffer, sizeof(buffer));
    ::close(token);
    ASSERT_GT(n, 0);
    hello.token.assign(buffer, n);
    hello.node = "n1";
    hello.pid = 42;
    hello.slurm_job_id = "12";
    hello.slurm_step_id = "0";
    ASSERT_THAT(channel_->Send(hello), IsOk());
  }

  // Starts run 1 (the pass function) and reads its command.
  WorkerCommand StartOne() {
    EXPECT_THAT(executor_->Start(
                    1, Launch(Function("t1", "slurm_test_pass", {"a", "b"}))),
                IsOk());
    while (true) {
      absl::StatusOr<std::optional<WorkerCommand>> next =
          channel_->Next<WorkerCommand>();
      EXPECT_THAT(next.status(), IsOk());
      if (!next.ok()) return {};
      if (next->has_value()) return **next;
      absl::StatusOr<bool> more = channel_->Read();
      EXPECT_THAT(more, IsOkAndHolds(true));
      if (!more.ok() || !*more) return {};
    }
  }

  // Waits for run 1's end; returns its outcome's status.
  absl::Status EndOfOne() {
    auto ends = WaitAll(*executor_, {1});
    return ends[1].outcome.status();
  }

  std::unique_ptr<SlurmExecutor> executor_;
  std::optional<WorkerChannel> channel_;
};

TEST_F(FakeWorkerTest, CommandCarriesTheTaskAndItsEndComesBack) {
  const WorkerCommand command = StartOne();
  EXPECT_EQ(command.kind, WorkerCommand::kStart);
  EXPECT_EQ(command.run, 1u);
  EXPECT_EQ(command.task.id, "t1");
  EXPECT_EQ(command.task.function_name, "slurm_test_pass");
  EXPECT_EQ(command.task.args, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(command.task.log_path, dir_ + "/TaskLog.t1");
  executor_->Stop(1, absl::Seconds(3));
  executor_->Kill(1);
  for (int kind : {WorkerCommand::kStop, WorkerCommand::kKill}) {
    std::optional<WorkerCommand> next;
    while (!next.has_value()) {
      absl::StatusOr<std::optional<WorkerCommand>> got =
          channel_->Next<WorkerCommand>();
      ASSERT_THAT(got.status(), IsOk());
      if (got->has_value()) {
        next = **got;
      } else {
        ASSERT_THAT(channel_->Read(), IsOkAndHolds(true));
      }
    }
    EXPECT_EQ(next->kind, kind);
    EXPECT_EQ(next->run, 1u);
    if (kind == WorkerCommand::kStop) {
      EXPECT_EQ(next->grace, absl::Seconds(3));
    }
  }
  WorkerTaskEnd end;
  end.run = 1;
  end.outcome = TaskOutcome{static_cast<int>(Result::kPassx), "fine"};
  ASSERT_THAT(channel_->Send(end), IsOk());
  auto ends = WaitAll(*executor_, {1});
  ASSERT_THAT(ends[1].outcome.status(), IsOk());
  EXPECT_EQ(ends[1].outcome->result, Result::kPassx);
  EXPECT_EQ(ends[1].outcome->reason, "fine");
  EXPECT_FALSE(ends[1].exit.has_value());
}

TEST_F(FakeWorkerTest, EndOfARunItDoesNotRunLosesTheWorker) {
  StartOne();
  WorkerTaskEnd end;
  end.run = 99;
  ASSERT_THAT(channel_->Send(end), IsOk());
  EXPECT_THAT(EndOfOne(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("slurm job 12 step 0 on node n1 lost: it "
                                 "ended run 99 that it does not run")));
}

TEST_F(FakeWorkerTest, UnknownResultLosesTheWorker) {
  StartOne();
  WorkerTaskEnd end;
  end.run = 1;
  end.outcome = TaskOutcome{99, ""};
  ASSERT_THAT(channel_->Send(end), IsOk());
  EXPECT_THAT(EndOfOne(), StatusIs(absl::StatusCode::kUnavailable,
                                   HasSubstr("lost: run 1: result 99")));
}

TEST_F(FakeWorkerTest, GarbageLosesTheWorker) {
  StartOne();
  ASSERT_THAT(channel_->SendPayload("garbage"), IsOk());
  EXPECT_THAT(EndOfOne(), StatusIs(absl::StatusCode::kUnavailable,
                                   HasSubstr("lost: bad message: ")));
}

TEST_F(FakeWorkerTest, FrameCutByTheCloseLosesTheWorker) {
  StartOne();
  SendFrame(channel_->fd(), "xy", 100);
  channel_.reset();
  EXPECT_THAT(EndOfOne(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("slurm job 12 step 0 on node n1 lost: "
                                 "connection closed in the middle of a "
                                 "frame")));
}

// The worker alone, against a listener of the test's.
class WorkerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(TmpDir(), "/worker-",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
    listener_.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address),
                     sizeof(address)),
              0);
    ASSERT_EQ(::listen(listener_.get(), 4), 0);
    socklen_t length = sizeof(address);
    ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address),
                  &length);
    address_ = absl::StrCat("127.0.0.1:", ntohs(address.sin_port));
  }

  void WriteToken(const std::string& token) {
    const std::string path = dir_ + "/" + kWorkerTokenFile;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, token.data(), token.size()),
              static_cast<ssize_t>(token.size()));
    ::close(fd);
  }

  Process StartWorker(std::vector<std::string> extra = {}) {
    char exe[4096];
    const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    SpawnOptions options;
    options.argv = {std::string(exe, n),
                    absl::StrCat(kWorkerFlag, "=", address_),
                    absl::StrCat(kWorkerRunInfoFlag, "=", dir_)};
    options.argv.insert(options.argv.end(), extra.begin(), extra.end());
    absl::StatusOr<Process> process = Spawn(std::move(options));
    EXPECT_THAT(process.status(), IsOk());
    return *std::move(process);
  }

  WorkerChannel AcceptHello(WorkerHello* hello) {
    WorkerChannel channel(OwnedFd(::accept4(listener_.get(), nullptr, nullptr,
                                            SOCK_CLOEXEC)));
    while (true) {
      absl::StatusOr<std::optional<WorkerHello>> next =
          channel.Next<WorkerHello>();
      EXPECT_THAT(next.status(), IsOk());
      if (!next.ok() || next->has_value()) {
        if (next.ok()) *hello = **next;
        break;
      }
      absl::StatusOr<bool> more = channel.Read();
      EXPECT_THAT(more.status(), IsOk());
      if (!more.ok() || !*more) break;
    }
    return channel;
  }

  std::string dir_;
  std::string address_;
  OwnedFd listener_;
};

TEST_F(WorkerTest, SaysHelloWithTheTokenAndExitsWhenTheRunnerCloses) {
  WriteToken("secret");
  Process worker = StartWorker();
  WorkerHello hello;
  {
    WorkerChannel channel = AcceptHello(&hello);
    EXPECT_EQ(hello.token, "secret");
    EXPECT_EQ(hello.pid, worker.pid());
    EXPECT_TRUE(hello.error.empty()) << hello.error;
  }
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 0);
}

TEST_F(WorkerTest, ExitsWithFourOnAMalformedCommand) {
  WriteToken("secret");
  Process worker = StartWorker();
  WorkerHello hello;
  WorkerChannel channel = AcceptHello(&hello);
  ASSERT_THAT(channel.SendPayload("not a command"), IsOk());
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 4);
}

TEST_F(WorkerTest, ExitsWithFourOnAnOversizeFrame) {
  WriteToken("secret");
  Process worker = StartWorker();
  WorkerHello hello;
  WorkerChannel channel = AcceptHello(&hello);
  const char header[4] = {'\xff', '\xff', '\xff', '\x7f'};
  ASSERT_EQ(::send(channel.fd(), header, 4, MSG_NOSIGNAL), 4);
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 4);
}

TEST_F(WorkerTest, ExitsWithFourOnAnUnknownCommandOrARunStartedTwice) {
  WriteToken("secret");
  {
    Process worker = StartWorker();
    WorkerHello hello;
    WorkerChannel channel = AcceptHello(&hello);
    WorkerCommand unknown;
    unknown.kind = 7;
    ASSERT_THAT(channel.Send(unknown), IsOk());
    absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
    ASSERT_THAT(exit.status(), IsOk());
    EXPECT_EQ(exit->exit_code, 4);
  }
  Process worker = StartWorker();
  WorkerHello hello;
  WorkerChannel channel = AcceptHello(&hello);
  WorkerCommand start;
  start.run = 5;
  start.task.id = "s";
  start.task.argv = {"/bin/sleep", "300"};
  start.task.runinfo_dir = dir_;
  start.task.log_path = dir_ + "/TaskLog.s";
  ASSERT_THAT(channel.Send(start), IsOk());
  ASSERT_THAT(channel.Send(start), IsOk());
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 4);
}

TEST_F(WorkerTest, WithoutATokenFileExitsWithThreeNamingIt) {
  Process worker = StartWorker();
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 3);
}

TEST_F(WorkerTest, WithoutARunnerExitsWithThree) {
  WriteToken("secret");
  listener_.Reset();  // nothing listens on address_ any more
  Process worker = StartWorker();
  absl::StatusOr<ExitStatus> exit = worker.Join(absl::Seconds(20));
  ASSERT_THAT(exit.status(), IsOk());
  EXPECT_EQ(exit->exit_code, 3);
}

TEST(WorkerFlags, MissingRunInfoIsExitTwo) {
  std::string a0 = "w", a1 = std::string(kWorkerFlag) + "=127.0.0.1:1";
  char* argv[] = {a0.data(), a1.data(), nullptr};
  EXPECT_EQ(MaybeRunSlurmWorker(2, argv), std::optional<int>(2));
  char* plain[] = {a0.data(), nullptr};
  EXPECT_EQ(MaybeRunSlurmWorker(1, plain), std::nullopt);
}

TEST(WorkerWire, TaskEndRoundTripsAndRejectsUnknownResults) {
  TaskEnd end;
  end.outcome = TaskFunctionOutcome{Result::kFailed, "why"};
  ExitStatus exit;
  exit.pid = 12;
  exit.exit_code = 3;
  end.exit = exit;
  WorkerTaskEnd wire = ToWire(7, end);
  absl::StatusOr<WorkerTaskEnd> decoded =
      serialize::Decode<WorkerTaskEnd>(serialize::Encode(wire));
  ASSERT_THAT(decoded.status(), IsOk());
  absl::StatusOr<TaskEnd> back = FromWire(*decoded);
  ASSERT_THAT(back.status(), IsOk());
  EXPECT_EQ(back->outcome->result, Result::kFailed);
  EXPECT_EQ(back->outcome->reason, "why");
  EXPECT_EQ(back->exit->pid, 12);
  EXPECT_EQ(back->exit->exit_code, 3);
  wire.outcome = TaskOutcome{99, "x"};
  EXPECT_THAT(FromWire(wire), StatusIs(absl::StatusCode::kInvalidArgument,
                                       HasSubstr("result 99")));
}

}  // namespace
}  // namespace taskfork::runner

int main(int argc, char** argv) {
  if (auto code = taskfork::runner::MaybeRunSlurmWorker(argc, argv)) {
    return *code;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
