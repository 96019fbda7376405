#include "fork/process_set.h"

#include <poll.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "glog/logging.h"

namespace taskfork {

void ProcessSet::Add(Process* process) {
  CHECK(process != nullptr && process->pid() > 0) << "empty Process";
  CHECK(!process->reaped()) << "pid " << process->pid() << " is reaped";
  CHECK(std::find(processes_.begin(), processes_.end(), process) ==
        processes_.end())
      << "pid " << process->pid() << " is in the set already";
  processes_.push_back(process);
}

void ProcessSet::Remove(Process* process) {
  processes_.erase(std::remove(processes_.begin(), processes_.end(), process),
                   processes_.end());
}

void ProcessSet::AddFd(int fd) {
  CHECK_GE(fd, 0);
  CHECK(std::find(fds_.begin(), fds_.end(), fd) == fds_.end())
      << "fd " << fd << " is in the set already";
  fds_.push_back(fd);
}

void ProcessSet::RemoveFd(int fd) {
  fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end());
}

absl::StatusOr<ProcessSet::Ready> ProcessSet::Wait(absl::Time deadline) {
  // Reaped processes (joined or killed by their owner) have nothing left
  // to wait for.
  processes_.erase(std::remove_if(processes_.begin(), processes_.end(),
                                  [](Process* p) { return p->reaped(); }),
                   processes_.end());
  CHECK(!empty() || deadline != absl::InfiniteFuture())
      << "ProcessSet::Wait on nothing, forever";
  Ready ready;
  for (;;) {
    pollfds_.clear();
    owners_.clear();
    for (Process* process : processes_) {
      pollfds_.push_back({process->pidfd(), POLLIN, 0});
      owners_.push_back(process);
      if (process->result_fd() >= 0) {
        pollfds_.push_back({process->result_fd(), POLLIN, 0});
        owners_.push_back(process);
      }
    }
    for (int fd : fds_) {
      pollfds_.push_back({fd, POLLIN, 0});
      owners_.push_back(nullptr);
    }
    timespec ts;
    timespec* timeout = nullptr;
    if (deadline != absl::InfiniteFuture()) {
      ts = absl::ToTimespec(
          std::max(deadline - absl::Now(), absl::ZeroDuration()));
      timeout = &ts;
    }
    const int count = ::ppoll(pollfds_.data(), pollfds_.size(), timeout,
                              nullptr);
    if (count < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "ppoll on the process set's descriptors");
    }
    if (count == 0) return ready;  // the deadline
    for (size_t i = 0; i < pollfds_.size(); ++i) {
      if (pollfds_[i].revents == 0) continue;
      Process* owner = owners_[i];
      if (owner == nullptr) {
        ready.fds.push_back(pollfds_[i].fd);
      } else if (pollfds_[i].fd == owner->result_fd()) {
        owner->DrainResult().IgnoreError();  // kept in the Process
      } else {
        ready.exited.push_back(owner);
      }
    }
    // Only result bytes arrived: nothing to report yet, wait on.
    if (!ready.exited.empty() || !ready.fds.empty()) return ready;
  }
}

}  // namespace taskfork
