// Faults inside a task, through the real runner: killed while reporting,
// a segmentation fault, a hang, a family that ignores SIGTERM, 1 GiB on
// stdout, 200 children. Each checks the exit code, results.json, the logs,
// and (FaultTest::TearDown) that no process, descriptor or /dev/shm entry is
// left behind.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/sanitizers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace taskfork::faults {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

class TaskFaultTest : public FaultTest {
 protected:
  // The first top-level section of `task`.
  static Struct FirstSection(const Struct& task) {
    auto sections = task.fields().find("sections");
    if (sections == task.fields().end() ||
        sections->second.list_value().values_size() == 0) {
      ADD_FAILURE() << "task has no sections";
      return {};
    }
    return sections->second.list_value().values(0).struct_value();
  }
  static std::string NameOf(const Struct& node) {
    auto name = node.fields().find("name");
    return name == node.fields().end() ? "" : name->second.string_value();
  }
};

TEST_F(TaskFaultTest, KilledWhileReportingIsErroredAndLosesNothingElse) {
  AnnounceFifo fifo(dir() + "/announce");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"killed\"\nmax_parallel: 2\n"
           "task { id: \"victim\" function { name: \"fault_report_forever\" "
           "args: \"", fifo.path(), "\" } }\n"
           "task { id: \"bystander\" function { name: \"fault_shm_queue\" "
           "args: \"65536\" } }\n"))});
  const std::vector<pid_t> pids = fifo.Read(1);
  ASSERT_EQ(pids.size(), 1u);
  const std::string socket = SocketTarget(runner);
  ASSERT_EQ(::kill(pids[0], SIGKILL), 0);
  EXPECT_EQ(runner.Finish(), 1);

  const Struct results = Results(runner);
  ExpectEveryTask(results, {"victim", "bystander"});
  const auto tasks = Tasks(results);
  const Struct& victim = tasks.at("victim");
  EXPECT_EQ(ResultOf(victim), "errored");
  EXPECT_THAT(ReasonOf(victim), HasSubstr("killed by SIGKILL"));
  // The section it was in the middle of is closed as Errored, with the
  // steps that reached the server before it.
  const Struct section = FirstSection(victim);
  EXPECT_EQ(NameOf(section), "flooding");
  EXPECT_EQ(ResultOf(section), "errored");
  EXPECT_THAT(ReasonOf(section), HasSubstr("disconnected"));
  EXPECT_GE(section.fields().at("sections").list_value().values_size(), 50);
  EXPECT_EQ(ResultOf(tasks.at("bystander")), "passed");

  const std::string run_dir = RunDir(runner);
  EXPECT_THAT(ReadFile(run_dir + "/TaskLog.victim"),
              HasSubstr("task victim started"));
  EXPECT_THAT(ReadFile(run_dir + "/JobLog.killed"),
              HasSubstr("task victim done: errored"));
  EXPECT_THAT(Stdout(), HasSubstr("victim"));
  ExpectNoSocketLeft(runner, socket);
}

TEST_F(TaskFaultTest, SegfaultIsErroredWithAStackTraceInItsLog) {
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec("name: \"segv\"\n"
                 "task { id: \"crash\" function { name: \"fault_segv\" } }\n"
                 "task { id: \"fine\" function { name: \"fault_shm_queue\" "
                 "args: \"4096\" } }\n")});
  EXPECT_EQ(runner.Finish(), 1);
  const Struct results = Results(runner);
  ExpectEveryTask(results, {"crash", "fine"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("crash")), "errored");
  const Struct section = FirstSection(tasks.at("crash"));
  EXPECT_EQ(NameOf(section), "crashing");
  EXPECT_EQ(ResultOf(section), "errored");
  EXPECT_EQ(ResultOf(tasks.at("fine")), "passed");

  const std::string log = ReadFile(RunDir(runner) + "/TaskLog.crash");
  constexpr absl::string_view kWriting = "fault_segv: writing to the PROT_NONE page at ";
  const size_t writing = log.find(std::string(kWriting));
  ASSERT_NE(writing, std::string::npos) << log;
  const size_t address_at = writing + kWriting.size();
  const std::string address =
      log.substr(address_at, log.find('\n', address_at) - address_at);
  EXPECT_EQ(ReasonOf(tasks.at("crash")),
            "task process killed by SIGSEGV; see its log for the stack trace");
  // glog's failure handler (installed after ASan's, so also under ASan):
  // the signal, the address, and the frames, with the task function.
  EXPECT_THAT(log, HasSubstr("*** SIGSEGV (@" + address + ") received by PID"));
  EXPECT_THAT(log, HasSubstr("TaskforkTaskFunction_fault_segv"));
}

