#include "ipc/queue.h"

#include <atomic>
#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc_internal {

// The header at the start of a queue's segment; the ring's bytes follow at
// kDataOffset. Every field is valid when zero except the mutexes, which the
// creator initialises before it publishes `magic`.
struct QueueShared {
  std::atomic<uint64_t> magic{0};
  uint64_t capacity = 0;
  alignas(64) std::atomic<uint32_t> closed{0};
  std::atomic<uint64_t> recoveries{0};  // locks taken over from dead owners
  alignas(64) RobustMutex producer_mu;
  alignas(64) RobustMutex consumer_mu;
  alignas(64) RingIndices ring;
};

}  // namespace taskfork::ipc_internal

namespace taskfork::ipc {

using ipc_internal::Deadline;
using ipc_internal::QueueShared;
using ipc_internal::RingIndices;
using ipc_internal::RingView;
using ipc_internal::RobustMutex;

namespace {

constexpr uint64_t kMagic = 0x3171'6b72'6f66'6b74;  // "tkforkq1", version 1
constexpr size_t kDataOffset = (sizeof(QueueShared) + 4095) & ~size_t{4095};
constexpr uint64_t kMaxCapacity = uint64_t{1} << 40;

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
  if (shared->magic.load(std::memory_order_acquire) != kMagic) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory segment ", shm.name(),
        " is not an initialised taskfork queue (wrong magic; if its creator "
        "is still starting, retry)"));
  }
  if (shared->capacity < 64 || (shared->capacity & (shared->capacity - 1)) ||
      kDataOffset + shared->capacity > shm.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat("taskfork queue ", shm.name(), " has a corrupt header"));
  }
  return Queue(std::move(shm));
}

bool Queue::LockOrRecover(RobustMutex& mu, const Deadline& deadline) {
  bool owner_died = false;
  if (!mu.Lock(deadline, &owner_died)) return false;
  if (owner_died) shared_->recoveries.fetch_add(1, std::memory_order_relaxed);
  return true;
}

absl::Status Queue::PutImpl(absl::string_view message,
                            const Deadline& deadline, bool wait) {
  if (message.size() > ring_.max_message_size()) {
    return TooLarge(message.size(), ring_.max_message_size());
  }
  thread_local int spin_budget = ipc_internal::kMinSpin;
  for (;;) {
    if (!LockOrRecover(shared_->producer_mu, deadline)) {
      return absl::DeadlineExceededError("Queue::Put: timed out");
    }
    if (shared_->closed.load(std::memory_order_relaxed)) {
      shared_->producer_mu.Unlock();
      return absl::FailedPreconditionError("Queue::Put: the queue is closed");
    }
    const bool pushed = ring_.TryPush(message);
    shared_->producer_mu.Unlock();
    if (pushed) {
      shared_->ring.readable.Notify();
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
        deadline, &spin_budget);
    if (!ready) {
      return absl::DeadlineExceededError(absl::StrCat(
          "Queue::Put: still full at the deadline (", capacity_bytes(),
          " bytes)"));
    }
  }
}

absl::Status Queue::GetImpl(std::string* message, const Deadline& deadline,
                            bool wait) {
  thread_local int spin_budget = ipc_internal::kMinSpin;
  for (;;) {
    if (!LockOrRecover(shared_->consumer_mu, deadline)) {
      return absl::DeadlineExceededError("Queue::Get: timed out");
    }
    bool popped = ring_.TryPop(message);
    if (!popped && shared_->closed.load(std::memory_order_acquire)) {
      // Close() happened after every Put it lets through: look once more.
      popped = ring_.TryPop(message);
      if (!popped) {
        shared_->consumer_mu.Unlock();
        return absl::OutOfRangeError("Queue::Get: the queue is closed and empty");
      }
    }
    shared_->consumer_mu.Unlock();
    if (popped) {
      shared_->ring.writable.Notify();
      return absl::OkStatus();
    }
    if (!wait) return absl::UnavailableError("Queue::TryGet: the queue is empty");
    const bool ready = ipc_internal::WaitFor(
        shared_->ring.readable,
        [&] {
          return ring_.Readable() ||
                 shared_->closed.load(std::memory_order_relaxed) != 0;
        },
        deadline, &spin_budget);
    if (!ready) {
      return absl::DeadlineExceededError(
          "Queue::Get: still empty at the deadline");
    }
  }
}

absl::Status Queue::Put(absl::string_view message, absl::Duration timeout) {
  return PutImpl(message, Deadline::After(timeout), /*wait=*/true);
}

absl::Status Queue::TryPut(absl::string_view message) {
  return PutImpl(message, Deadline::Never(), /*wait=*/false);
}

absl::StatusOr<std::string> Queue::Get(absl::Duration timeout) {
  std::string message;
  TASKFORK_RETURN_IF_ERROR(GetImpl(&message, Deadline::After(timeout), true));
  return message;
}

absl::Status Queue::GetInto(std::string* message, absl::Duration timeout) {
  return GetImpl(message, Deadline::After(timeout), /*wait=*/true);
}

absl::StatusOr<std::string> Queue::TryGet() {
  std::string message;
  TASKFORK_RETURN_IF_ERROR(GetImpl(&message, Deadline::Never(), false));
  return message;
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
  return shared_->ring.tail.load(std::memory_order_acquire) - head;
}

uint64_t Queue::recovered_lock_count() const {
  return shared_->recoveries.load(std::memory_order_relaxed);
}

}  // namespace taskfork::ipc
