#include "ipc/queue.h"

#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"
#include "ipc/internal/queue_shared.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc {

using ipc_internal::Deadline;
using ipc_internal::QueueShared;
using ipc_internal::RingIndices;
using ipc_internal::RingView;
using ipc_internal::RobustMutex;

namespace {

// "tkforkq2": version 2, lap-stamped record headers (ipc/internal/ring.h).
constexpr uint64_t kMagic = 0x3271'6b72'6f66'6b74;
// The "tkforkq" part (the low seven bytes, little-endian), shared by every
// format version: the high byte is the version's digit.
constexpr uint64_t kMagicFamilyMask = 0x00ff'ffff'ffff'ffff;
constexpr char kMagicVersion = static_cast<char>(kMagic >> 56);
constexpr size_t kDataOffset = ipc_internal::kQueueDataOffset;
constexpr uint64_t kMaxCapacity = ipc_internal::kMaxRingCapacity;
// How far ahead of `tail` a producer prefetches ring lines for writing.
constexpr uint64_t kPrefetchDistance = 4096;

uint64_t RoundUpCapacity(size_t requested) {
  uint64_t capacity = 64;
  while (capacity < requested) capacity <<= 1;
  return capacity;
}

absl::Status TooLarge(size_t size, size_t max) {
  return absl::InvalidArgumentError(absl::StrCat(
      "message of ", size, " bytes is larger than the queue's maximum of ", max,
      " bytes: raise QueueOptions::capacity_bytes"));
}

}  // namespace

Queue::Queue(SharedMemory shm)
    : shm_(std::move(shm)),
      shared_(static_cast<QueueShared*>(shm_.data())),
      ring_(&shared_->ring, static_cast<char*>(shm_.data()) + kDataOffset,
            shared_->capacity) {}

absl::StatusOr<Queue> Queue::Create(QueueOptions options) {
  if (options.capacity_bytes > kMaxCapacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("QueueOptions::capacity_bytes ", options.capacity_bytes,
                     " is over the limit of ", kMaxCapacity));
  }
  const uint64_t capacity = RoundUpCapacity(options.capacity_bytes);
  const size_t size = kDataOffset + capacity;
  SharedMemory shm;
  if (options.name.empty()) {
    TASKFORK_ASSIGN_OR_RETURN(shm, SharedMemory::CreateAnonymous(size));
  } else {
    TASKFORK_ASSIGN_OR_RETURN(
        shm, SharedMemory::CreateNamed(options.name, size, options.mode));
  }
  ipc_internal::CurrentWakeupMode();  // decided before the first message
  auto* shared = new (shm.data()) QueueShared;
  shared->capacity = capacity;
  shared->producer_mu.Init();
  shared->consumer_mu.Init();
  shared->magic.store(kMagic, std::memory_order_release);
  return Queue(std::move(shm));
}

absl::StatusOr<Queue> Queue::Open(absl::string_view name) {
  TASKFORK_ASSIGN_OR_RETURN(SharedMemory shm, SharedMemory::OpenNamed(name));
  if (shm.size() < kDataOffset + 64) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory segment ", shm.name(), " is too small (", shm.size(),
        " bytes) to be a taskfork queue"));
  }
  const auto* shared = static_cast<const QueueShared*>(shm.data());
  const uint64_t magic = shared->magic.load(std::memory_order_acquire);
  const char version = static_cast<char>(magic >> 56);
  if (magic != kMagic && (magic & kMagicFamilyMask) == (kMagic & kMagicFamilyMask) &&
      absl::ascii_isdigit(static_cast<unsigned char>(version))) {
    return absl::FailedPreconditionError(absl::StrCat(
        "taskfork queue ", shm.name(), " has format version ",
        absl::string_view(&version, 1), "; this build reads only version ",
        absl::string_view(&kMagicVersion, 1),
        ": it was created by another taskfork release; build both ends from "
        "the same one"));
  }
  if (magic != kMagic) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory segment ", shm.name(),
        " is not an initialised taskfork queue (wrong magic; if its creator "
        "is still starting, retry)"));
  }
  if (shared->capacity < 64 || shared->capacity > kMaxCapacity ||
      (shared->capacity & (shared->capacity - 1)) ||
      kDataOffset + shared->capacity > shm.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("taskfork queue ", shm.name(), " has a corrupt header"));
  }
  ipc_internal::CurrentWakeupMode();
  return Queue(std::move(shm));
}

bool Queue::LockOrRecover(RobustMutex& mu, const Deadline& deadline) {
  bool owner_died = false;
  if (!mu.Lock(deadline, &owner_died)) return false;
  if (owner_died) {
    shared_->recoveries.fetch_add(1, std::memory_order_relaxed);
    // A producer killed between publishing a record and advancing `tail`
    // left a record the consumers may already have taken: adopt it, or the
    // next Put would overwrite it. (A dead consumer leaves nothing to fix.)
    if (&mu == &shared_->producer_mu) ring_.RepairTail();
  }
  return true;
}