TEST_F(TaskFaultTest, HangIsAbortedByItsTimeout) {
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec("name: \"hang\"\ntermination_grace: \"0.3s\"\n"
                 "task { id: \"stuck\" timeout: \"1s\" "
                 "function { name: \"fault_hang\" } }\n")});
  EXPECT_EQ(runner.Finish(), 1);
  const Struct results = Results(runner);
  ExpectEveryTask(results, {"stuck"});
  const Struct stuck = Tasks(results).at("stuck");
  EXPECT_EQ(ResultOf(stuck), "aborted");
  EXPECT_EQ(ReasonOf(stuck), "timed out after 1s");
  const Struct section = FirstSection(stuck);
  EXPECT_EQ(NameOf(section), "hanging");
  EXPECT_THAT(ResultOf(section), AnyOf("errored", "aborted"));
  EXPECT_THAT(ReadFile(RunDir(runner) + "/JobLog.hang"),
              HasSubstr("task stuck timed out after 1s: SIGTERM to its "
                        "process group"));
  EXPECT_THAT(ReadFile(RunDir(runner) + "/TaskLog.stuck"),
              HasSubstr("fault_hang: hanging"));
}

TEST_F(TaskFaultTest, FamilyIgnoringSigtermIsKilledWhole) {
  AnnounceFifo fifo(dir() + "/announce");
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat(
           "name: \"family\"\ntermination_grace: \"0.3s\"\n"
           "task { id: \"stubborn\" timeout: \"2s\" function { name: "
           "\"fault_stubborn_family\" args: \"", fifo.path(),
           "\" args: \"5\" } }\n"))});
  // The task, 5 children, 5 grandchildren.
  const std::vector<pid_t> pids = fifo.Read(11);
  ASSERT_EQ(pids.size(), 11u);
  EXPECT_EQ(runner.Finish(), 1);
  const Struct stubborn = Tasks(Results(runner)).at("stubborn");
  EXPECT_EQ(ResultOf(stubborn), "aborted");
  EXPECT_EQ(ReasonOf(stubborn), "timed out after 2s");
  for (pid_t pid : pids) EXPECT_TRUE(ProcessGone(pid)) << "pid " << pid;
  EXPECT_THAT(ReadFile(RunDir(runner) + "/JobLog.family"),
              HasSubstr("outlived its termination grace: SIGKILL"));
}

