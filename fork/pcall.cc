#include "fork/pcall.h"

#include <signal.h>
#include <sys/single_threaded.h>
#include <sys/epoll.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>  // NOLINT
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>  // NOLINT
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/errno.h"
#include "base/fd.h"
#include "fork/at_fork.h"
#include "fork/internal/child_syscalls.h"
#include "fork/process.h"
#include "glog/logging.h"

namespace taskfork {
namespace {

// ------------------------------------------------------------ join hooks

// The hooks, and how many RunJoinHooks() are running them. A plain mutex, not
// a rwlock held while hooks run: a fork must never find the lock held by a
// thread the child will not have, and glibc's rwlock cannot be released in a
// fork child (its write unlock compares thread ids, which differ there;
// re-creating it in place confuses TSan's lock tracking instead).
struct JoinHooks {
  JoinHooks() {
    AtForkHandlers handlers;
    // A process that never made a thread (glibc's __libc_single_threaded)
    // has nobody to exclude: its fork takes no lock and the child writes
    // nothing here (each page written after fork is a copy-on-write fault).
    handlers.prepare = [this] {
      locked_for_fork = !__libc_single_threaded;
      if (locked_for_fork) mu.lock();
    };
    handlers.parent = [this] {
      if (locked_for_fork) mu.unlock();
    };
    handlers.child = [this] {
      if (!locked_for_fork) {
        // Only a hook of this thread can be running (it forked).
        if (running != 0) running = 0;
        return;
      }
      // Runs in other threads of the parent do not exist here, and nobody
      // waits on `idle` (its waiters were other threads): start afresh.
      running = 0;
      new (&idle) std::condition_variable();
      fork_internal::ResetHeldMutexInChild(&mu);
    };
    registration = RegisterAtFork(kAtForkPriorityFork, std::move(handlers));
  }
  std::mutex mu;
  // Set by the prepare handler of the forking thread: whether it took `mu`.
  bool locked_for_fork = false;
  std::condition_variable idle;  // signalled when `running` drops to 0
  int running = 0;               // guarded by mu
  std::vector<std::pair<uint64_t, std::shared_ptr<const PcallJoinHook>>>
      hooks;             // guarded by mu
  uint64_t next_id = 1;  // guarded by mu
  AtForkRegistration registration;
};

JoinHooks& GetJoinHooks() {
  // Static storage, never destroyed: next to the other fork-time state in
  // .bss rather than on the heap, so that the pages written around every
  // fork (each a copy-on-write fault in parent and child) are fewer.
  alignas(JoinHooks) static unsigned char storage[sizeof(JoinHooks)];
  static JoinHooks* const hooks = new (storage) JoinHooks;
  return *hooks;
}

void RunJoinHooks(absl::Span<const pid_t> pids) {
  JoinHooks& hooks = GetJoinHooks();
  std::vector<std::shared_ptr<const PcallJoinHook>> snapshot;
  {
    std::lock_guard<std::mutex> lock(hooks.mu);
    ++hooks.running;
    for (const auto& entry : hooks.hooks) snapshot.push_back(entry.second);
  }
  for (const auto& hook : snapshot) (*hook)(pids);
  std::lock_guard<std::mutex> lock(hooks.mu);
  if (--hooks.running == 0) hooks.idle.notify_all();
}

// ------------------------------------------------------------ the loop

// epoll data: the call index and which descriptor.
constexpr uint64_t kResultFdBit = 1;
uint64_t Key(size_t index, bool result_fd) {
  return (static_cast<uint64_t>(index) << 1) | (result_fd ? kResultFdBit : 0);
}

class Runner {
 public:
  Runner(size_t count, const std::function<void(size_t, std::string*)>& body,
         const PcallOptions& options,
         std::vector<fork_internal::RawPcallOutcome>* outcomes)
      : count_(count),
        body_(body),
        options_(options),
        outcomes_(*outcomes),
        processes_(count) {
    outcomes_.clear();
    outcomes_.resize(count);
  }

  absl::Status Run() {
    const int epoll = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll < 0) {
      const absl::Status error = ErrnoError(errno, "epoll_create1");
      for (auto& outcome : outcomes_) outcome.bytes = error;
      return absl::OkStatus();
    }
    epoll_.Reset(epoll);
    const absl::Time start = absl::Now();
    const absl::Time deadline = options_.timeout == absl::InfiniteDuration()
                                    ? absl::InfiniteFuture()
                                    : start + options_.timeout;
    const size_t limit =
        options_.max_parallel <= 0
            ? count_
            : std::min(count_, static_cast<size_t>(options_.max_parallel));

    absl::Status status = absl::OkStatus();
    while (next_ < count_ || live_ > 0) {
      while (next_ < count_ && live_ < limit) StartNext();
      if (live_ == 0) continue;  // every start failed; start more or finish
      if (!WaitAndCollect(deadline)) {
        status = TimeOut();
        break;
      }
    }
    std::vector<pid_t> pids;
    for (const auto& outcome : outcomes_) {
      if (outcome.pid > 0) pids.push_back(outcome.pid);
    }
    if (!pids.empty()) RunJoinHooks(pids);
    return status;
  }

 private:
  void StartNext() {
    const size_t i = next_++;
    absl::StatusOr<Process> process = Process::StartWithResultInto(
        options_.process_options,
        [this, i](std::string* out) { body_(i, out); });
    if (!process.ok()) {
      outcomes_[i].bytes = process.status();
      return;
    }
    outcomes_[i].pid = process->pid();
    processes_[i].emplace(*std::move(process));
    Watch(i, processes_[i]->pidfd(), false);
    Watch(i, processes_[i]->result_fd(), true);
    ++live_;
  }

