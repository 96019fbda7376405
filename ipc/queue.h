// Queue: a bounded multi-producer multi-consumer queue of byte messages in
// shared memory, shared by forked children or (named) by unrelated processes,
// that stays usable when a peer is killed at any point.
//
//   TASKFORK_ASSIGN_OR_RETURN(Queue queue, Queue::Create(QueueOptions()));
//   if (::fork() == 0) { queue.Put("result of the child"); ::_exit(0); }
//   TASKFORK_ASSIGN_OR_RETURN(std::string message, queue.Get(absl::Seconds(10)));
//   // Or without copying it out: read it in place in shared memory.
//   TASKFORK_RETURN_IF_ERROR(queue.Consume([](const MessageView& m) {
//     return Use(m.first(), m.second());  // second() is empty unless it wrapped
//   }));
//
// Semantics (like Python's multiprocessing.Queue, minus the feeder thread):
//
//   | state              | Put / TryPut                   | Get / TryGet                 |
//   |--------------------|--------------------------------|------------------------------|
//   | open, has room     | appends                        | oldest message (FIFO)        |
//   | open, full         | waits / kResourceExhausted     | oldest message               |
//   | open, empty        | appends                        | waits / kUnavailable         |
//   | timed out          | kDeadlineExceeded              | kDeadlineExceeded            |
//   | closed             | kFailedPrecondition            | drains, then kOutOfRange     |
//
// Crash safety: producers are serialised by one robust process-shared mutex
// and consumers by another; a message becomes visible with one atomic store
// after it is completely written, and is freed with one atomic store after it
// is completely read. A process killed at any point (even holding a lock, or
// half-way through a message) therefore never makes a partial message
// visible, never loses a message another process already got, and never
// blocks the others: the next locker gets EOWNERDEAD and carries on.
// A message a consumer was killed while reading (in Get or in Consume's
// callback) stays in the queue for the next consumer.
//
// Waiting: a blocked Put/Get spins briefly (adaptively), then sleeps on a
// futex; it also wakes by itself every 100 ms to re-check (which covers a
// peer killed between publishing and waking), so an idle waiter costs no
// measurable CPU.
#ifndef TASKFORK_IPC_QUEUE_H_
#define TASKFORK_IPC_QUEUE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "ipc/internal/ring.h"
#include "ipc/message_view.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc_internal {
struct QueueShared;  // the segment's header (queue.cc)
}  // namespace taskfork::ipc_internal

