// WaitAny: wait until one of several queues or pipe ends has something to
// receive (multiprocessing.connection.wait for taskfork's Queue and Pipe).
//
//   TASKFORK_ASSIGN_OR_RETURN(size_t i, WaitAny({results, control_pipe}, absl::Seconds(5)));
//   if (i == 0) { auto m = results.TryGet(); ... } else { auto m = control_pipe.Recv(); ... }
#ifndef TASKFORK_IPC_WAIT_H_
#define TASKFORK_IPC_WAIT_H_

#include <cstddef>
#include <initializer_list>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "ipc/internal/sync.h"
#include "ipc/pipe.h"
#include "ipc/queue.h"

namespace taskfork::ipc {

// Something WaitAny can wait on: a Queue (ready when Get would not block: a
// message is waiting or the queue is closed) or the receiving side of a Pipe
// end (ready when Recv would not block: a message is waiting or the peer is
// gone). Refers to the object, which must outlive the WaitAny call.
class WaitTarget {
 public:
  WaitTarget(Queue& queue);  // NOLINT(google-explicit-constructor)
  WaitTarget(Pipe& pipe);    // NOLINT(google-explicit-constructor)

  // Whether the target is ready now (a system call for a Pipe whose buffer
  // is empty, to check its peer).
  bool Ready() const;

 private:
  friend absl::StatusOr<size_t> WaitAny(absl::Span<const WaitTarget>,
                                        absl::Duration);
  bool ReadyWithoutSyscall() const;
  bool valid() const;
  ipc_internal::Event* event() const;

  Queue* queue_ = nullptr;
  Pipe* pipe_ = nullptr;
};

// Waits until at least one of `targets` is ready, up to `timeout`; returns
// the index of the first ready one (so a busy early target can starve later
// ones: rotate the order if that matters). Spins briefly, then sleeps on all
// targets' futexes at once (futex_waitv), re-checking every 100 ms.
// Errors: kDeadlineExceeded (none became ready), kInvalidArgument (no
// targets, more than 128, or a closed Pipe end / empty Queue handle).
// Thread-compatible (the targets' own rules apply); not async-signal-safe.
absl::StatusOr<size_t> WaitAny(absl::Span<const WaitTarget> targets,
                               absl::Duration timeout = absl::InfiniteDuration());
inline absl::StatusOr<size_t> WaitAny(std::initializer_list<WaitTarget> targets,
                                      absl::Duration timeout =
                                          absl::InfiniteDuration()) {
  return WaitAny(absl::MakeConstSpan(targets.begin(), targets.size()), timeout);
}

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_WAIT_H_
