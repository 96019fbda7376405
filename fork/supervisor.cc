#include "fork/supervisor.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "fork/internal/managed_children.h"
#include "fork/internal/os.h"
#include "glog/logging.h"

namespace taskfork {
namespace {

#ifndef P_PIDFD
constexpr idtype_t P_PIDFD = static_cast<idtype_t>(3);  // Linux >= 5.4
#endif

std::atomic<bool> g_supervisor_exists{false};

// One orphan being ended: its pid and a pidfd that pins it.
struct Target {
  pid_t pid;
  OwnedFd pidfd;
  bool exited = false;
};

// Opens a pidfd for `pid` and checks that it is still our child (the pid
// could have been reaped by its Process and reused since we listed it):
// waitid(P_PIDFD, WNOWAIT) fails with ECHILD for anyone else's process.
// Returns an invalid OwnedFd when it is not (or no longer) ours.
absl::StatusOr<OwnedFd> OpenOwnChild(pid_t pid) {
  const long fd = fork_internal::PidfdOpen(pid);
  if (fd < 0) {
    if (errno == ESRCH) return OwnedFd();
    return ErrnoError(errno, "pidfd_open orphan", absl::StrCat(pid));
  }
  OwnedFd pidfd(static_cast<int>(fd));
  siginfo_t info{};
  if (RetryOnEintr([&] {
        return ::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info,
                        WEXITED | WNOHANG | WNOWAIT);
      }) != 0) {
    if (errno == ECHILD) return OwnedFd();
    return ErrnoError(errno, "waitid P_PIDFD orphan", absl::StrCat(pid));
  }
  return pidfd;
}

// Reaps `pid` (known to be our exited or exiting child). nullopt when someone
// else reaped it first.
absl::StatusOr<std::optional<ExitStatus>> Reap(pid_t pid, int options) {
  int status = 0;
  rusage usage{};
  const pid_t r =
      RetryOnEintr([&] { return ::wait4(pid, &status, options, &usage); });
  if (r == pid) {
    return std::optional<ExitStatus>(ExitStatus::FromWait(pid, status, usage));
  }
  if (r == 0 || (r < 0 && errno == ECHILD)) return std::optional<ExitStatus>();
  return ErrnoError(errno, "wait4 orphan", absl::StrCat(pid));
}

// Waits until every target has exited or `deadline`.
absl::Status WaitAll(std::vector<Target>& targets, absl::Time deadline) {
  for (;;) {
    std::vector<pollfd> fds;
    std::vector<Target*> waiting;
    for (Target& t : targets) {
      if (t.exited) continue;
      fds.push_back({t.pidfd.get(), POLLIN, 0});
      waiting.push_back(&t);
    }
    if (fds.empty()) return absl::OkStatus();
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return absl::OkStatus();
      timeout_ms = static_cast<int>(
          absl::ToInt64Milliseconds(left + absl::Microseconds(999)));
    }
    const int ready = ::poll(fds.data(), fds.size(), timeout_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll on orphan pidfds");
    }
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents != 0) waiting[i]->exited = true;
    }
  }
}

}  // namespace

absl::StatusOr<Supervisor> Supervisor::Create() {
  if (g_supervisor_exists.exchange(true)) {
    return absl::FailedPreconditionError(
        "a Supervisor already exists in this process");
  }
  int was = 0;
  if (::prctl(PR_GET_CHILD_SUBREAPER, &was) != 0 ||
      ::prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    g_supervisor_exists = false;
    return ErrnoError(errno, "prctl PR_SET_CHILD_SUBREAPER");
  }
  Supervisor supervisor;
  supervisor.active_ = true;
  supervisor.was_subreaper_ = was != 0;
  return supervisor;
}

Supervisor::Supervisor(Supervisor&& other) noexcept
    : active_(std::exchange(other.active_, false)),
      was_subreaper_(other.was_subreaper_) {}

Supervisor& Supervisor::operator=(Supervisor&& other) noexcept {
  if (this != &other) {
    this->~Supervisor();
    active_ = std::exchange(other.active_, false);
    was_subreaper_ = other.was_subreaper_;
  }
  return *this;
}

Supervisor::~Supervisor() {
  if (!active_) return;
  active_ = false;
  absl::StatusOr<std::vector<ExitStatus>> ended =
      KillOrphans(absl::ZeroDuration());
  LOG_IF(ERROR, !ended.ok()) << "Supervisor: ending orphans: " << ended.status();
  if (!was_subreaper_) ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  g_supervisor_exists = false;
}

absl::StatusOr<std::vector<pid_t>> Supervisor::Orphans() const {
  std::vector<pid_t> orphans;
  DIR* tasks = ::opendir("/proc/self/task");
  if (tasks == nullptr) return ErrnoError(errno, "opendir", "/proc/self/task");
  while (dirent* entry = ::readdir(tasks)) {
    if (entry->d_name[0] == '.') continue;
    const std::string text = fork_internal::ReadSmallFile(
        absl::StrCat("/proc/self/task/", entry->d_name, "/children"));
    for (absl::string_view word :
         absl::StrSplit(text, ' ', absl::SkipWhitespace())) {
      pid_t pid = 0;
      if (absl::SimpleAtoi(word, &pid) && pid > 0 &&
          !fork_internal::IsManagedChild(pid)) {
        orphans.push_back(pid);
      }
    }
  }
  ::closedir(tasks);
  return orphans;
}

absl::StatusOr<std::vector<ExitStatus>> Supervisor::ReapExitedOrphans() {
  TASKFORK_ASSIGN_OR_RETURN(std::vector<pid_t> orphans, Orphans());
  std::vector<ExitStatus> reaped;
  for (pid_t pid : orphans) {
    TASKFORK_ASSIGN_OR_RETURN(OwnedFd pidfd, OpenOwnChild(pid));
    if (!pidfd.valid()) continue;
    TASKFORK_ASSIGN_OR_RETURN(std::optional<ExitStatus> exit, Reap(pid, WNOHANG));
    if (exit.has_value()) reaped.push_back(*std::move(exit));
  }
  return reaped;
}

absl::StatusOr<std::vector<ExitStatus>> Supervisor::KillOrphans(
    absl::Duration grace) {
  std::vector<ExitStatus> ended;
  for (;;) {
    TASKFORK_ASSIGN_OR_RETURN(std::vector<pid_t> orphans, Orphans());
    std::vector<Target> targets;
    for (pid_t pid : orphans) {
      TASKFORK_ASSIGN_OR_RETURN(OwnedFd pidfd, OpenOwnChild(pid));
      if (!pidfd.valid()) continue;
      targets.push_back(Target{pid, std::move(pidfd)});
    }
    if (targets.empty()) return ended;
    if (grace > absl::ZeroDuration()) {
      for (Target& t : targets) {
        fork_internal::PidfdSendSignal(t.pidfd.get(), SIGTERM);
      }
      TASKFORK_RETURN_IF_ERROR(WaitAll(targets, absl::Now() + grace));
    }
    for (Target& t : targets) {
      if (!t.exited) fork_internal::PidfdSendSignal(t.pidfd.get(), SIGKILL);
    }
    TASKFORK_RETURN_IF_ERROR(WaitAll(targets, absl::InfiniteFuture()));
    for (Target& t : targets) {
      TASKFORK_ASSIGN_OR_RETURN(std::optional<ExitStatus> exit, Reap(t.pid, 0));
      if (exit.has_value()) ended.push_back(*std::move(exit));
    }
  }
}

}  // namespace taskfork
