// Faults around the runner, through the real runner binary: the reporter
// server killed mid-run, Ctrl-C once and twice, every kind of malformed job
// spec, garbage and oversize frames from a foreign program on the reporter
// socket, and a connection from another uid.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/fsuid.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/frame.h"
#include "reporter/report.pb.h"
#include "tests/faults/fault_harness.h"
#include "tests/run_leftovers.h"

namespace taskfork::faults {
namespace {

using ::testing::HasSubstr;

// Waits (inotify, no polling loop) until the file at `path` contains
// `needle`, at most `timeout`. True if it does.
bool WaitForFileContaining(const std::string& path, const std::string& needle,
                           absl::Duration timeout) {
  const int fd = ::inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
  if (fd < 0) return false;
  const int watch = ::inotify_add_watch(fd, path.c_str(), IN_MODIFY);
  const absl::Time deadline = absl::Now() + timeout;
  bool found = false;
  while (watch >= 0) {
    if (absl::StrContains(ReadFile(path), needle)) {
      found = true;
      break;
    }
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) break;
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, absl::ToInt64Milliseconds(left) + 1) < 0 &&
        errno != EINTR) {
      break;
    }
    char events[4096];
    while (::read(fd, events, sizeof(events)) > 0) {
    }
  }
  ::close(fd);
  return found;
}

// Connects to the Unix socket at `path` (symlinks are followed). Returns the
// descriptor, or -errno.
int ConnectTo(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    ::close(fd);
    return -ENAMETOOLONG;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int error = errno;
    ::close(fd);
    return -error;
  }
  return fd;
}

// Reads what the server sends until it closes the connection (at most 30 s).
// Returns the bytes, and whether the connection was closed.
std::pair<std::string, bool> ReadUntilClosed(int fd) {
  std::string bytes;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (true) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return {bytes, false};
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, absl::ToInt64Milliseconds(left) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return {bytes, false};
    char buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      bytes.append(buffer, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return {bytes, n == 0 || errno == ECONNRESET};
  }
}

std::string LengthPrefix(uint32_t length) {
  std::string header(4, '\0');
  for (int i = 0; i < 4; ++i) header[i] = static_cast<char>(length >> (8 * i));
  return header;
}

std::string HelloFrame(const std::string& task_id) {
  reporter::ClientMessage hello;
  hello.mutable_hello()->set_role(reporter::Hello::ROLE_CLIENT);
  hello.mutable_hello()->set_task_id(task_id);
  hello.mutable_hello()->set_pid(::getpid());
  std::string frame;
  reporter::AppendFrame(hello, &frame);
  return frame;
}

class RunnerFaultTest : public FaultTest {
 protected:
  // The path a foreign program connects to: <run dir>/reporter.sock, or
  // where that symlink points when it is too long for sun_path (as the
  // report client does).
  std::string SocketPath(const Runner& runner) const {
    const std::string target = SocketTarget(runner);
    return target.empty() ? RunDir(runner) + "/reporter.sock" : target;
  }

  // The pid the JobLog names for the reporter server.
  pid_t ReporterPid(const Runner& runner, const std::string& job) {
    const std::string joblog = ReadFile(RunDir(runner) + "/JobLog." + job);
    std::smatch match;
    if (!std::regex_search(joblog, match,
                           std::regex("reporter server pid ([0-9]+)"))) {
      ADD_FAILURE() << "no reporter pid in the JobLog:\n" << joblog;
      return -1;
    }
    pid_t pid = -1;
    EXPECT_TRUE(absl::SimpleAtoi(match[1].str(), &pid));
    return pid;
  }
};

