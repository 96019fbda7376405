#include "reporter/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace taskfork::reporter {

namespace {

// Directories MakeTempDir made, each with the pid that made it: a forked
// child inherits the list but removes only its own (RunInChild's children
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

int WaitChild(pid_t pid) {
  int status = 0;
  PCHECK(::waitpid(pid, &status, 0) == pid) << "waitpid";
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int RunInChild(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  PCHECK(pid >= 0) << "fork";
  if (pid == 0) ::_exit(body());
  return WaitChild(pid);
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

}  // namespace taskfork::reporter