absl::Status Queue::PutImpl(absl::string_view message,
                            const Deadline& deadline, bool wait) {
  if (message.size() > ring_.max_message_size()) {
    return TooLarge(message.size(), ring_.max_message_size());
  }
  thread_local ipc_internal::Spinner spinner;
  bool waited = false;
  for (;;) {
    if (!LockOrRecover(shared_->producer_mu, deadline)) {
      return absl::DeadlineExceededError("Queue::Put: timed out");
    }
    if (shared_->closed.load(std::memory_order_relaxed)) {
      shared_->producer_mu.Unlock();
      return absl::FailedPreconditionError("Queue::Put: the queue is closed");
    }
    const bool pushed = ring_.TryPush(message);
    // The unlock below is a locked instruction: it waits until this record's
    // stores are done, and each store to a line the consumer read a lap ago
    // waits for the consumer's core to give the line up. Asking for the next
    // lines now overlaps those waits with the next Puts.
    if (message.size() < kPrefetchDistance) {
      ring_.PrefetchForWrite(kPrefetchDistance);
    }
    shared_->producer_mu.Unlock();
    if (pushed) {
      shared_->ring.readable.Notify();
      if (waited) spinner.Learn(ring_.Writable(message.size()));
      return absl::OkStatus();
    }
    if (!wait) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "Queue::TryPut: the queue is full (", capacity_bytes(), " bytes)"));
    }
    const size_t size = message.size();
    const bool ready = ipc_internal::WaitFor(
        shared_->ring.writable,
        [&] {
          return ring_.Writable(size) ||
                 shared_->closed.load(std::memory_order_relaxed) != 0;
        },
        deadline, &spinner);
    waited = true;
    if (!ready) {
      return absl::DeadlineExceededError(absl::StrCat(
          "Queue::Put: still full at the deadline (", capacity_bytes(),
          " bytes)"));
    }
  }
}

template <typename Take>
absl::Status Queue::GetImpl(const char* what, const Deadline& deadline,
                            bool wait, Take take) {
  thread_local ipc_internal::Spinner spinner;
  bool waited = false;
  for (;;) {
    if (!LockOrRecover(shared_->consumer_mu, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat("Queue::", what, ": timed out"));
    }
    bool popped;
    {
      // Unlocks also when `take` throws (Consume's callback).
      struct Unlock {
        RobustMutex& mu;
        ~Unlock() { mu.Unlock(); }
      } unlock{shared_->consumer_mu};
      popped = take();
      if (!popped && shared_->closed.load(std::memory_order_acquire)) {
        // Close() happened after every Put it lets through: look once more.
        popped = take();
        if (!popped) {
          return absl::OutOfRangeError(absl::StrCat(
              "Queue::", what, ": the queue is closed and empty"));
        }
      }
      // Readable() only while no other consumer can move head.
      if (popped && waited) spinner.Learn(ring_.Readable());
    }
    if (popped) {
      shared_->ring.writable.Notify();
      return absl::OkStatus();
    }
    if (!wait) {
      return absl::UnavailableError(
          absl::StrCat("Queue::Try", what, ": the queue is empty"));
    }
    const bool ready = ipc_internal::WaitFor(
        shared_->ring.readable,
        [&] {
          return ring_.PublishedTailAhead() ||
                 shared_->closed.load(std::memory_order_relaxed) != 0;
        },
        deadline, &spinner);
    waited = true;
    if (!ready) {
      return absl::DeadlineExceededError(absl::StrCat(
          "Queue::", what, ": still empty at the deadline"));
    }
  }
}

absl::Status Queue::GetInto(std::string* message, absl::Duration timeout) {
  return GetImpl("Get", Deadline::After(timeout), /*wait=*/true,
                 [&] { return ring_.TryPop(message); });
}

absl::StatusOr<std::string> Queue::Get(absl::Duration timeout) {
  std::string message;
  TASKFORK_RETURN_IF_ERROR(GetInto(&message, timeout));
  return message;
}

absl::StatusOr<std::string> Queue::TryGet() {
  std::string message;
  TASKFORK_RETURN_IF_ERROR(
      GetImpl("Get", Deadline::Never(), /*wait=*/false,
              [&] { return ring_.TryPop(&message); }));
  return message;
}

absl::Status Queue::ConsumeImpl(
    absl::FunctionRef<absl::Status(const MessageView&)> fn,
    const Deadline& deadline, bool wait) {
  absl::Status result;
  TASKFORK_RETURN_IF_ERROR(GetImpl("Consume", deadline, wait, [&] {
    absl::string_view first, second;
    const uint64_t next = ring_.Peek(&first, &second);
    if (next == 0) return false;
    result = fn(MessageView(first, second));
    ring_.Free(next);
    return true;
  }));
  return result;
}

absl::Status Queue::Consume(
    absl::FunctionRef<absl::Status(const MessageView&)> fn,
    absl::Duration timeout) {
  return ConsumeImpl(fn, Deadline::After(timeout), /*wait=*/true);
}

absl::Status Queue::TryConsume(
    absl::FunctionRef<absl::Status(const MessageView&)> fn) {
  return ConsumeImpl(fn, Deadline::Never(), /*wait=*/false);
}

absl::Status Queue::Put(absl::string_view message, absl::Duration timeout) {
  return PutImpl(message, Deadline::After(timeout), /*wait=*/true);
}

absl::Status Queue::TryPut(absl::string_view message) {
  return PutImpl(message, Deadline::Never(), /*wait=*/false);
}

void Queue::Close() {
  LockOrRecover(shared_->producer_mu, Deadline::Never());
  shared_->closed.store(1, std::memory_order_release);
  shared_->producer_mu.Unlock();
  shared_->ring.readable.NotifyAlways();
  shared_->ring.writable.NotifyAlways();
}

bool Queue::closed() const {
  return shared_->closed.load(std::memory_order_acquire) != 0;
}

size_t Queue::used_bytes() const {
  const uint64_t head = shared_->ring.head.load(std::memory_order_acquire);
  const uint64_t tail = shared_->ring.tail.load(std::memory_order_acquire);
  // A consumer may take a record a moment before its producer advances tail.
  return tail > head ? tail - head : 0;
}

uint64_t Queue::recovered_lock_count() const {
  return shared_->recoveries.load(std::memory_order_relaxed);
}

}  // namespace taskfork::ipc
