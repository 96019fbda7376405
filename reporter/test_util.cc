#include "reporter/test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "glog/logging.h"

namespace taskfork::reporter {

std::string MakeTempDir() {
  std::string tmpl = "/tmp/reporter_test_XXXXXX";
  PCHECK(::mkdtemp(tmpl.data()) != nullptr) << "mkdtemp";
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
