// A single-producer single-consumer ring of variable-size messages in shared
// memory: the data path under Queue (one producer and one consumer at a time,
// by locks) and Pipe (one sender and one receiver per direction).
//
//   RingView ring(indices, data, capacity);
//   if (ring.TryPush("hello")) indices->readable.Notify();
//   std::string out; if (ring.TryPop(&out)) indices->writable.Notify();
//
// Layout: a record is an 8-byte little-endian length followed by the payload,
// padded to 8 bytes; records wrap around the end of the buffer. The producer
// makes a record visible with one release store of `tail` after writing all
// of it, so a producer killed half-way leaves no trace; the consumer frees it
// with one release store of `head` after copying it out, so a consumer killed
// half-way leaves it for the next consumer.
#ifndef TASKFORK_IPC_INTERNAL_RING_H_
#define TASKFORK_IPC_INTERNAL_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc_internal {

// The shared indices of one ring. Zero-initialised memory is an empty ring.
// Each group sits on its own cache line: the producer writes only the first,
// the consumer only the second.
struct RingIndices {
  alignas(64) std::atomic<uint64_t> tail{0};  // bytes ever written
  uint64_t cached_head = 0;                   // producer's last view of head
  alignas(64) std::atomic<uint64_t> head{0};  // bytes ever consumed
  uint64_t cached_tail = 0;                   // consumer's last view of tail
  alignas(64) Event readable;                 // notified after a push
  alignas(64) Event writable;                 // notified after a pop
};

inline constexpr size_t kRecordHeader = 8;

// Bytes a message of `size` bytes takes in the ring.
inline uint64_t RecordSize(size_t size) {
  return kRecordHeader + ((static_cast<uint64_t>(size) + 7) & ~uint64_t{7});
}

// A process-local view of one ring (pointers into shared memory).
// Not thread-safe: at most one producer and one consumer at a time.
class RingView {
 public:
  RingView() = default;
  // `capacity` is a power of two >= 64; `data` has `capacity` bytes.
  RingView(RingIndices* indices, char* data, uint64_t capacity)
      : indices_(indices), data_(data), capacity_(capacity) {}

  uint64_t capacity() const { return capacity_; }
  // The largest message that fits in an empty ring.
  size_t max_message_size() const { return capacity_ - kRecordHeader; }
  RingIndices* indices() const { return indices_; }

  // Appends `message` if there is room; returns whether it did.
  // Precondition: message.size() <= max_message_size().
  bool TryPush(absl::string_view message);
  // Removes the oldest message into *out (replacing its contents).
  bool TryPop(std::string* out);

  // Whether a message is there (any thread or process may ask).
  bool Readable() const {
    return indices_->tail.load(std::memory_order_acquire) !=
           indices_->head.load(std::memory_order_acquire);
  }
  // Whether a message of `size` bytes would fit now.
  bool Writable(size_t size) const {
    return indices_->tail.load(std::memory_order_acquire) + RecordSize(size) -
               indices_->head.load(std::memory_order_acquire) <=
           capacity_;
  }

 private:
  void CopyIn(uint64_t position, const char* from, size_t size);
  void CopyOut(uint64_t position, std::string* to, size_t size);

  RingIndices* indices_ = nullptr;
  char* data_ = nullptr;
  uint64_t capacity_ = 0;
};

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_RING_H_
