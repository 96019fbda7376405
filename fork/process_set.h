// ProcessSet: one waiter for many Processes and other descriptors, in one
// ppoll(2): a runner's main loop (task processes, a signalfd, a control
// socket) without a poll loop of its own.
//
//   ProcessSet set;
//   set.Add(&task_process);  set.AddFd(signal_fd);
//   TASKFORK_ASSIGN_OR_RETURN(ProcessSet::Ready ready, set.Wait(next_deadline));
//   for (Process* p : ready.exited) HandleExit(p->Join(absl::ZeroDuration()));
//
// While it waits, the set drains the result pipe of every watched Process
// (Process::DrainResult), so a child writing a large result never blocks on a
// full pipe; a drain error stays in the Process (TakeResultBytes reports it).
// A Process that exited is reported by every Wait() until it is reaped or
// removed; a reaped one is dropped from the set by the next Wait().
#ifndef TASKFORK_FORK_PROCESS_SET_H_
#define TASKFORK_FORK_PROCESS_SET_H_

#include <poll.h>

#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fork/process.h"

namespace taskfork {

// Thread-compatible. Holds pointers, owns nothing: a Process or descriptor
// must outlive its membership (Remove() it before destroying it, unless it
// was reaped).
class ProcessSet {
 public:
  // What one Wait() found. Both lists empty: the deadline passed.
  struct Ready {
    // Watched processes that have exited and are not reaped: Join() (any
    // timeout) and Kill() return at once for them.
    std::vector<Process*> exited;
    // Extra descriptors that are readable, hung up or in error.
    std::vector<int> fds;
  };

  ProcessSet() = default;
  ProcessSet(const ProcessSet&) = delete;
  ProcessSet& operator=(const ProcessSet&) = delete;

  // Watches `process` (CHECK: not empty, not reaped, not in the set yet).
  void Add(Process* process);
  // Stops watching it; no-op if it is not in the set.
  void Remove(Process* process);
  // Watches `fd` for POLLIN (CHECK: >= 0, not in the set yet).
  void AddFd(int fd);
  void RemoveFd(int fd);

  bool empty() const { return processes_.empty() && fds_.empty(); }
  size_t process_count() const { return processes_.size(); }

  // Waits until a watched process has exited or an extra descriptor is
  // ready, or until `deadline` (absl::InfiniteFuture(): no deadline;
  // absl::InfinitePast() or any past time: a non-blocking check), draining
  // result pipes meanwhile. Returns at once when something is ready already.
  // With nothing to watch, sleeps until the deadline (CHECK: not infinite).
  // Errors: ppoll's errno as ErrnoError (EINTR is retried, not an error).
  absl::StatusOr<Ready> Wait(absl::Time deadline);

 private:
  std::vector<Process*> processes_;
  std::vector<int> fds_;
  // Reused from one Wait() to the next: no allocation per wake-up once the
  // set has reached its size.
  std::vector<pollfd> pollfds_;
  std::vector<Process*> owners_;  // per pollfd: its process, or nullptr
};

}  // namespace taskfork

#endif  // TASKFORK_FORK_PROCESS_SET_H_