TEST_F(RunnerFaultTest, ReporterKilledMidRunExitsThreeAndKeepsEveryResult) {
  AnnounceFifo announce(dir() + "/announce");
  GoFifo go(dir() + "/go");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"lossy\"\nmax_parallel: 1\n"
           "task { id: \"first\" function { name: \"fault_block\" args: \"",
           announce.path(), "\" args: \"", go.path(), "\" } }\n"
           "task { id: \"second\" function { name: \"fault_shm_queue\" "
           "args: \"4096\" } }\n"
           "task { id: \"third\" function { name: \"fault_segv\" } }\n"))});
  ASSERT_EQ(announce.Read(1).size(), 1u);
  const std::string socket = SocketTarget(runner);
  const pid_t reporter = ReporterPid(runner, "lossy");
  ASSERT_GT(reporter, 0);
  // Release the first task only once the server has exited: the runner must
  // meet the death mid-run, not first at finalize, also where exiting takes
  // long (TSan's mappings).
  const absl::Status killed =
      tests::KillAndAwaitExit(reporter, absl::Seconds(60));
  ASSERT_TRUE(killed.ok()) << killed;
  go.Release();
  EXPECT_EQ(runner.Finish(), 3);

  const Struct results = Results(runner);
  ExpectEveryTask(results, {"first", "second", "third"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("first")), "passed");
  EXPECT_EQ(ResultOf(tasks.at("second")), "passed");
  EXPECT_EQ(ResultOf(tasks.at("third")), "errored");
  EXPECT_THAT(Stdout(), HasSubstr("reporter server died mid-run"));
  EXPECT_THAT(ReadFile(RunDir(runner) + "/TaskLog.second"),
              HasSubstr("task second passed"));
  ExpectNoSocketLeft(runner, socket);
}

TEST_F(RunnerFaultTest, InterruptOnceAbortsRunningBlocksPendingKillsFamilies) {
  AnnounceFifo announce(dir() + "/announce");
  GoFifo go(dir() + "/go");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"ctrlc\"\nmax_parallel: 2\ntermination_grace: \"0.5s\"\n"
           "task { id: \"blocked\" function { name: \"fault_block\" args: \"",
           announce.path(), "\" args: \"", go.path(), "\" } }\n"
           "task { id: \"family\" function { name: \"fault_stubborn_family\" "
           "args: \"", announce.path(), "\" args: \"2\" } }\n"
           "task { id: \"pending\" function { name: \"fault_shm_queue\" "
           "args: \"4096\" } }\n"))});
  const std::vector<pid_t> pids = announce.Read(6);
  ASSERT_EQ(pids.size(), 6u);
  const std::string socket = SocketTarget(runner);
  runner.SignalGroup(SIGINT);  // Ctrl-C on a terminal: the whole group.
  EXPECT_EQ(runner.Finish(), 1);

  const Struct results = Results(runner);
  ExpectEveryTask(results, {"blocked", "family", "pending"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("blocked")), "aborted");
  EXPECT_EQ(ReasonOf(tasks.at("blocked")), "aborted by SIGINT");
  EXPECT_EQ(ResultOf(tasks.at("family")), "aborted");
  EXPECT_EQ(ReasonOf(tasks.at("family")), "aborted by SIGINT");
  EXPECT_EQ(ResultOf(tasks.at("pending")), "blocked");
  EXPECT_EQ(ReasonOf(tasks.at("pending")),
            "not started: the job was interrupted by SIGINT");
  for (pid_t pid : pids) EXPECT_TRUE(ProcessGone(pid)) << "pid " << pid;
  EXPECT_THAT(Stdout(), HasSubstr("job interrupted by SIGINT"));
  ExpectNoSocketLeft(runner, socket);
}

TEST_F(RunnerFaultTest, InterruptTwiceKillsEverythingAtOnce) {
  AnnounceFifo announce(dir() + "/announce");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"twice\"\ntermination_grace: \"1h\"\n"
           "task { id: \"family\" function { name: \"fault_stubborn_family\" "
           "args: \"", announce.path(), "\" args: \"3\" } }\n"
           "task { id: \"hang\" function { name: \"fault_hang\" } }\n"))});
  const std::vector<pid_t> pids = announce.Read(7);
  ASSERT_EQ(pids.size(), 7u);
  const absl::Time start = absl::Now();
  runner.Signal(SIGINT);
  // The second SIGINT only after the runner took the first (else the kernel
  // merges the two pending signals into one).
  ASSERT_TRUE(WaitForFileContaining(RunDir(runner) + "/JobLog.twice",
                                    "SIGINT: aborting running tasks",
                                    absl::Seconds(60)));
  runner.Signal(SIGINT);
  EXPECT_EQ(runner.Finish(), 1);
  EXPECT_LT(absl::Now() - start, absl::Minutes(10)) << "waited for the grace";

  const Struct results = Results(runner);
  ExpectEveryTask(results, {"family", "hang"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("family")), "aborted");
  EXPECT_EQ(ReasonOf(tasks.at("family")), "killed by a second SIGINT");
  EXPECT_EQ(ResultOf(tasks.at("hang")), "aborted");
  for (pid_t pid : pids) EXPECT_TRUE(ProcessGone(pid)) << "pid " << pid;
}