// The task's stdout is its TaskLog file (tasklog's capture_stdio): the
// runner never sees the bytes, so it stays small, and the capture is
// complete, not bounded.
TEST_F(TaskFaultTest, GibibyteOnStdoutIsCapturedAndTheRunnerStaysSmall) {
  constexpr int64_t kBytes = int64_t{1} << 30;
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat("name: \"flood\"\n"
                              "task { id: \"loud\" function { name: "
                              "\"fault_stdout_flood\" args: \"",
                              kBytes, "\" } }\n"
                              "task { id: \"quiet\" function { name: "
                              "\"fault_shm_queue\" args: \"4096\" } }\n"))});
  EXPECT_EQ(runner.Finish(), 0);
  const auto tasks = Tasks(Results(runner));
  EXPECT_EQ(ResultOf(tasks.at("loud")), "passed");
  EXPECT_EQ(ResultOf(tasks.at("quiet")), "passed");
  const std::string log = RunDir(runner) + "/TaskLog.loud";
  struct stat st;
  ASSERT_EQ(::stat(log.c_str(), &st), 0);
  EXPECT_GE(st.st_size, kBytes);
  EXPECT_LT(st.st_size, kBytes + (1 << 20));
  // The last line after the flood is there, whole.
  const int fd = ::open(log.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string tail(4096, '\0');
  const ssize_t n = ::pread(fd, tail.data(), tail.size(),
                            st.st_size - static_cast<off_t>(tail.size()));
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_THAT(tail, HasSubstr(absl::StrCat("fault_stdout_flood: wrote ",
                                           kBytes, " bytes to stdout")));
  ::unlink(log.c_str());  // 1 GiB of disk back now.
  constexpr int64_t kRssLimit = int64_t{kAddressSanitizer ? 512 : 128} << 20;
  EXPECT_LT(runner.max_rss_bytes(), kRssLimit)
      << "the runner's peak RSS grew with the task's output";
}

TEST_F(TaskFaultTest, TwoHundredChildrenAreAllReapedOrKilled) {
  const std::string pids_file = dir() + "/pids";
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec(absl::StrCat("name: \"forks\"\ntermination_grace: \"0.3s\"\n"
                              "task { id: \"parent\" function { name: "
                              "\"fault_fork_many\" args: \"200\" args: \"",
                              pids_file, "\" } }\n"))});
  EXPECT_EQ(runner.Finish(), 0);
  EXPECT_EQ(ResultOf(Tasks(Results(runner)).at("parent")), "passed");
  const std::vector<std::string> lines =
      absl::StrSplit(ReadFile(pids_file), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 200u);
  for (const std::string& line : lines) {
    pid_t pid = 0;
    ASSERT_TRUE(absl::SimpleAtoi(line, &pid));
    EXPECT_TRUE(ProcessGone(pid)) << "child " << pid << " survived the run";
  }
  EXPECT_THAT(ReadFile(RunDir(runner) + "/TaskLog.parent"),
              HasSubstr("fault_fork_many: 200 children, 100 reaped"));
}

// Forked children of a task that stop sections and return without Flush():
// nothing they queued is lost (the report client's child-exit handler).
TEST_F(TaskFaultTest, ChildrenThatReturnWithoutFlushLoseNoSection) {
  Runner runner = StartRunner(
      {RunInfoFlag(),
       WriteSpec("name: \"children\"\n"
                 "task { id: \"kids\" function { name: "
                 "\"fault_children_report\" } }\n")});
  EXPECT_EQ(runner.Finish(), 0);
  const Struct results = Results(runner);
  ExpectEveryTask(results, {"kids"});
  const Struct kids = Tasks(results).at("kids");
  EXPECT_EQ(ResultOf(kids), "passed") << ReasonOf(kids);
  // name -> result of every section, at any depth.
  std::map<std::string, std::string> sections;
  std::function<void(const Struct&)> collect = [&](const Struct& node) {
    auto list = node.fields().find("sections");
    if (list == node.fields().end()) return;
    for (const auto& value : list->second.list_value().values()) {
      const Struct& section = value.struct_value();
      sections[NameOf(section)] =
          ResultOf(section) + (ReasonOf(section).empty()
                                   ? ""
                                   : ": " + ReasonOf(section));
      collect(section);
    }
  };
  collect(kids);
  std::map<std::string, std::string> expected = {{"task section", "passed"},
                                                 {"task queued", "passed"}};
  for (const std::string who :
       {"process child", "pcall child 0", "pcall child 1"}) {
    for (const std::string what : {" queued", " flushed start", " step"}) {
      expected[who + what] = "passed";
    }
  }
  EXPECT_EQ(sections, expected);
}

}  // namespace
}  // namespace taskfork::faults
