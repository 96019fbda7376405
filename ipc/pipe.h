// Pipe: one end of a duplex, message-oriented channel in shared memory
// between two processes (Python's multiprocessing.Pipe()), that reports a
// dead peer as kUnavailable instead of blocking forever.
//
//   TASKFORK_ASSIGN_OR_RETURN(auto ends, Pipe::Create());
//   if (::fork() == 0) { ends.first.Close(); ends.second.Send("hi"); ::_exit(0); }
//   ends.second.Close();  TASKFORK_ASSIGN_OR_RETURN(std::string m, ends.first.Recv());
//
// Each direction is a single-producer single-consumer ring of variable-size
// messages (no locks: a message becomes visible with one atomic store after
// it is completely written). Each end also holds one end of a kernel
// socketpair that carries no data: when every copy of one end's descriptor
// is closed (its processes closed it or died, even by SIGKILL), the other end
// sees the hang-up. As with kernel pipes, after fork() each process must
// Close() the end it does not use, or it keeps that end alive.
//
//   | situation                           | Send                 | Recv / Consume / Poll    |
//   |-------------------------------------|----------------------|--------------------------|
//   | room / a message waiting            | sends                | returns it / true        |
//   | full / empty, peer alive            | waits (timeout:      | waits (timeout:          |
//   |                                     | kDeadlineExceeded)   | kDeadlineExceeded/false) |
//   | peer gone, messages still waiting   | -                    | returns them / true      |
//   | peer gone, nothing left             | kUnavailable when it | kUnavailable             |
//   |                                     | would wait (*)       |                          |
//   | this end closed or moved from       | kFailedPrecondition  | kFailedPrecondition      |
//
// (*) Like a socket with a buffer, a Send that fits succeeds without
// checking the peer; a Send that has to wait notices a dead peer within
// 100 ms. Recv notices it within 100 ms too (waiters re-check that often).
#ifndef TASKFORK_IPC_PIPE_H_
#define TASKFORK_IPC_PIPE_H_

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "ipc/internal/ring.h"
#include "ipc/message_view.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc {

struct PipeOptions {
  // Bytes buffered per direction, rounded up to a power of two (at least
  // 64); the largest message is this minus 8.
  size_t capacity_bytes = 1 << 20;
};

class WaitTarget;

// One end of a pipe. Move-only.
//
// Thread safety: thread-compatible; one thread of one process sends on an
// end at a time, and one receives (sending and receiving at once is fine).
// Fork: a Pipe created before fork() is usable in the child; Close() the end
// a process does not use (see above). Destruction closes this process's copy
// of the end (its descriptor and its mapping). Not async-signal-safe.
class Pipe {
 public:
  Pipe();  // a closed end
  Pipe(Pipe&&) noexcept;
  Pipe& operator=(Pipe&&) noexcept;
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  // Creates a connected pair of ends. Errors: those of
  // SharedMemory::CreateAnonymous (kResourceExhausted for a full /dev/shm,
  // kPermissionDenied, ...) and of socketpair(2) (kResourceExhausted when
  // out of descriptors); kInvalidArgument for a capacity over 2^40.
  static absl::StatusOr<std::pair<Pipe, Pipe>> Create(PipeOptions options = {});

  // Sends one message, waiting up to `timeout` for room. Errors:
  // kInvalidArgument (larger than max_message_size()), kDeadlineExceeded,
  // kUnavailable (the peer is gone while waiting for room),
  // kFailedPrecondition (this end is closed).
  absl::Status Send(absl::string_view message,
                    absl::Duration timeout = absl::InfiniteDuration());

  // Receives the oldest message, waiting up to `timeout`. Errors:
  // kDeadlineExceeded, kUnavailable (the peer closed its end or died and
  // nothing is left to read), kFailedPrecondition (this end is closed).
  absl::StatusOr<std::string> Recv(
      absl::Duration timeout = absl::InfiniteDuration());
  // As Recv, into `*message` (reusing its buffer; unchanged on error).
  absl::Status RecvInto(std::string* message,
                        absl::Duration timeout = absl::InfiniteDuration());

  // Zero-copy Recv: waits up to `timeout` for the oldest message, calls
  // `fn` with it in place in shared memory (no copy), then removes it and
  // returns what `fn` returned. The message is removed whatever `fn`
  // returns; if `fn` throws, the exception propagates and the message stays.
  // Its room is not free for the sender until `fn` returns; do not receive
  // on this end from `fn`. Errors otherwise as Recv's.
  absl::Status Consume(absl::FunctionRef<absl::Status(const MessageView&)> fn,
                       absl::Duration timeout = absl::InfiniteDuration());

  // Whether a message can be received now, waiting up to `timeout` for one:
  // true if one is waiting, false at the deadline. Errors: kUnavailable (the
  // peer is gone and nothing is left), kFailedPrecondition (closed end).
  absl::StatusOr<bool> Poll(absl::Duration timeout = absl::ZeroDuration());

  // Whether any process still holds the other end (a system call).
  bool PeerAlive() const;

  // Closes this process's copy of this end (the peer sees a hang-up once
  // every process closed its copy). Idempotent.
  void Close();
  bool closed() const { return state_ == nullptr; }

  size_t max_message_size() const { return send_.max_message_size(); }

 private:
  friend class WaitTarget;
  struct State;  // the mapping and the liveness descriptor

  // Send and RecvInto when the ring is full / empty: wait.
  absl::Status SendSlow(absl::string_view message, absl::Duration timeout);
  absl::Status RecvSlow(std::string* message, absl::Duration timeout);
  // Waits until `take` (called after each wake-up) takes a message.
  // Errors: kUnavailable (the peer is gone and nothing is left),
  // kDeadlineExceeded; both name `op`.
  template <typename Take>
  absl::Status AwaitMessage(const char* op, absl::Duration timeout,
                            ipc_internal::Spinner* spinner, Take take);

  std::unique_ptr<State> state_;
  ipc_internal::RingView send_;
  ipc_internal::RingView recv_;
};

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_PIPE_H_