struct BadSpec {
  const char* what;
  std::string text;
  std::vector<std::string> messages;
};

TEST_F(RunnerFaultTest, EveryMalformedSpecExitsTwoBeforeAnythingRuns) {
  const std::vector<BadSpec> specs = {
      {"syntax error", "name: \"x\"\ntask {\n  id: \"a\"\n  function { name: }\n}\n",
       {"job.textpb:4:"}},
      {"unknown field", "task { id: \"a\" bogus: 1 function { name: \"fault_hang\" } }\n",
       {"job.textpb:1:", "bogus"}},
      {"duplicate ids",
       "task { id: \"a\" function { name: \"fault_hang\" } }\n"
       "task { id: \"a\" function { name: \"fault_hang\" } }\n",
       {"job.textpb:2:", "duplicate task id \"a\" (first used on line 1)"}},
      {"unknown function", "task { id: \"a\" function { name: \"nope\" } }\n",
       {"job.textpb:1:", "task \"a\": unknown function \"nope\"; known "
                         "functions: fault_block, fault_busy, "
                         "fault_children_report, fault_fill_disk, "
                         "fault_fork_many, fault_hang"}},
      {"missing executable",
       "task { id: \"c\" command { argv: \"/no/such/program\" } }\n",
       {"job.textpb:1:", "task \"c\": executable \"/no/such/program\" not "
                         "found or not executable"}},
      {"command without argv", "task { id: \"c\" command { } }\n",
       {"task \"c\": command has no argv"}},
      {"bad working directory",
       "task { id: \"c\" command { argv: \"/bin/true\" working_directory: "
       "\"/no/such/dir\" } }\n",
       {"working_directory \"/no/such/dir\" is not a directory"}},
      {"neither kind", "task { id: \"n\" }\n",
       {"task \"n\" has neither 'function { ... }' nor 'command { ... }'"}},
      {"bad task timeout",
       "task { id: \"t\" timeout: \"soon\" function { name: \"fault_hang\" } }\n",
       {"job.textpb:1:", "timeout \"soon\" of task \"t\" is not a positive "
                         "duration"}},
      {"bad default timeout",
       "default_timeout: \"-5s\"\ntask { function { name: \"fault_hang\" } }\n",
       {"job.textpb:1:", "default_timeout \"-5s\" is not a positive duration"}},
      {"infinite grace",
       "termination_grace: \"inf\"\ntask { function { name: \"fault_hang\" } }\n",
       {"termination_grace \"inf\" is not a finite positive duration"}},
      {"negative max_parallel",
       "max_parallel: -1\ntask { function { name: \"fault_hang\" } }\n",
       {"max_parallel must be >= 0"}},
      {"bad job name",
       "name: \"a/b\"\ntask { function { name: \"fault_hang\" } }\n",
       {"invalid job name \"a/b\""}},
      {"bad task id", "task { id: \"../x\" function { name: \"fault_hang\" } }\n",
       {"invalid task id \"../x\""}},
      {"no tasks", "name: \"empty\"\n", {"the job has no tasks"}},
      {"every problem at once",
       "task { id: \"a\" function { name: \"nope\" } }\n"
       "task { id: \"a\" timeout: \"x\" command { argv: \"/no/such\" } }\n",
       {"unknown function \"nope\"", "duplicate task id \"a\"",
        "timeout \"x\"", "executable \"/no/such\""}},
  };
  struct stat st;
  for (const BadSpec& spec : specs) {
    SCOPED_TRACE(spec.what);
    EXPECT_EQ(Run(spec.text), 2);
    const std::string err = Stderr();
    EXPECT_THAT(err, HasSubstr("runner: bad job spec:"));
    for (const std::string& message : spec.messages) {
      EXPECT_THAT(err, HasSubstr(message));
    }
    EXPECT_NE(::stat((dir() + "/runs").c_str(), &st), 0)
        << "a run directory was created";
  }
  // A spec that is not there at all.
  Runner missing = StartRunner({RunInfoFlag(), dir() + "/missing.textpb"});
  EXPECT_EQ(missing.Finish(), 2);
  EXPECT_THAT(Stderr(), HasSubstr(dir() + "/missing.textpb"));
  EXPECT_NE(::stat((dir() + "/runs").c_str(), &st), 0);
}