namespace taskfork::ipc {

class WaitTarget;

struct QueueOptions {
  // Bytes of message storage, rounded up to a power of two (at least 64).
  // A message of n bytes takes 8 + n rounded up to 8 bytes of it; the largest
  // message is capacity - 8 bytes.
  size_t capacity_bytes = 1 << 20;
  // Empty: an anonymous queue that processes forked after Create() share.
  // Otherwise the name of a new shared-memory segment ("/name") that
  // unrelated processes Open(); the creating Queue unlinks it when destroyed.
  std::string name;
  // Permission bits of a named queue's segment.
  mode_t mode = 0600;
};

// A handle to a queue in shared memory. Move-only.
//
// Thread safety: thread-safe (any number of threads and processes may Put and
// Get at once). Fork: a Queue created before fork() is usable in the child;
// both copies refer to the same queue. Destruction unmaps this process's view
// only (and, for the creator of a named queue, unlinks the name); the queue
// lives while any process maps it. Not async-signal-safe.
class Queue {
 public:
  Queue() = default;  // an empty handle: only assignment and destruction
  Queue(Queue&&) noexcept = default;
  Queue& operator=(Queue&&) noexcept = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Creates a queue. Errors: kInvalidArgument (capacity over 2^40 bytes or a
  // bad name), kAlreadyExists (the name is taken), and the /dev/shm errors of
  // SharedMemory::Create* (kResourceExhausted when /dev/shm is full,
  // kPermissionDenied when it is not writable).
  static absl::StatusOr<Queue> Create(QueueOptions options = {});

  // Opens the named queue `name` that another process created. Errors:
  // kNotFound (no such segment), kFailedPrecondition (the segment is not a
  // taskfork queue, or not initialised yet: retry), kPermissionDenied.
  static absl::StatusOr<Queue> Open(absl::string_view name);

  // Appends `message`, waiting up to `timeout` for room. Errors:
  // kInvalidArgument (message larger than max_message_size()),
  // kDeadlineExceeded (still full at the deadline), kFailedPrecondition
  // (the queue is closed, also if it closes while waiting).
  absl::Status Put(absl::string_view message,
                   absl::Duration timeout = absl::InfiniteDuration());
  // Put without waiting: kResourceExhausted if the queue is full now.
  absl::Status TryPut(absl::string_view message);

  // Removes and returns the oldest message, waiting up to `timeout`. Errors:
  // kDeadlineExceeded (still empty at the deadline), kOutOfRange (the queue
  // is closed and empty).
  absl::StatusOr<std::string> Get(
      absl::Duration timeout = absl::InfiniteDuration());
  // As Get, into `*message` (reusing its buffer; unchanged on error).
  absl::Status GetInto(std::string* message,
                       absl::Duration timeout = absl::InfiniteDuration());
  // Get without waiting: kUnavailable if the queue is empty now.
  absl::StatusOr<std::string> TryGet();

  // Zero-copy Get: waits up to `timeout` for the oldest message, calls
  // `fn` with it in place in shared memory (no copy), then removes it and
  // returns what `fn` returned. The message is removed whatever `fn`
  // returns; if `fn` throws, the exception propagates and the message stays
  // in the queue, as it does when the process dies inside `fn` (the next
  // consumer gets it). Other consumers wait while `fn` runs (it holds the
  // consumers' lock), and its bytes' room is not free for producers until it
  // returns: keep `fn` short, and do not call this queue's Get or Consume
  // from it. Errors otherwise as Get's.
  absl::Status Consume(absl::FunctionRef<absl::Status(const MessageView&)> fn,
                       absl::Duration timeout = absl::InfiniteDuration());
  // Consume without waiting: kUnavailable if the queue is empty now.
  absl::Status TryConsume(
      absl::FunctionRef<absl::Status(const MessageView&)> fn);

  // Closes the queue for every process: later Puts fail, Gets drain what is
  // left, waiters wake. Idempotent.
  void Close();
  bool closed() const;

  // Bytes of message storage (QueueOptions::capacity_bytes rounded up).
  size_t capacity_bytes() const { return ring_.capacity(); }
  size_t max_message_size() const { return ring_.max_message_size(); }
  // Approximate bytes in use (records and their headers) right now.
  size_t used_bytes() const;
  // How many times a lock of this queue was taken over from a process that
  // died holding it (for tests and monitoring).
  uint64_t recovered_lock_count() const;
  // The segment's name ("" if anonymous).
  const std::string& name() const { return shm_.name(); }

 private:
  friend class WaitTarget;     // ipc/wait.h
  friend class QueueTestPeer;  // ipc/queue_crash_test.cc

  explicit Queue(SharedMemory shm);
  bool LockOrRecover(ipc_internal::RobustMutex& mu,
                     const ipc_internal::Deadline& deadline);
  absl::Status PutImpl(absl::string_view message,
                       const ipc_internal::Deadline& deadline, bool wait);
  // Waits for a message, then `take`s it with the consumers' lock held.
  template <typename Take>
  absl::Status GetImpl(const char* what, const ipc_internal::Deadline& deadline,
                       bool wait, Take take);
  absl::Status ConsumeImpl(
      absl::FunctionRef<absl::Status(const MessageView&)> fn,
      const ipc_internal::Deadline& deadline, bool wait);

  SharedMemory shm_;
  ipc_internal::QueueShared* shared_ = nullptr;
  ipc_internal::RingView ring_;
};

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_QUEUE_H_
