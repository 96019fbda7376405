// End-to-end tests of the runner binary: real job specs, real task processes,
// real reporter, real signals. The test process is a child subreaper, so any
// process a run leaves behind becomes its child and is found (and failed on)
// after every test.
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::taskfork::testing::IsOk;
using ::testing::HasSubstr;

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/taskfork/", path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
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
    args.insert(args.begin(), Runfile("tests/e2e_runner"));
    const std::string out = dir_ + "/stdout";
    const std::string err = dir_ + "/stderr";
    auto process = Process::Start({}, [args, out, err]() mutable -> int {
      const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (out_fd < 0 || err_fd < 0) return 120;
      ::dup2(out_fd, 1);
      ::dup2(err_fd, 2);
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
  EXPECT_THAT(ReadFile(RunInfoDir() + "/env.txt"), HasSubstr("argv: "));
  EXPECT_THAT(ReadFile(RunInfoDir() + "/job.textpb"), HasSubstr("e2e_ok"));
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
  std::vector<std::pair<int64_t, int>> events;  // (time, +1 start / -1 end)
  for (int i = 0; i < 5; ++i) {
    std::istringstream line(ReadFile(absl::StrCat(marks, "/t", i)));
    int64_t start = 0, end = 0;
    line >> start >> end;
    ASSERT_GT(end, start) << "task t" << i;
    events.emplace_back(start, +1);
    events.emplace_back(end, -1);
  }
  std::sort(events.begin(), events.end());
  int running = 0, most = 0;
  for (const auto& [time, delta] : events) {
    running += delta;
    most = std::max(most, running);
  }
  EXPECT_LE(most, 2);
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
  ASSERT_EQ(::kill(reporter, SIGKILL), 0);
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

}  // namespace
}  // namespace taskfork
