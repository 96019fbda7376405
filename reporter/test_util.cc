#include "reporter/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "absl/time/time.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"

namespace taskfork::reporter {

namespace {

// Directories MakeTempDir made, each with the pid that made it: a forked
// child inherits the list but removes only its own (test children
// _exit anyway).
struct MadeDir {
  pid_t owner;
  std::string path;
};
struct MadeDirs {
  bool at_exit_registered = false;
  std::vector<MadeDir> dirs;
};

MadeDirs& Made() {
  static MadeDirs* made = new MadeDirs;  // never destroyed: atexit reads it
  return *made;
}

void RemoveMadeDirs() {
  const pid_t self = ::getpid();
  for (const MadeDir& dir : Made().dirs) {
    if (dir.owner != self) continue;
    std::error_code ec;
    std::filesystem::remove_all(dir.path, ec);
    if (ec) LOG(ERROR) << "cannot remove " << dir.path << ": " << ec.message();
  }
  Made().dirs.clear();
}

}  // namespace

std::string MakeTempDir() {
  // Socket paths under it must fit in sun_path (108 bytes): TEST_TMPDIR is
  // usually longer, so a short base ($TMPDIR or /tmp), cleaned up at exit.
  const char* env = std::getenv("TMPDIR");
  std::string base = env != nullptr && *env != '\0' ? env : "/tmp";
  if (base.size() > 40) base = "/tmp";
  std::string tmpl = absl::StrCat(base, "/reporter_test_XXXXXX");
  PCHECK(::mkdtemp(tmpl.data()) != nullptr) << "mkdtemp " << tmpl;
  MadeDirs& made = Made();
  if (!made.at_exit_registered) {
    CHECK_EQ(std::atexit(RemoveMadeDirs), 0);
    made.at_exit_registered = true;
  }
  made.dirs.push_back({::getpid(), tmpl});
  return tmpl;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TaskInfo TaskInfoOf(const std::string& id) {
  TaskInfo t;
  t.set_id(id);
  return t;
}

ReportClientOptions ClientOptions(const std::string& address,
                                  const std::string& task,
                                  const std::string& secret_file) {
  ReportClientOptions o;
  o.socket_path = address;
  o.task_id = task;
  o.secret_file = secret_file;
  o.io_timeout = absl::Seconds(20);
  return o;
}

int WaitChild(pid_t pid) {
  int status = 0;
  PCHECK(::waitpid(pid, &status, 0) == pid) << "waitpid";
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

const TaskReport* FindTask(const JobReport& report, const std::string& task_id) {
  for (const TaskReport& t : report.tasks()) {
    if (t.id() == task_id) return &t;
  }
  return nullptr;
}

namespace {
const Section* FindIn(const google::protobuf::RepeatedPtrField<Section>& sections,
                      const std::string& name) {
  for (const Section& s : sections) {
    if (s.name() == name) return &s;
    if (const Section* found = FindIn(s.sections(), name)) return found;
  }
  return nullptr;
}
int CountIn(const google::protobuf::RepeatedPtrField<Section>& sections) {
  int n = 0;
  for (const Section& s : sections) n += 1 + CountIn(s.sections());
  return n;
}
}  // namespace

const Section* FindSection(const JobReport& report, const std::string& task_id,
                           const std::string& name) {
  const TaskReport* task = FindTask(report, task_id);
  return task == nullptr ? nullptr : FindIn(task->sections(), name);
}

int CountSections(const TaskReport& task) { return CountIn(task.sections()); }

JobReport ManyCasesReport(int cases) {
  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  ReportBuilderOptions options;
  options.job_name = "many";
  options.host = "host";
  options.submitter = "user";
  options.start_time = t0;
  ReportBuilder b(options);
  auto task = [&](const std::string& id, int64_t pid, absl::Duration start) {
    TaskStart ts;
    ts.set_name(id);
    ts.set_logfile("TaskLog." + id);
    *ts.mutable_time() = ToProtoTime(t0 + start);
    CHECK(b.StartTask(id, pid, ts).ok());
  };
  auto stop = [&](const std::string& id, int64_t pid, absl::Duration at,
                  Result r) {
    TaskStop te;
    *te.mutable_result() = MakeResultInfo(r, r == Result::kPassed ? "" : "exit 1");
    *te.mutable_time() = ToProtoTime(t0 + at);
    CHECK(b.StopTask(id, pid, te).ok());
  };
  task("setup", 10, absl::ZeroDuration());
  stop("setup", 10, absl::Milliseconds(500), Result::kPassed);
  task("gtest", 11, absl::ZeroDuration());
  uint64_t id = 1;
  for (int i = 0; i < cases; ++i) {
    const absl::Duration at = absl::Milliseconds(1) * i;
    SectionStart s;
    s.set_id(id++);
    s.set_type("Testcase");
    s.set_name(absl::StrCat("Suite", i / 100, ".Case", i));
    s.mutable_source()->set_file("suite_test.cc");
    s.mutable_source()->set_line(10 + i % 1000);
    s.mutable_log()->set_file("TaskLog.gtest");
    s.mutable_log()->set_begin(i * 100);
    *s.mutable_time() = ToProtoTime(t0 + at);
    CHECK(b.StartSection("gtest", 11, s).ok());
    const bool fail = i % 100 == 99;
    if (fail) {
      SectionStart step;
      step.set_id(id++);
      step.set_parent_id(s.id());
      step.set_type("Step");
      step.set_name("check");
      *step.mutable_time() = ToProtoTime(t0 + at);
      CHECK(b.StartSection("gtest", 11, step).ok());
      SectionStop step_stop;
      step_stop.set_id(step.id());
      *step_stop.mutable_result() =
          MakeResultInfo(Result::kFailed, "suite_test.cc:42: Expected: 1 == 2");
      *step_stop.mutable_time() = ToProtoTime(t0 + at + absl::Microseconds(500));
      CHECK(b.StopSection("gtest", 11, step_stop).ok());
    }
    SectionStop e;
    e.set_id(s.id());
    if (fail) *e.mutable_result() = MakeResultInfo(Result::kFailed, "1 failure");
    e.set_log_size(100);
    *e.mutable_time() = ToProtoTime(t0 + at + absl::Microseconds(900));
    CHECK(b.StopSection("gtest", 11, e).ok());
  }
  const absl::Duration end = absl::Milliseconds(1) * cases;
  stop("gtest", 11, end, cases >= 100 ? Result::kFailed : Result::kPassed);
  task("teardown", 12, absl::Milliseconds(500));
  stop("teardown", 12, end + absl::Milliseconds(100), Result::kErrored);
  return b.Build(t0 + end + absl::Milliseconds(200));
}

}  // namespace taskfork::reporter