TEST_F(RunnerFaultTest, GarbageFromAForeignProgramClosesOnlyItsConnection) {
  AnnounceFifo announce(dir() + "/announce");
  GoFifo go(dir() + "/go");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"garbage\"\n"
           "task { id: \"guarded\" function { name: \"fault_block\" args: \"",
           announce.path(), "\" args: \"", go.path(), "\" } }\n"
           "task { id: \"other\" function { name: \"fault_shm_queue\" "
           "args: \"4096\" } }\n"))});
  ASSERT_EQ(announce.Read(1).size(), 1u);
  const std::string socket = SocketTarget(runner);
  const std::string socket_path = SocketPath(runner);

  // A foreign program: a separate process that attacks the socket and
  // exits with the number of connections the server did not close.
  auto attacker = Process::Start({}, [socket_path]() -> int {
    std::string random_bytes(64, '\0');
    for (size_t i = 0; i < random_bytes.size(); ++i) {
      random_bytes[i] = static_cast<char>(i * 131 + 7);
    }
    const std::vector<std::pair<const char*, std::string>> attacks = {
        {"random bytes", random_bytes},
        {"oversize header", LengthPrefix(0xfffffff0u)},
        {"17 MiB frame header", LengthPrefix(17u << 20) + "abc"},
        {"unparsable payload", LengthPrefix(8) + std::string(8, '\xff')},
        {"event before hello",
         [] {
           reporter::ClientMessage sync;
           sync.mutable_sync()->set_token(1);
           std::string frame;
           reporter::AppendFrame(sync, &frame);
           return frame;
         }()},
        {"hello then garbage",
         HelloFrame("intruder") + LengthPrefix(4) + std::string(4, '\xfe')},
        {"hello then oversize", HelloFrame("intruder") + LengthPrefix(~0u)},
    };
    int failures = 0;
    for (const auto& [what, bytes] : attacks) {
      const int fd = ConnectTo(socket_path);
      if (fd < 0) {
        std::fprintf(stderr, "%s: connect: %s\n", what, std::strerror(-fd));
        ++failures;
        continue;
      }
      (void)!::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (!ReadUntilClosed(fd).second) {
        std::fprintf(stderr, "%s: the server kept the connection\n", what);
        ++failures;
      }
      ::close(fd);
    }
    // A truncated frame: the sender goes away in the middle of it.
    const int fd = ConnectTo(socket_path);
    if (fd < 0) return failures + 1;
    const std::string partial = HelloFrame("intruder") + LengthPrefix(100) + "x";
    (void)!::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    if (!ReadUntilClosed(fd).second) ++failures;
    ::close(fd);
    return failures;
  });
  ASSERT_TRUE(attacker.ok()) << attacker.status();
  const auto attacked = attacker->Join(absl::Seconds(120));
  ASSERT_TRUE(attacked.ok()) << attacked.status();
  EXPECT_TRUE(attacked->success()) << attacked->ToString();

  go.Release();
  EXPECT_EQ(runner.Finish(), 0) << Stdout();
  const Struct results = Results(runner);
  ExpectEveryTask(results, {"guarded", "other"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("guarded")), "passed");
  EXPECT_EQ(ResultOf(tasks.at("other")), "passed");
  const auto& sections = tasks.at("guarded").fields().at("sections");
  ASSERT_EQ(sections.list_value().values_size(), 1);
  const Struct section = sections.list_value().values(0).struct_value();
  EXPECT_EQ(ResultOf(section), "passed");
  EXPECT_EQ(section.fields().at("sections").list_value().values_size(), 2)
      << "the steps before and after the attack";

  const std::string joblog = ReadFile(RunDir(runner) + "/JobLog.garbage");
  EXPECT_THAT(joblog, HasSubstr("closing the connection"));
  EXPECT_THAT(joblog, HasSubstr("frame"));
  ExpectNoSocketLeft(runner, socket);
}

