#include "tests/run_leftovers.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "base/errno.h"
#include "base/fd.h"

namespace taskfork::tests {
namespace {

std::vector<std::string> Names(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  return names;
}


void AddPid(const std::string& text, std::set<pid_t>* pids) {
  pid_t pid;
  if (absl::SimpleAtoi(text, &pid) && pid > 0) pids->insert(pid);
}

}  // namespace

std::set<pid_t> PidsNamedInRun(const std::string& run_dir) {
  std::set<pid_t> pids;
  for (const std::string& name : Names(run_dir)) {
    if (name.rfind("JobLog.", 0) != 0 && name.rfind("TaskLog.", 0) != 0) {
      continue;
    }
    if (const size_t at = name.rfind(":pid-"); at != std::string::npos) {
      AddPid(name.substr(at + 5), &pids);
    }
    // "<time>Z <severity> <pid> <tid> <file>:<line>] ...", one per line.
    const std::vector<std::string> lines =
        absl::StrSplit(ReadFile(run_dir + "/" + name), '\n');
    for (const std::string& line : lines) {
      const std::vector<absl::string_view> fields =
          absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (fields.size() == 4 && !fields[0].empty() &&
          fields[0].back() == 'Z' && fields[1].size() == 1 &&
          absl::string_view("IWEF").find(fields[1][0]) !=
              absl::string_view::npos) {
        AddPid(std::string(fields[2]), &pids);
      }
    }
  }
  return pids;
}

std::set<pid_t> PidsNamedInRuns(const std::string& runinfo_root) {
  std::set<pid_t> pids;
  for (const std::string& name : Names(runinfo_root)) {
    if (name == "latest") continue;
    const std::set<pid_t> run = PidsNamedInRun(runinfo_root + "/" + name);
    pids.insert(run.begin(), run.end());
  }
  return pids;
}

std::vector<std::string> SharedMemorySegmentsOf(const std::set<pid_t>& pids) {
  std::vector<std::string> found;
  for (const std::string& name : Names("/dev/shm")) {
    for (pid_t pid : pids) {
      if (name.find(absl::StrCat("-", pid, "-")) != std::string::npos) {
        found.push_back(name);
        break;
      }
    }
  }
  return found;
}

std::vector<pid_t> LivingProcesses(const std::set<pid_t>& pids,
                                   const std::set<pid_t>& ignore) {
  std::vector<pid_t> living;
  for (pid_t pid : pids) {
    if (ignore.count(pid) != 0 || ::kill(pid, 0) != 0) continue;
    // A zombie (state Z) is not running; the subreaper check reaps those.
    const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    const size_t close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() &&
        stat[close + 2] == 'Z') {
      continue;
    }
    living.push_back(pid);
  }
  return living;
}

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

std::map<int, std::string> OpenDescriptors() {
  std::map<int, std::string> fds;
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return fds;
  const int own = ::dirfd(dir);
  while (const dirent* entry = ::readdir(dir)) {
    int fd;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == own) continue;
    char target[4096];
    const ssize_t n = ::readlinkat(own, entry->d_name, target, sizeof(target));
    fds[fd] = n > 0 ? std::string(target, n) : "?";
  }
  ::closedir(dir);
  return fds;
}

absl::Status KillAndAwaitExit(pid_t pid, absl::Duration timeout) {
  // Through a pidfd: its parent may reap it at any time and the pid be
  // reused; the pidfd always means this process.
  const long pidfd = ::syscall(SYS_pidfd_open, pid, 0);
  if (pidfd < 0) {
    return ErrnoError(errno, "pidfd_open for pid", absl::StrCat(pid));
  }
  const OwnedFd owned(static_cast<int>(pidfd));
  if (::syscall(SYS_pidfd_send_signal, owned.get(), SIGKILL, nullptr, 0) != 0) {
    return ErrnoError(errno, "pidfd_send_signal SIGKILL to pid",
                      absl::StrCat(pid));
  }
  pollfd gone{owned.get(), POLLIN, 0};
  const int ready =
      ::poll(&gone, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout)));
  if (ready < 0) return ErrnoError(errno, "poll pidfd of", absl::StrCat(pid));
  if (ready == 0) {
    return absl::DeadlineExceededError(absl::StrCat(
        "pid ", pid, " still alive ", absl::FormatDuration(timeout),
        " after SIGKILL"));
  }
  return absl::OkStatus();
}

}  // namespace taskfork::tests