  void Watch(size_t i, int fd, bool result_fd) {
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = Key(i, result_fd);
    // Cannot fail for a fresh, valid descriptor short of ENOMEM; then the
    // child is still reaped when its pidfd is seen (or by Collect below).
    PCHECK(::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event) == 0)
        << "epoll_ctl ADD fd " << fd;
  }

  // Waits for events until `deadline`; handles them. False on timeout.
  bool WaitAndCollect(absl::Time deadline) {
    epoll_event events[64];
    int timeout_ms = -1;
    if (deadline != absl::InfiniteFuture()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return false;
      // Round up so that we do not wake just before the deadline.
      timeout_ms = static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(left + absl::Microseconds(999)),
                            24 * 3600 * 1000));
    }
    const int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms);
    if (n < 0) {
      PCHECK(errno == EINTR) << "epoll_wait";
      return true;
    }
    if (n == 0) return absl::Now() < deadline;
    for (int k = 0; k < n; ++k) {
      const size_t i = static_cast<size_t>(events[k].data.u64 >> 1);
      std::optional<Process>& process = processes_[i];
      if (!process.has_value() || process->reaped()) continue;
      if (events[k].data.u64 & kResultFdBit) {
        process->DrainResult().IgnoreError();  // reported by TakeResultBytes
      } else {
        Collect(i);
      }
    }
    return true;
  }

  // Reaps child i (it has exited) and records its outcome.
  void Collect(size_t i) {
    Process& process = *processes_[i];
    absl::StatusOr<ExitStatus> status = process.Join(absl::ZeroDuration());
    if (!process.reaped()) {
      // Waiting failed (not a timeout: the pidfd was readable).
      process.Kill().IgnoreError();
    }
    if (process.exit_status() != nullptr) {
      outcomes_[i].exit_status = *process.exit_status();
    }
    outcomes_[i].bytes =
        status.ok() ? process.TakeResultBytes() : status.status();
    processes_[i].reset();
    --live_;
  }

  // SIGTERM to everything running, up to terminate_grace for it to end,
  // SIGKILL to the rest; all reaped. Returns the kDeadlineExceeded status.
  absl::Status TimeOut() {
    std::vector<size_t> running;
    for (size_t i = 0; i < count_; ++i) {
      if (processes_[i].has_value()) {
        running.push_back(i);
        processes_[i]->Signal(SIGTERM).IgnoreError();
      }
    }
    const absl::Time grace_end = absl::Now() + options_.terminate_grace;
    while (live_ > 0 && WaitAndCollect(grace_end)) {
    }
    for (size_t i : running) {
      if (processes_[i].has_value()) {
        processes_[i]->Kill().IgnoreError();
        Collect(i);
      }
    }
    for (size_t i : running) {
      const std::string how = outcomes_[i].exit_status.has_value()
                                  ? outcomes_[i].exit_status->ToString()
                                  : std::string("not reaped");
      outcomes_[i].bytes = absl::DeadlineExceededError(absl::StrCat(
          "still running at the pcall timeout (",
          absl::FormatDuration(options_.timeout), "); terminated: ", how));
    }
    size_t not_started = 0;
    for (size_t i = next_; i < count_; ++i) {
      outcomes_[i].bytes = absl::CancelledError(
          "not started: the pcall timeout expired before its turn");
      ++not_started;
    }
    return absl::DeadlineExceededError(absl::StrCat(
        "pcall: timeout of ", absl::FormatDuration(options_.timeout),
        " expired with ", running.size(), " of ", count_,
        " calls still running (terminated)",
        not_started > 0 ? absl::StrCat(" and ", not_started, " not started")
                        : std::string()));
  }

  const size_t count_;
  const std::function<void(size_t, std::string*)>& body_;
  const PcallOptions& options_;
  std::vector<fork_internal::RawPcallOutcome>& outcomes_;
  std::vector<std::optional<Process>> processes_;
  OwnedFd epoll_;
  size_t next_ = 0;  // the next call to start
  size_t live_ = 0;  // started and not yet reaped
};

}  // namespace

namespace fork_internal {

absl::Status RunPcall(size_t count,
                      const std::function<void(size_t, std::string*)>& body,
                      const PcallOptions& options,
                      std::vector<RawPcallOutcome>* outcomes) {
  return Runner(count, body, options, outcomes).Run();
}

}  // namespace fork_internal

void PcallJoinHookRegistration::Reset() {
  if (id_ == 0) return;
  const uint64_t id = std::exchange(id_, 0);
  JoinHooks& hooks = GetJoinHooks();
  std::unique_lock<std::mutex> lock(hooks.mu);
  auto it = std::find_if(hooks.hooks.begin(), hooks.hooks.end(),
                         [id](const auto& entry) { return entry.first == id; });
  CHECK(it != hooks.hooks.end()) << "pcall join hook " << id << " not registered";
  hooks.hooks.erase(it);
  // Runs that took a snapshot with this hook may still call it: wait for them.
  hooks.idle.wait(lock, [&hooks] { return hooks.running == 0; });
}

PcallJoinHookRegistration RegisterPcallJoinHook(PcallJoinHook hook) {
  CHECK(hook != nullptr) << "RegisterPcallJoinHook: empty hook";
  JoinHooks& hooks = GetJoinHooks();
  std::lock_guard<std::mutex> lock(hooks.mu);
  const uint64_t id = hooks.next_id++;
  hooks.hooks.emplace_back(
      id, std::make_shared<const PcallJoinHook>(std::move(hook)));
  return PcallJoinHookRegistration(id);
}

}  // namespace taskfork