TEST_F(RunnerFaultTest, AnotherUidIsRefusedAndLogged) {
  AnnounceFifo announce(dir() + "/announce");
  GoFifo go(dir() + "/go");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"uid\"\n"
           "task { id: \"guarded\" function { name: \"fault_block\" args: \"",
           announce.path(), "\" args: \"", go.path(), "\" } }\n"))});
  ASSERT_EQ(announce.Read(1).size(), 1u);
  const std::string socket_path = SocketPath(runner);
  if (::geteuid() != 0) {
    go.Release();
    EXPECT_EQ(runner.Finish(), 0);
    GTEST_SKIP() << "needs root to become uid 65534 (running as uid "
                 << ::geteuid() << ")";
  }

  // 1. Plain uid 65534: the socket's mode (0600) keeps it out.
  auto plain = Process::Start({}, [socket_path]() -> int {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 ||
        ::setuid(65534) != 0) {
      return 10;
    }
    const int fd = ConnectTo(socket_path);
    if (fd >= 0) return 11;
    return -fd == EACCES ? 0 : 12;
  });
  ASSERT_TRUE(plain.ok());
  const auto plain_status = plain->Join(absl::Seconds(60));
  ASSERT_TRUE(plain_status.ok());
  EXPECT_TRUE(plain_status->success())
      << "uid 65534 was not kept out by the file mode: "
      << plain_status->ToString();

  // 2. Effective uid 65534 that still passes the file check (file-system
  // uid 0): the server's SO_PEERCRED check refuses it with a Refusal frame.
  int report[2];
  ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
  const int report_w = report[1];
  auto sneaky = Process::Start({}, [socket_path, report_w]() -> int {
    if (::setresgid(65534, 65534, 0) != 0 ||
        ::setresuid(65534, 65534, 0) != 0) {
      return 20;
    }
    ::setfsuid(0);
    if (::setfsuid(-1) != 0) return 21;
    const int fd = ConnectTo(socket_path);
    if (fd < 0) return 22;
    const std::string hello = HelloFrame("guarded");
    (void)!::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    const auto [bytes, closed] = ReadUntilClosed(fd);
    ::close(fd);
    reporter::FrameDecoder decoder;
    decoder.Append(bytes);
    reporter::ServerMessage message;
    const auto got = decoder.Next(&message);
    if (!got.ok() || !*got || !message.has_refusal()) return 23;
    (void)!::write(report_w, message.refusal().reason().data(),
                   message.refusal().reason().size());
    return closed ? 0 : 24;
  });
  ::close(report_w);
  ASSERT_TRUE(sneaky.ok());
  const pid_t sneaky_pid = sneaky->pid();
  const auto sneaky_status = sneaky->Join(absl::Seconds(60));
  ASSERT_TRUE(sneaky_status.ok());
  EXPECT_TRUE(sneaky_status->success()) << sneaky_status->ToString();
  char reason[512];
  const ssize_t n = ::read(report[0], reason, sizeof(reason));
  ::close(report[0]);
  const std::string expected =
      absl::StrCat("reporter server refuses pid ", sneaky_pid,
                   " of uid 65534: only uid 0 may connect");
  EXPECT_EQ(std::string(reason, n > 0 ? n : 0), expected);

  go.Release();
  EXPECT_EQ(runner.Finish(), 0);
  const auto tasks = Tasks(Results(runner));
  EXPECT_EQ(tasks.size(), 1u);
  EXPECT_EQ(ResultOf(tasks.at("guarded")), "passed");
  EXPECT_THAT(ReadFile(RunDir(runner) + "/JobLog.uid"), HasSubstr(expected));
}

}  // namespace
}  // namespace taskfork::faults
