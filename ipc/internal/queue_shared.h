// The header at the start of a Queue's shared-memory segment (ipc/queue.cc),
// here so that crash tests can stop a producer between the steps of a Put.
//
//   auto* shared = static_cast<QueueShared*>(segment.data());
//   shared->producer_mu.Lock();  /* ... */  shared->producer_mu.Unlock();
//   char* ring_bytes = static_cast<char*>(segment.data()) + kQueueDataOffset;
#ifndef TASKFORK_IPC_INTERNAL_QUEUE_SHARED_H_
#define TASKFORK_IPC_INTERNAL_QUEUE_SHARED_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "ipc/internal/ring.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc_internal {

// The ring's bytes follow at kQueueDataOffset. Every field is valid when
// zero except the mutexes, which the creator initialises before it publishes
// `magic`.
struct QueueShared {
  std::atomic<uint64_t> magic{0};
  uint64_t capacity = 0;
  alignas(64) std::atomic<uint32_t> closed{0};
  std::atomic<uint64_t> recoveries{0};  // locks taken over from dead owners
  alignas(64) RobustMutex producer_mu;  // serialises producers
  alignas(64) RobustMutex consumer_mu;  // serialises consumers
  alignas(64) RingIndices ring;
};

inline constexpr size_t kQueueDataOffset =
    (sizeof(QueueShared) + 4095) & ~size_t{4095};

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_QUEUE_SHARED_H_
