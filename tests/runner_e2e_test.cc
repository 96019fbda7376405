// End-to-end tests of the runner binary: real job specs, real task processes,
// real reporter, real signals. The test process is a child subreaper, so any
// process a run leaves behind becomes its child and is found (and failed on)
// after every test, as is any named /dev/shm segment of the run's processes.
// Descriptors left in a process that ran a job: tests/runtime_leftovers_test.
#include <dirent.h>
#include <fcntl.h>
#include <termios.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "reporter/junit_checker.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "runner/testing/intervals.h"
#include "tests/run_leftovers.h"

namespace taskfork {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::taskfork::testing::IsOk;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/taskfork/", path);
}

// The bytes of `path`, or what could be read of it ("" if nothing): files
// in /proc vanish with their process (a read then fails with ESRCH, which
// std::ifstream turns into an exception).
std::string ReadFile(const std::string& path) {
  std::string out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buffer[65536];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buffer, n);
  }
  ::close(fd);
  return out;
}

// The direct children of this process, other than `except`.
std::vector<pid_t> OurChildren() {
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    const size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    const std::vector<std::string> fields =
        absl::StrSplit(stat.substr(close + 2), ' ');
    pid_t ppid;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) &&
        ppid == ::getpid()) {
      children.push_back(pid);
    }
  }
  ::closedir(proc);
  return children;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` (looked up in PATH, e.g. the system's tar) to the end; its
// stdout and stderr go through files under `scratch`.
CommandResult RunCommand(std::vector<std::string> argv,
                         const std::string& scratch) {
  const std::string out = scratch + ".out";
  const std::string err = scratch + ".err";
  auto process = Process::Start({}, [&]() -> int {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0 || err_fd < 0) return 120;
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    return 121;
  });
  CommandResult result;
  EXPECT_THAT(process, IsOk());
  if (!process.ok()) return result;
  const auto status = process->Join(absl::Seconds(60));
  EXPECT_THAT(status, IsOk());
  if (status.ok()) result.exit_code = status->exit_code;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

// The processes that have `path` open, as "pid (comm)" (for failure
// messages).
std::string HoldersOf(const std::string& path) {
  std::string holders;
  DIR* proc = ::opendir("/proc");
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
    DIR* fds = ::opendir(fd_dir.c_str());
    if (fds == nullptr) continue;
    while (const dirent* fd = ::readdir(fds)) {
      char target[4096];
      const ssize_t n = ::readlink((fd_dir + "/" + fd->d_name).c_str(), target,
                                   sizeof(target));
      if (n > 0 && std::string(target, n) == path) {
        absl::StrAppend(&holders, holders.empty() ? "" : ", ", pid, " (",
                        absl::StripAsciiWhitespace(ReadFile(
                            absl::StrCat("/proc/", pid, "/comm"))),
                        ") fd ", fd->d_name);
      }
    }
    ::closedir(fds);
  }
  ::closedir(proc);
  return holders.empty() ? "nobody" : holders;
}

class RunnerE2ETest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  }

  void SetUp() override {
    dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                        ::testing::UnitTest::GetInstance()
                            ->current_test_info()
                            ->name());
    ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0);
  }

  // Nothing a run started may outlive it: orphans were reparented to us.
  void TearDown() override {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    const std::vector<pid_t> leftovers = OurChildren();
    for (pid_t pid : leftovers) ::kill(pid, SIGKILL);
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    EXPECT_TRUE(leftovers.empty())
        << leftovers.size() << " process(es) outlived the run, e.g. pid "
        << leftovers[0];
    // Nor a /dev/shm segment of any process the runs' logs name.
    EXPECT_THAT(tests::SharedMemorySegmentsOf(
                    tests::PidsNamedInRuns(dir_ + "/runs")),
                ::testing::IsEmpty());
  }

  std::string WriteSpec(const std::string& text) {
    const std::string path = dir_ + "/job.textpb";
    std::ofstream(path) << text;
    return path;
  }

  std::string MakeFifo(const std::string& name) {
    const std::string path = dir_ + "/" + name;
    EXPECT_EQ(::mkfifo(path.c_str(), 0600), 0);
    return path;
  }

  // Starts the e2e runner with `args`; stdout and stderr go to files.
  Process StartRunner(std::vector<std::string> args) {
    return StartProgram("tests/e2e_runner", std::move(args));
  }

  // Starts the binary `runfile` with `args`; stdout and stderr go to files.
  Process StartProgram(const std::string& runfile,
                       std::vector<std::string> args) {
    args.insert(args.begin(), Runfile(runfile));
    const std::string out = dir_ + "/stdout";
    const std::string err = dir_ + "/stderr";
    auto process = Process::Start({}, [args, out, err]() mutable -> int {
      const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out_fd < 0 || err_fd < 0) return 120;
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
      // Bazel's test protocol is this test's, not the GoogleTest binaries'
      // the runs start (the filter of --test_filter, the premature-exit
      // marker, sharding, the XML path).
      for (const char* var :
           {"TESTBRIDGE_TEST_ONLY", "TEST_PREMATURE_EXIT_FILE",
            "TEST_TOTAL_SHARDS", "TEST_SHARD_INDEX", "TEST_SHARD_STATUS_FILE",
            "GTEST_TOTAL_SHARDS", "GTEST_SHARD_INDEX", "XML_OUTPUT_FILE"}) {
        ::unsetenv(var);
      }
      std::vector<char*> argv;
      for (std::string& arg : args) argv.push_back(arg.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      return 121;
    });
    EXPECT_THAT(process, IsOk());
    return std::move(*process);
  }

  // Runs to the end; returns the exit code (-signal if killed).
  int Finish(Process& process) {
    const auto status = process.Join(absl::Seconds(120));
    EXPECT_THAT(status, IsOk());
    if (!status.ok()) return -1000;
    return status->signaled() ? -status->signal : status->exit_code;
  }

  int Run(const std::string& spec, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
    args.insert(args.end(), extra.begin(), extra.end());
    args.push_back(WriteSpec(spec));
    Process process = StartRunner(args);
    return Finish(process);
  }

  std::string RunInfoDir() { return dir_ + "/runs/latest"; }
  std::string Stdout() { return ReadFile(dir_ + "/stdout"); }
  std::string Stderr() { return ReadFile(dir_ + "/stderr"); }

  // results.json of the latest run, as a generic JSON object.
  Struct Results() {
    Struct results;
    const std::string json = ReadFile(RunInfoDir() + "/results.json");
    EXPECT_TRUE(
        google::protobuf::util::JsonStringToMessage(json, &results).ok())
        << json;
    return results;
  }

  // The task object `id` of results.json.
  Struct TaskOf(const Struct& results, const std::string& id) {
    for (const Value& task : results.fields().at("report").struct_value()
                                 .fields().at("tasks").list_value().values()) {
      if (task.struct_value().fields().at("id").string_value() == id) {
        return task.struct_value();
      }
    }
    ADD_FAILURE() << "task " << id << " not in results.json";
    return {};
  }

  static std::string ResultOf(const Struct& task) {
    return task.fields().at("result").struct_value().fields().at("value")
        .string_value();
  }
  static std::string ReasonOf(const Struct& task) {
    const auto& result = task.fields().at("result").struct_value().fields();
    auto it = result.find("reason");
    return it == result.end() ? "" : it->second.string_value();
  }

  // Reads one "<pid>\n" line from the FIFO, waiting at most 60 s.
  pid_t ReadAnnouncement(const std::string& fifo) {
    const int fd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    EXPECT_GE(fd, 0);
    std::string line;
    while (!absl::StrContains(line, "\n")) {
      pollfd p{fd, POLLIN, 0};
      const int ready = ::poll(&p, 1, 60000);
      if (ready <= 0) break;
      char buffer[64];
      const ssize_t n = ::read(fd, buffer, sizeof(buffer));
      if (n > 0) line.append(buffer, n);
      if (n == 0 && !line.empty()) break;
    }
    ::close(fd);
    pid_t pid = 0;
    EXPECT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &pid))
        << "no announcement on " << fifo;
    return pid;
  }

  std::string dir_;
};

TEST_F(RunnerE2ETest, BadSpecExitsTwoBeforeAnythingRuns) {
  EXPECT_EQ(Run("name: \"bad\"\ntask {\n  function { name: \"e2e_nope\" }\n}\n"),
            2);
  EXPECT_THAT(Stderr(), HasSubstr("job.textpb:3:3: task \"Task-1\": unknown "
                                  "function \"e2e_nope\"; known functions: "
                                  "e2e_announce, e2e_crash, e2e_daemon, e2e_fail"));
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/runs").c_str(), &st), 0) << "runinfo was created";
  EXPECT_EQ(Run("task { function { name: \"e2e_ok\" } } }"), 2);
  EXPECT_THAT(Stderr(), HasSubstr("job.textpb:1:"));
}

TEST_F(RunnerE2ETest, BadArgumentsExitTwo) {
  Process none = StartRunner({});
  EXPECT_EQ(Finish(none), 2);
  EXPECT_THAT(Stderr(), HasSubstr("no job spec given"));
  Process bogus = StartRunner({"--bogus", "x"});
  EXPECT_EQ(Finish(bogus), 2);
  EXPECT_THAT(Stderr(), HasSubstr("unknown option --bogus"));
  Process zero = StartRunner({"--max_parallel=0", "x"});
  EXPECT_EQ(Finish(zero), 2);
  Process missing = StartRunner({dir_ + "/missing.textpb"});
  EXPECT_EQ(Finish(missing), 2);
  EXPECT_THAT(Stderr(), HasSubstr(dir_ + "/missing.textpb"));
}

TEST_F(RunnerE2ETest, AllPassedExitsZero) {
  EXPECT_EQ(Run("task { id: \"a\" function { name: \"e2e_ok\" } }\n"
                "task { id: \"b\" command { argv: \"/bin/true\" } }\n"),
            0);
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "a")), "passed");
  EXPECT_EQ(ResultOf(TaskOf(results, "b")), "passed");
  EXPECT_THAT(Stdout(), HasSubstr("Success Rate: 100.00 %"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/xunit.xml"), HasSubstr("<testsuites"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/report.html"),
              HasSubstr("\"logs\":[\"TaskLog.a\"]"));
  EXPECT_THAT(Stdout(),
              ContainsRegex("Report: +[^\n]*/runs/job[.][0-9.-]*/report.html\n"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/env.txt"), HasSubstr("argv: "));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/job.textpb"), HasSubstr("e2e_ok"));
}

TEST_F(RunnerE2ETest, SummaryAndExitCodeRollUpTheTasksSections) {
  EXPECT_EQ(Run("task { id: \"ok\" function { name: \"e2e_ok\" } }\n"
                "task { id: \"sec\" function { name: \"e2e_section_fails\" } }\n"),
            1);
  const Struct sec = TaskOf(Results(), "sec");
  EXPECT_EQ(ResultOf(sec), "failed");
  EXPECT_EQ(ReasonOf(sec), "links: eth0 down");
  // The console says what results.json says.
  EXPECT_THAT(Stdout(), ContainsRegex("sec +FAILED"));
  EXPECT_THAT(Stdout(), HasSubstr("reason: links: eth0 down"));
  EXPECT_THAT(Stdout(), HasSubstr("Success Rate: 50.00 %"));
}

TEST_F(RunnerE2ETest, EveryKindOfResult) {
  const int code = Run(R"pb(
    name: "kinds"
    task { id: "ok" function { name: "e2e_ok" } }
    task { id: "fail" function { name: "e2e_fail" } }
    task { id: "crash" function { name: "e2e_crash" } }
    task { id: "false" command { argv: "/bin/false" } }
    task { id: "gtest" command { argv: "runner/examples/demo_gtest" gtest: true } }
  )pb");
  EXPECT_EQ(code, 1);
  const Struct results = Results();
  const Struct ok = TaskOf(results, "ok");
  EXPECT_EQ(ResultOf(ok), "passed");
  EXPECT_EQ(ok.fields().at("sections").list_value().values(0).struct_value()
                .fields().at("name").string_value(),
            "only");
  EXPECT_EQ(ResultOf(TaskOf(results, "fail")), "failed");
  EXPECT_EQ(ReasonOf(TaskOf(results, "fail")),
            "FAILED_PRECONDITION: expected 1, got 2");
  EXPECT_EQ(ResultOf(TaskOf(results, "crash")), "errored");
  EXPECT_THAT(ReasonOf(TaskOf(results, "crash")), HasSubstr("SIGSEGV"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.crash"),
              HasSubstr("*** SIGSEGV"));
  EXPECT_EQ(ResultOf(TaskOf(results, "false")), "failed");
  EXPECT_THAT(ReasonOf(TaskOf(results, "false")),
              HasSubstr("exited with code 1"));
  const Struct gtest = TaskOf(results, "gtest");
  EXPECT_EQ(ResultOf(gtest), "passed");
  ASSERT_EQ(gtest.fields().at("sections").list_value().values_size(), 3);
  EXPECT_EQ(gtest.fields().at("sections").list_value().values(2)
                .struct_value().fields().at("result").struct_value()
                .fields().at("value").string_value(),
            "skipped");
  EXPECT_THAT(Stdout(), HasSubstr("Success Rate: 40.00 %"));
}

TEST_F(RunnerE2ETest, RetriesRunAFailedTaskAgainAndMarkItFlaky) {
  const std::string once = dir_ + "/once";
  const int code = Run(absl::StrCat(R"pb(
    task { id: "flaky" command { argv: "/bin/sh" argv: "-c" argv: "test -e )pb",
                                    once, R"pb( && exit 0; touch )pb", once,
                                    R"pb(; exit 1" } }
    task { id: "broken" command { argv: "/bin/false" } }
    task { id: "ok" command { argv: "/bin/true" } }
  )pb"),
                       {"--retries=2"});
  EXPECT_EQ(code, 1);  // "broken" failed every time
  const Struct results = Results();
  const Struct flaky = TaskOf(results, "flaky");
  EXPECT_EQ(ResultOf(flaky), "passed");
  EXPECT_TRUE(flaky.fields().at("flaky").bool_value());
  EXPECT_EQ(flaky.fields().at("attempts").number_value(), 2);
  EXPECT_THAT(ReasonOf(flaky),
              HasSubstr("flaky: passed on attempt 2 of 2 (attempt 1 failed: "
                        "/bin/sh exited with code 1)"));
  const Struct broken = TaskOf(results, "broken");
  EXPECT_EQ(ResultOf(broken), "failed");
  EXPECT_FALSE(broken.fields().at("flaky").bool_value());
  EXPECT_EQ(broken.fields().at("attempts").number_value(), 3);
  EXPECT_EQ(broken.fields().at("previous_attempts").list_value().values_size(),
            2);
  EXPECT_THAT(broken.fields().at("logfile").string_value(),
              ::testing::EndsWith("/TaskLog.broken:attempt-3"));
  for (const char* log : {"/TaskLog.broken", "/TaskLog.broken:attempt-2",
                          "/TaskLog.broken:attempt-3"}) {
    EXPECT_THAT(ReadFile(RunInfoDir() + log), HasSubstr("/bin/false")) << log;
  }
  EXPECT_EQ(TaskOf(results, "ok").fields().count("attempts"), 0u);
  EXPECT_EQ(results.fields().at("report").struct_value().fields()
                .at("task_summary").struct_value().fields().at("flaky")
                .number_value(),
            1);
  const std::string xunit = ReadFile(RunInfoDir() + "/xunit.xml");
  EXPECT_THAT(xunit, HasSubstr("<flakyFailure message=\"attempt 1: failed: "));
  EXPECT_THAT(xunit, HasSubstr("<rerunFailure message=\"attempt 2: failed: "));
  EXPECT_THAT(Stdout(),
              HasSubstr("[0/3] FAILED   flaky"));
  EXPECT_THAT(Stdout(), HasSubstr("retrying (attempt 2 of 3)"));
}

TEST_F(RunnerE2ETest, ARetryOfAGoogleTestTaskRunsOnlyItsFailedTests) {
  const std::string state = dir_ + "/state";
  ASSERT_EQ(::mkdir(state.c_str(), 0755), 0);
  const int code = Run(absl::StrCat(R"pb(
    task { id: "gt" command { argv: "tests/flaky_gtest" gtest: true
                              env { key: "FLAKY_DIR" value: ")pb",
                                    state, R"pb(" } } }
  )pb"),
                       {"--retries=1"});
  EXPECT_EQ(code, 0);
  EXPECT_EQ(ReadFile(state + "/runs"),
            "Flaky.Passes\nFlaky.FailsOnce\nFlaky.AlsoPasses\n"
            "Flaky.FailsOnce\n");
  const Struct gt = TaskOf(Results(), "gt");
  EXPECT_EQ(ResultOf(gt), "passed");
  EXPECT_TRUE(gt.fields().at("flaky").bool_value());
  const auto& sections = gt.fields().at("sections").list_value().values();
  ASSERT_EQ(sections.size(), 3);
  const auto& fails_once = sections[1].struct_value().fields();
  EXPECT_EQ(fails_once.at("name").string_value(), "Flaky.FailsOnce");
  EXPECT_TRUE(fails_once.at("flaky").bool_value());
  EXPECT_EQ(sections[0].struct_value().fields().count("flaky"), 0u);
  EXPECT_EQ(sections[2].struct_value().fields().at("result").struct_value()
                .fields().at("value").string_value(),
            "passed");
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.gt:attempt-2"),
              HasSubstr("--gtest_filter=Flaky.FailsOnce"));
}

TEST_F(RunnerE2ETest, ATimedOutTaskIsRetriedAnInterruptedOneIsNot) {
  const std::string once = dir_ + "/once";
  // First attempt hangs past its timeout, the second passes.
  const int code = Run(absl::StrCat(R"pb(
    task { id: "slow_once" timeout: "1s"
           command { argv: "/bin/sh" argv: "-c" argv: "test -e )pb",
                                    once, R"pb( && exit 0; touch )pb", once,
                                    R"pb(; exec sleep 1000" } }
  )pb"),
                       {"--retries=1"});
  EXPECT_EQ(code, 0);
  const Struct task = TaskOf(Results(), "slow_once");
  EXPECT_EQ(ResultOf(task), "passed");
  EXPECT_THAT(ReasonOf(task), HasSubstr("attempt 1 aborted: timed out after 1s"));
}

TEST_F(RunnerE2ETest, RerunFailedRunsOnlyWhatFailedLastTime) {
  const std::string state = dir_ + "/state";
  ASSERT_EQ(::mkdir(state.c_str(), 0755), 0);
  const std::string spec = absl::StrCat(R"pb(
    name: "again"
    task { id: "ok" command { argv: "/bin/true" } }
    task { id: "gt" command { argv: "tests/flaky_gtest" gtest: true
                              env { key: "FLAKY_DIR" value: ")pb",
                                    state, R"pb(" } } }
  )pb");
  Process none = StartRunner({"--runinfo_dir=" + dir_ + "/runs",
                              "--rerun_failed", WriteSpec(spec)});
  EXPECT_EQ(Finish(none), 2);
  EXPECT_THAT(Stderr(), HasSubstr("--rerun_failed: no finished run of job "
                                  "\"again\" in " + dir_ + "/runs"));

  EXPECT_EQ(Run(spec), 1);  // Flaky.FailsOnce fails the first time
  const std::string first_uid =
      Results().fields().at("report").struct_value().fields().at("id")
          .string_value();
  EXPECT_EQ(Run(spec, {"--rerun_failed"}), 0);
  // Only the failed test of the failed task ran again.
  EXPECT_EQ(ReadFile(state + "/runs"),
            "Flaky.Passes\nFlaky.FailsOnce\nFlaky.AlsoPasses\n"
            "Flaky.FailsOnce\n");
  const Struct results = Results();
  const Struct ok = TaskOf(results, "ok");
  EXPECT_EQ(ResultOf(ok), "skipped");
  EXPECT_EQ(ReasonOf(ok), "passed in run " + first_uid);
  const Struct gt = TaskOf(results, "gt");
  EXPECT_EQ(ResultOf(gt), "passed");
  EXPECT_EQ(gt.fields().at("sections").list_value().values_size(), 1);

  // Nothing failed in the last run: nothing runs, exit 0.
  EXPECT_EQ(Run(spec, {"--rerun_failed"}), 0);
  EXPECT_THAT(Stdout(), HasSubstr("--rerun_failed: every task succeeded in run"));
  EXPECT_THAT(Stdout(), HasSubstr("nothing to run"));
}

TEST_F(RunnerE2ETest, ExecutorFlagsAreChecked) {
  Process bogus = StartRunner({"--executor=cloud", "x"});
  EXPECT_EQ(Finish(bogus), 2);
  EXPECT_THAT(Stderr(), HasSubstr("--executor wants local or slurm, got \"cloud\""));
  Process nodes = StartRunner({"--slurm_nodes=0", "x"});
  EXPECT_EQ(Finish(nodes), 2);
  EXPECT_THAT(Stderr(), HasSubstr("--slurm_nodes wants a positive number"));
  Process interactive =
      StartRunner({"--executor=slurm", "--interactive", "x"});
  EXPECT_EQ(Finish(interactive), 2);
  EXPECT_THAT(Stderr(), HasSubstr("--interactive needs the local executor"));
}

TEST_F(RunnerE2ETest, RetriesMustBeANumberInRange) {
  for (const char* bad : {"--retries=-1", "--retries=101", "--retries=x"}) {
    Process runner = StartRunner({bad, "x"});
    EXPECT_EQ(Finish(runner), 2) << bad;
    EXPECT_THAT(Stderr(), HasSubstr("--retries wants a number from 0 to 100"))
        << bad;
  }
}

TEST_F(RunnerE2ETest, ReporterListenReportsOverTcpWithTheRunSecret) {
  EXPECT_EQ(Run("task { id: \"ok\" function { name: \"e2e_ok\" } }\n"
                "task { id: \"env\" command { argv: \"/bin/sh\" argv: \"-c\" "
                "argv: \"echo at=$TASKFORK_REPORTER_SOCKET\" } }\n",
                {"--reporter_listen=127.0.0.1:0"}),
            0);
  const Struct ok = TaskOf(Results(), "ok");
  ASSERT_EQ(ok.fields().at("sections").list_value().values_size(), 1);
  EXPECT_EQ(ok.fields().at("sections").list_value().values(0).struct_value()
                .fields().at("name").string_value(),
            "only");
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.env"),
              ContainsRegex("at=tcp:127[.]0[.]0[.]1:[1-9][0-9]*\n"));
  struct stat st;
  ASSERT_EQ(::stat((RunInfoDir() + "/reporter.secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(RunnerE2ETest, MalformedReporterListenExitsTwo) {
  for (const char* bad : {"--reporter_listen=", "--reporter_listen=host",
                          "--reporter_listen=host:70000"}) {
    Process runner = StartRunner({bad, "x"});
    EXPECT_EQ(Finish(runner), 2) << bad;
    EXPECT_THAT(Stderr(), HasSubstr("--reporter_listen: malformed reporter "
                                    "listen address"))
        << bad;
  }
}

TEST_F(RunnerE2ETest, CommandThatCannotBeExecutedIsErroredNamingTheProgram) {
  // Executable, so the job spec accepts it, but its interpreter is missing:
  // execve fails with ENOENT.
  const std::string script = dir_ + "/no_interpreter.sh";
  std::ofstream(script) << "#!/no/such/interpreter\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  EXPECT_EQ(Run(absl::StrCat("task { id: \"noexec\" command { argv: \"",
                             script, "\" } }\n")),
            1);
  const Struct task = TaskOf(Results(), "noexec");
  EXPECT_EQ(ResultOf(task), "errored");
  EXPECT_THAT(ReasonOf(task), HasSubstr(absl::StrCat(script,
                                                     " could not run")));
  EXPECT_THAT(ReasonOf(task),
              HasSubstr(absl::StrCat("execve ", script,
                                     ": No such file or directory")));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.noexec"),
              HasSubstr(absl::StrCat("execve ", script)));
}

TEST_F(RunnerE2ETest, AtMostMaxParallelTasksAtOnce) {
  const std::string marks = dir_ + "/marks";
  ASSERT_EQ(::mkdir(marks.c_str(), 0755), 0);
  std::string spec = "max_parallel: 2\n";
  for (int i = 0; i < 5; ++i) {
    absl::StrAppend(&spec, "task { id: \"t", i,
                    "\" function { name: \"e2e_interval\" args: \"0.2\" args: \"",
                    marks, "\" } }\n");
  }
  EXPECT_EQ(Run(spec), 0);
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int i = 0; i < 5; ++i) {
    std::istringstream line(ReadFile(absl::StrCat(marks, "/t", i)));
    int64_t start = 0, end = 0;
    line >> start >> end;
    ASSERT_GT(end, start) << "task t" << i;
    runs.emplace_back(start, end);
  }
  EXPECT_LE(taskfork::testing::MostAtOnce(runs), 2);
}

TEST_F(RunnerE2ETest, TimeoutAbortsAndKillsGrandchildrenIgnoringSigterm) {
  const std::string fifo = MakeFifo("announce");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(absl::StrCat(
      "termination_grace: \"0.5s\"\n"
      "task { id: \"slow\" timeout: \"1s\" function { name: \"e2e_grandchild\" "
      "args: \"",
      fifo, "\" } }\n")));
  Process runner = StartRunner(args);
  const pid_t grandchild = ReadAnnouncement(fifo);
  ASSERT_GT(grandchild, 0);
  EXPECT_EQ(Finish(runner), 1);
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "slow")), "aborted");
  EXPECT_EQ(ReasonOf(TaskOf(results, "slow")), "timed out after 1s");
  // The grandchild was SIGKILLed with the task's group: reparented to us (the
  // subreaper) as a zombie, or already gone.
  int status = 0;
  const pid_t reaped = ::waitpid(grandchild, &status, WNOHANG);
  if (reaped == grandchild) {
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
  } else {
    EXPECT_EQ(::kill(grandchild, 0), -1) << "grandchild still alive";
  }
}

TEST_F(RunnerE2ETest, EscapedDaemonIsKilledAtTheEnd) {
  const std::string fifo = MakeFifo("announce");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(absl::StrCat(
      "termination_grace: \"0.2s\"\n"
      "task { id: \"leaky\" function { name: \"e2e_daemon\" args: \"",
      fifo, "\" } }\n")));
  Process runner = StartRunner(args);
  const pid_t daemon = ReadAnnouncement(fifo);
  ASSERT_GT(daemon, 0);
  EXPECT_EQ(Finish(runner), 0);
  EXPECT_EQ(ResultOf(TaskOf(Results(), "leaky")), "passed");
  EXPECT_THAT(Stdout(), HasSubstr(absl::StrCat(
                            "escaped their task's process group were still "
                            "running and were killed (pid ",
                            daemon, ")")));
  EXPECT_EQ(::kill(daemon, 0), -1) << "the daemon survived the run";
}

TEST_F(RunnerE2ETest, FirstInterruptAbortsRunningBlocksPendingAndReports) {
  const std::string fifo = MakeFifo("announce");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(absl::StrCat(
      "max_parallel: 1\n"
      "task { id: \"running\" function { name: \"e2e_announce\" args: \"",
      fifo,
      "\" args: \"hang\" } }\n"
      "task { id: \"pending\" function { name: \"e2e_ok\" } }\n")));
  Process runner = StartRunner(args);
  ASSERT_GT(ReadAnnouncement(fifo), 0);
  ASSERT_THAT(runner.Signal(SIGINT), IsOk());
  EXPECT_EQ(Finish(runner), 1);
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "running")), "aborted");
  EXPECT_EQ(ReasonOf(TaskOf(results, "running")), "aborted by SIGINT");
  EXPECT_EQ(ResultOf(TaskOf(results, "pending")), "blocked");
  EXPECT_THAT(Stdout(), HasSubstr("job interrupted by SIGINT"));
}

TEST_F(RunnerE2ETest, SecondInterruptKillsEverythingAtOnce) {
  const std::string fifo = MakeFifo("announce");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(absl::StrCat(
      "termination_grace: \"1h\"\n"
      "task { id: \"stubborn\" function { name: \"e2e_announce\" args: \"",
      fifo, "\" args: \"ignore_term\" } }\n")));
  Process runner = StartRunner(args);
  ASSERT_GT(ReadAnnouncement(fifo), 0);
  ASSERT_THAT(runner.Signal(SIGINT), IsOk());
  // A different signal, so the kernel cannot merge it with the first.
  ASSERT_THAT(runner.Signal(SIGTERM), IsOk());
  EXPECT_EQ(Finish(runner), 1);  // Well before the one-hour grace.
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "stubborn")), "aborted");
  EXPECT_EQ(ReasonOf(TaskOf(results, "stubborn")),
            "killed by a second SIGTERM");
}

TEST_F(RunnerE2ETest, ReporterKilledMidRunExitsThreeWithResultsFromTasks) {
  const std::string announce = MakeFifo("announce");
  const std::string go = MakeFifo("go");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(absl::StrCat(
      "name: \"lossy\"\n"
      "task { id: \"survivor\" function { name: \"e2e_announce\" args: \"",
      announce, "\" args: \"go\" args: \"", go,
      "\" } }\n"
      "task { id: \"failing\" function { name: \"e2e_fail\" } }\n")));
  Process runner = StartRunner(args);
  ASSERT_GT(ReadAnnouncement(announce), 0);
  // The JobLog names the reporter server's pid.
  const std::string joblog = ReadFile(RunInfoDir() + "/JobLog.lossy");
  std::smatch match;
  ASSERT_TRUE(std::regex_search(joblog, match,
                                std::regex("reporter server pid ([0-9]+)")))
      << joblog;
  pid_t reporter = 0;
  ASSERT_TRUE(absl::SimpleAtoi(match[1].str(), &reporter));
  // Release the task only once the server has exited: the runner must see
  // the death while a task still runs. A TSan process takes a while to exit;
  // without this wait the task could end first and the death be found only
  // at finalize (also exit 3, with another message).
  ASSERT_THAT(tests::KillAndAwaitExit(reporter, absl::Seconds(60)), IsOk());
  // Let the task finish (open + close the FIFO releases it).
  const int fd = ::open(go.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::close(fd);
  EXPECT_EQ(Finish(runner), 3);
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "survivor")), "passed");
  EXPECT_EQ(ResultOf(TaskOf(results, "failing")), "failed");
  EXPECT_THAT(Stdout(), HasSubstr("reporter server died mid-run"));
}

TEST_F(RunnerE2ETest, ArchiveDirGetsTheWholeRunAsTarGz) {
  const std::string archive_dir = dir_ + "/archives/nightly";  // made by the run
  EXPECT_EQ(Run("name: \"packed\"\n"
                "task { id: \"a\" function { name: \"e2e_ok\" } }\n",
                {"--archive_dir=" + archive_dir}),
            0);
  char target[4096];
  const ssize_t n =
      ::readlink(RunInfoDir().c_str(), target, sizeof(target));
  ASSERT_GT(n, 0);
  const std::string uid(target, n);
  const std::string archive = archive_dir + "/" + uid + ".tar.gz";
  EXPECT_THAT(Stdout(), HasSubstr("Report:  " + archive));

  const CommandResult list =
      RunCommand({"tar", "-tzf", archive}, dir_ + "/list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.err, "");
  const std::vector<std::string> names =
      absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], uid + "/");
  for (const std::string file : {"JobLog.packed", "TaskLog.a", "env.txt",
                                 "job.textpb", "results.json", "xunit.xml",
                                 "report.html"}) {
    EXPECT_THAT(names, ::testing::Contains(uid + "/" + file));
  }
  // The archive holds the finished run: the final report and the JobLog with
  // the summary.
  const CommandResult results = RunCommand(
      {"tar", "-xzOf", archive, uid + "/results.json"}, dir_ + "/results");
  EXPECT_EQ(results.out, ReadFile(RunInfoDir() + "/results.json"));
  const CommandResult joblog = RunCommand(
      {"tar", "-xzOf", archive, uid + "/JobLog.packed"}, dir_ + "/joblog");
  EXPECT_THAT(joblog.out, HasSubstr("Success Rate: 100.00 %"));
}

TEST_F(RunnerE2ETest, ArchiveThatCannotBeWrittenExitsThreeAndKeepsTheRun) {
  const std::string plain = dir_ + "/plain";
  std::ofstream(plain) << "not a directory";
  EXPECT_EQ(Run("task { id: \"a\" function { name: \"e2e_ok\" } }\n",
                {"--archive_dir=" + plain + "/archives"}),
            3);
  EXPECT_THAT(Stdout(), HasSubstr("no archive written: FAILED_PRECONDITION: "
                                  "mkdir " + plain + "/archives: Not a "
                                  "directory [ENOTDIR]"));
  EXPECT_EQ(ResultOf(TaskOf(Results(), "a")), "passed");
  EXPECT_THAT(ReadFile(RunInfoDir() + "/xunit.xml"), HasSubstr("<testsuites"));
}

// Reads the pseudo-terminal `master` into `screen` until `done()` or end of
// input (EIO: no process has the terminal open any more), waiting at most
// `timeout` in all. Returns whether `done()` became true; `*closed` tells
// whether the terminal was closed.
bool ReadTerminal(int master, std::string* screen,
                  const std::function<bool()>& done, bool* closed,
                  absl::Duration timeout = absl::Seconds(60)) {
  const absl::Time deadline = absl::Now() + timeout;
  *closed = false;
  while (!done()) {
    const int64_t left = absl::ToInt64Milliseconds(deadline - absl::Now());
    if (left <= 0) return false;
    pollfd p{master, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(left));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    char buffer[4096];
    const ssize_t n = ::read(master, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {  // EIO: every slave descriptor is closed
      *closed = true;
      return done();
    }
    screen->append(buffer, n);
  }
  return true;
}

int Count(const std::string& text, const std::string& what) {
  int count = 0;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + 1)) {
    ++count;
  }
  return count;
}

// --interactive as a user at a terminal sees it: the runner in a new session
// whose controlling terminal is a pseudo-terminal; the test types answers
// into the master when a task's prompt shows up there.
TEST_F(RunnerE2ETest, InteractiveTasksReadTheTerminalOneAtATime) {
  const int master = ::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  ASSERT_GE(master, 0);
  OwnedFd master_fd(master);
  ASSERT_EQ(::grantpt(master), 0);
  ASSERT_EQ(::unlockpt(master), 0);
  const std::string slave = ::ptsname(master);
  std::vector<std::string> args = {
      Runfile("tests/e2e_runner"), "--interactive",
      "--runinfo_dir=" + dir_ + "/runs",
      WriteSpec("name: \"asks\"\n"
                "task { id: \"first\" function { name: \"e2e_prompt\" "
                "args: \"one\" } }\n"
                "task { id: \"second\" function { name: \"e2e_prompt\" "
                "args: \"two\" } }\n")};
  // Closed on exec (O_CLOEXEC): end of file here means the runner runs.
  auto exec_pipe = OwnedFd::Pipe();
  ASSERT_THAT(exec_pipe, IsOk());
  ProcessOptions options;
  options.own_process_group = false;  // setsid() fails for a group leader
  auto runner = Process::Start(options, [&]() -> int {
    if (::setsid() < 0) return 120;
    // A session leader's first terminal becomes its controlling terminal.
    const int fd = ::open(slave.c_str(), O_RDWR);
    if (fd < 0 || ::ioctl(fd, TIOCSCTTY, 0) != 0) return 121;
    for (int target = 0; target <= 2; ++target) ::dup2(fd, target);
    if (fd > 2) ::close(fd);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    return 122;
  });
  ASSERT_THAT(runner, IsOk());
  exec_pipe->write.Reset();
  pollfd exec_done{exec_pipe->read.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&exec_done, 1, 60000), 1);

  constexpr char kPrompt[] = "e2e_prompt: answer? ";
  std::string screen;
  bool closed = false;
  ASSERT_TRUE(ReadTerminal(
      master, &screen, [&] { return Count(screen, kPrompt) == 1; }, &closed))
      << "no prompt on the terminal; it shows:\n" << screen;
  ASSERT_EQ(::write(master, "one\n", 4), 4);
  // The second task runs only after the first is done, and gets the
  // terminal in turn.
  ASSERT_TRUE(ReadTerminal(
      master, &screen, [&] { return Count(screen, kPrompt) == 2; }, &closed))
      << "no second prompt on the terminal; it shows:\n" << screen;
  EXPECT_EQ(Count(screen, "e2e_prompt: thanks"), 1);
  ASSERT_EQ(::write(master, "two\n", 4), 4);
  // When the run is over nothing may keep the terminal open (the reporter
  // server, a task, ...): reading the master then ends with EIO.
  EXPECT_TRUE(ReadTerminal(master, &screen, [&] { return closed; }, &closed))
      << "the terminal is still open after the run, by " << HoldersOf(slave)
      << "; it shows:\n" << screen;
  EXPECT_EQ(Finish(*runner), 0) << screen;
  EXPECT_EQ(Count(screen, "e2e_prompt: thanks"), 2) << screen;
  EXPECT_THAT(screen, HasSubstr("Success Rate: 100.00 %"));
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "first")), "passed");
  EXPECT_EQ(ResultOf(TaskOf(results, "second")), "passed");
  // The prompt went to the terminal, the task's glog lines to its TaskLog.
  const std::string log = ReadFile(RunInfoDir() + "/TaskLog.first");
  EXPECT_THAT(log, HasSubstr("answer: one"));
  EXPECT_THAT(log, ::testing::Not(HasSubstr(kPrompt)));
}

// The C++ job API example (runner/examples/custom_job.cc): a program with
// its own Runtime that runs one task, then two in parallel if it passed.
TEST_F(RunnerE2ETest, CustomJobProgramRunsTasksInCode) {
  const std::string runs = "--runinfo_dir=" + dir_ + "/runs";
  Process job = StartProgram("runner/examples/custom_job", {runs});
  EXPECT_EQ(Finish(job), 0) << Stderr();
  Struct results = Results();
  const Struct prepare = TaskOf(results, "prepare");
  EXPECT_EQ(ResultOf(prepare), "passed");
  for (const std::string id : {"sum", "count"}) {
    const Struct task = TaskOf(results, id);
    EXPECT_EQ(ResultOf(task), "passed") << id;
    // Started only once "prepare" was done (same ISO 8601 format, so the
    // strings order as the times do).
    EXPECT_GE(task.fields().at("starttime").string_value(),
              prepare.fields().at("stoptime").string_value())
        << id;
  }
  EXPECT_EQ(TaskOf(results, "sum").fields().at("sections").list_value()
                .values(0).struct_value().fields().at("name").string_value(),
            "sum");
  EXPECT_THAT(Stdout(), HasSubstr("Success Rate: 100.00 %"));

  // When the first task fails, the other two never start.
  Process broken =
      StartProgram("runner/examples/custom_job", {runs, "--break_prepare"});
  EXPECT_EQ(Finish(broken), 1);
  results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "prepare")), "failed");
  EXPECT_EQ(ReasonOf(TaskOf(results, "prepare")),
            "UNAVAILABLE: the data source is down (on purpose)");
  EXPECT_EQ(ResultOf(TaskOf(results, "sum")), "blocked");
  EXPECT_EQ(ResultOf(TaskOf(results, "count")), "blocked");
}

// Each section of a task of results.json as "<name> <result>", sorted.
std::vector<std::string> SectionResultsOf(const Struct& task) {
  std::vector<std::string> sections;
  for (const Value& section :
       task.fields().at("sections").list_value().values()) {
    const auto& fields = section.struct_value().fields();
    sections.push_back(absl::StrCat(
        fields.at("name").string_value(), " ",
        fields.at("result").struct_value().fields().at("value").string_value()));
  }
  std::sort(sections.begin(), sections.end());
  return sections;
}

TEST_F(RunnerE2ETest, ShardedGTestTaskReportsAsTheUnshardedOne) {
  // TESTBRIDGE_TEST_ONLY: not this test's --test_filter (bazel's variable).
  EXPECT_EQ(Run(R"pb(
    max_parallel: 2
    task { id: "whole"
           command { argv: "runner/sharded_gtest_test_helper" gtest: true
                     env { key: "TESTBRIDGE_TEST_ONLY" value: "*" } } }
    task { id: "sharded"
           command { argv: "runner/sharded_gtest_test_helper" gtest: true
                     env { key: "TESTBRIDGE_TEST_ONLY" value: "*" } shards: 4 } }
  )pb"),
            1);
  const Struct results = Results();
  const Struct whole = TaskOf(results, "whole");
  const Struct sharded = TaskOf(results, "sharded");
  const std::vector<std::string> tests = SectionResultsOf(whole);
  ASSERT_EQ(tests.size(), 21u);
  EXPECT_THAT(tests, ::testing::Contains("Many.Fails failed"));
  EXPECT_THAT(tests, ::testing::Contains("Many.Skips skipped"));
  EXPECT_EQ(SectionResultsOf(sharded), tests);
  EXPECT_EQ(ResultOf(sharded), "failed");
  EXPECT_EQ(ResultOf(sharded), ResultOf(whole));
  EXPECT_THAT(ReasonOf(sharded), ContainsRegex("^Many.Fails: .*fails on "
                                               "purpose.* \\(shard [0-3] of 4\\)$"));
  // One task in results.json and one testsuite in xunit.xml, with every test.
  EXPECT_EQ(results.fields().at("report").struct_value().fields().at("tasks")
                .list_value().values_size(),
            2);
  const std::string xunit = ReadFile(RunInfoDir() + "/xunit.xml");
  const auto count = [&xunit](const std::string& needle) {
    int n = 0;
    for (size_t at = xunit.find(needle); at != std::string::npos;
         at = xunit.find(needle, at + 1)) {
      ++n;
    }
    return n;
  };
  EXPECT_EQ(count("<testsuite "), 2) << xunit;
  EXPECT_EQ(count("<testcase "), 42) << xunit;
  EXPECT_EQ(count("name=\"Many.Fails\""), 2) << xunit;
  EXPECT_THAT(Stdout(), ContainsRegex("sharded +FAILED"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.sharded"),
              HasSubstr("TaskLog.sharded.shard-3\n"));
  // GoogleTest deals the tests out in turn: Many.Fails (the 18th) is shard
  // 1's.
  const std::string joblog = ReadFile(RunInfoDir() + "/JobLog.job");
  EXPECT_THAT(joblog, HasSubstr("task sharded shard 1 of 4 done: failed"));
  EXPECT_THAT(joblog, HasSubstr("task sharded shard 3 of 4 done: passed"));
  EXPECT_THAT(ReasonOf(sharded), HasSubstr("(shard 1 of 4)"));
}

TEST_F(RunnerE2ETest, TaskFlagRunsOnlyTheSelectedTasks) {
  EXPECT_EQ(Run("task { id: \"unit_a\" function { name: \"e2e_ok\" } }\n"
                "task { id: \"e2e\" function { name: \"e2e_fail\" } }\n"
                "task { id: \"unit_b\" command { argv: \"/bin/true\" } }\n",
                {"--task=unit_.*"}),
            0);
  const Struct results = Results();
  EXPECT_EQ(ResultOf(TaskOf(results, "unit_a")), "passed");
  EXPECT_EQ(ResultOf(TaskOf(results, "unit_b")), "passed");
  const Struct skipped = TaskOf(results, "e2e");
  EXPECT_EQ(ResultOf(skipped), "skipped");
  EXPECT_EQ(ReasonOf(skipped), "not selected by --task=unit_.*");
  EXPECT_THAT(Stdout(), ContainsRegex("e2e +SKIPPED"));
}

TEST_F(RunnerE2ETest, TaskFlagErrorsAreUsageErrors) {
  const std::string spec = "task { id: \"unit_a\" function { name: \"e2e_ok\" } }\n"
                           "task { id: \"e2e\" function { name: \"e2e_ok\" } }\n";
  EXPECT_EQ(Run(spec, {"--task=unit_("}), 2);
  EXPECT_THAT(Stderr(), HasSubstr("runner: --task=unit_(: \"unit_(\" is not a "
                                  "valid regular expression: "));
  EXPECT_THAT(Stderr(), HasSubstr("usage: runner"));
  EXPECT_EQ(Run(spec, {"--task", "unit"}), 2);
  EXPECT_THAT(Stderr(), HasSubstr("--task=unit: \"unit\" matches no task id"));
  EXPECT_THAT(Stderr(), HasSubstr("the tasks are: unit_a, e2e"));
  struct stat st;
  EXPECT_NE(::stat((dir_ + "/runs").c_str(), &st), 0) << "runinfo was created";
}

// The sections of task `id` in results.json.
std::vector<Struct> SectionsOf(const Struct& task) {
  std::vector<Struct> sections;
  for (const Value& section :
       task.fields().at("sections").list_value().values()) {
    sections.push_back(section.struct_value());
  }
  return sections;
}

std::string NameOf(const Struct& section) {
  return section.fields().at("name").string_value();
}

// A gtest task of //runner:gtest_stream_test_helper in `modes`.
std::string GTestTask(const std::string& id, const std::string& modes,
                      const std::string& extra = "") {
  return absl::StrCat("task { id: \"", id, "\" ", extra,
                      " command { argv: \"runner/gtest_stream_test_helper\" "
                      "argv: \"--mode=",
                      modes, "\" gtest: true } }\n");
}

TEST_F(RunnerE2ETest, GTestCrashKeepsTheEndedTestsAndNamesTheRunningOne) {
  EXPECT_EQ(Run(absl::StrCat(GTestTask("segv", "crash"),
                             GTestTask("abrt", "abort"),
                             GTestTask("exit", "exit"),
                             // Malformed lines in the stream change nothing.
                             GTestTask("garbage", "garbage,crash"),
                             // Nor another process's connection, made first.
                             GTestTask("stranger", "stranger,crash"))),
            1);
  const Struct results = Results();
  for (const auto& [id, ending] :
       std::vector<std::pair<std::string, std::string>>{
           {"segv", "killed by SIGSEGV"},
           {"abrt", "killed by SIGABRT"},
           {"exit", "exited with code 3"},
           {"garbage", "killed by SIGSEGV"},
           {"stranger", "killed by SIGSEGV"}}) {
    SCOPED_TRACE(id);
    const Struct task = TaskOf(results, id);
    EXPECT_EQ(ResultOf(task), "errored");
    EXPECT_THAT(ReasonOf(task),
                HasSubstr(absl::StrCat("Order.Third: ", ending,
                                       " while running")));
    const std::vector<Struct> sections = SectionsOf(task);
    ASSERT_EQ(sections.size(), 3u)
        << ReadFile(absl::StrCat(RunInfoDir(), "/TaskLog.", id));
    EXPECT_EQ(NameOf(sections[0]), "Order.First");
    EXPECT_EQ(ResultOf(sections[0]), "passed");
    EXPECT_EQ(NameOf(sections[1]), "Order.Second");
    EXPECT_EQ(ResultOf(sections[1]), "passed");
    EXPECT_EQ(NameOf(sections[2]), "Order.Third");
    EXPECT_EQ(ResultOf(sections[2]), "errored");
    EXPECT_THAT(ReasonOf(sections[2]),
                HasSubstr(absl::StrCat("Order.Third: ", ending)));
  }
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.garbage"),
              HasSubstr("GoogleTest stream: ignoring a malformed line"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.stranger"),
              HasSubstr("GoogleTest stream: ignored 1 connection(s) held open "
                        "by another process"));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.segv"),
              Not(HasSubstr("malformed")));
}

TEST_F(RunnerE2ETest, GTestHangingPastItsTimeoutIsAbortedNamingTheTest) {
  EXPECT_EQ(Run(GTestTask("hang", "hang", "timeout: \"1s\"")), 1);
  const Struct task = TaskOf(Results(), "hang");
  // The runner's result and reason, as for any task that timed out.
  EXPECT_EQ(ResultOf(task), "aborted");
  EXPECT_THAT(ReasonOf(task), HasSubstr("timed out after 1s"));
  const std::vector<Struct> sections = SectionsOf(task);
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_EQ(ResultOf(sections[0]), "passed");
  EXPECT_EQ(ResultOf(sections[1]), "passed");
  EXPECT_EQ(NameOf(sections[2]), "Order.Third");
  EXPECT_EQ(ResultOf(sections[2]), "aborted");
  EXPECT_EQ(ReasonOf(sections[2]),
            "Order.Third was running when the task was terminated (SIGTERM)");
  // Ended by the SIGTERM, not by the runner's SIGKILL after the grace.
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.hang"),
              HasSubstr("task hang aborted: Order.Third was running"));
}

TEST_F(RunnerE2ETest, GTestInterruptedIsAbortedNamingTheRunningTest) {
  const std::string fifo = MakeFifo("announce");
  std::vector<std::string> args = {"--runinfo_dir=" + dir_ + "/runs"};
  args.push_back(WriteSpec(
      GTestTask("hang", absl::StrCat("hang\" argv: \"--announce=", fifo))));
  Process runner = StartRunner(args);
  ASSERT_GT(ReadAnnouncement(fifo), 0);
  ASSERT_THAT(runner.Signal(SIGINT), IsOk());
  EXPECT_EQ(Finish(runner), 1);
  const Struct task = TaskOf(Results(), "hang");
  EXPECT_EQ(ResultOf(task), "aborted");
  EXPECT_EQ(ReasonOf(task), "aborted by SIGINT");
  const std::vector<Struct> sections = SectionsOf(task);
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_EQ(ResultOf(sections[1]), "passed");
  EXPECT_EQ(ResultOf(sections[2]), "aborted");
  EXPECT_EQ(ReasonOf(sections[2]),
            "Order.Third was running when the task was terminated (SIGTERM)");
}

TEST_F(RunnerE2ETest, GTestBinaryIgnoringSigtermIsKilledAndStillReported) {
  // The runner would wait an hour; the task process waits 2 s for the
  // binary, then kills it and reports.
  EXPECT_EQ(Run(absl::StrCat("termination_grace: \"1h\"\n",
                             GTestTask("stubborn", "hang,ignore_term",
                                       "timeout: \"1s\""))),
            1);
  const Struct task = TaskOf(Results(), "stubborn");
  EXPECT_EQ(ResultOf(task), "aborted");
  EXPECT_THAT(ReasonOf(task), HasSubstr("timed out after 1s"));
  const std::vector<Struct> sections = SectionsOf(task);
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_EQ(ResultOf(sections[2]), "aborted");
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.stubborn"),
              HasSubstr("after SIGTERM: SIGKILL"));
}

TEST_F(RunnerE2ETest, GTestThatRanToItsEndIsReportedFromItsJson) {
  // no_stream: the binary never connects to the stream socket.
  EXPECT_EQ(Run(absl::StrCat(GTestTask("pass", "pass"),
                             GTestTask("silent", "no_stream"),
                             GTestTask("garbage", "garbage"))),
            0);
  const Struct results = Results();
  for (const std::string id : {"pass", "silent", "garbage"}) {
    SCOPED_TRACE(id);
    const Struct task = TaskOf(results, id);
    EXPECT_EQ(ResultOf(task), "passed");
    const std::vector<Struct> sections = SectionsOf(task);
    ASSERT_EQ(sections.size(), 4u);
    for (const Struct& section : sections) {
      EXPECT_EQ(ResultOf(section), "passed");
      // Only the JSON has each test's source file.
      EXPECT_THAT(section.fields().at("xref").struct_value().fields()
                      .at("file").string_value(),
                  HasSubstr("gtest_stream_test_helper.cc"));
    }
    EXPECT_EQ(NameOf(sections[3]), "Order.Fourth");
  }
  EXPECT_THAT(ReadFile(RunInfoDir() + "/TaskLog.pass"),
              HasSubstr("--gtest_stream_result_to=127.0.0.1:"));
}

TEST_F(RunnerE2ETest, GTestNonAsciiFailureMessageIsIntactInEveryReport) {
  EXPECT_EQ(Run(GTestTask("utf8", "utf8")), 1);
  constexpr char kMessage[] =
      "Gr\xC3\xBC\xC3\x9F" "e: \xC3\xA4 \xC3\xB6 \xC3\xBC \xC3\x9F, party "
      "\xF0\x9F\x8E\x89";
  const Struct task = TaskOf(Results(), "utf8");
  EXPECT_EQ(ResultOf(task), "failed");
  const std::vector<Struct> sections = SectionsOf(task);
  ASSERT_EQ(sections.size(), 4u);
  EXPECT_EQ(ResultOf(sections[3]), "failed");
  EXPECT_THAT(ReasonOf(sections[3]), HasSubstr(kMessage));
  const std::string xunit = ReadFile(RunInfoDir() + "/xunit.xml");
  EXPECT_THAT(xunit, HasSubstr(kMessage));
  EXPECT_THAT(reporter::ParseValidXml(xunit, Runfile("reporter/junit.xsd")),
              IsOk());
  EXPECT_THAT(ReadFile(RunInfoDir() + "/report.html"), HasSubstr(kMessage));
}

}  // namespace
}  // namespace taskfork
