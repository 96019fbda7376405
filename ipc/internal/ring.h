// A single-producer single-consumer ring of variable-size messages in shared
// memory: the data path under Queue (one producer and one consumer at a time,
// by locks) and Pipe (one sender and one receiver per direction).
//
//   RingView ring(indices, data, capacity);
//   if (ring.TryPush("hello")) indices->readable.Notify();
//   std::string out; if (ring.TryPop(&out)) indices->writable.Notify();
//   absl::string_view a, b;  // or read it in place, then free it
//   if (uint64_t next = ring.Peek(&a, &b)) { Use(a, b); ring.Free(next); }
//
// Layout: a record is an 8-byte header word followed by the payload, padded
// to 8 bytes; records wrap around the end of the buffer (a header never
// does). The header word is
//
//   bit 63       1 (so a header is never zero)
//   bits 41..62  the lap of the record's position: (position / capacity) mod 2^22
//   bits 0..40   the payload length in bytes
//
// The consumer polls the header at `head` itself (it never reads the
// producer's `tail` line), so a message costs the consumer no cache line but
// the record's own. A record is ready when its header carries the lap of
// `head`; anything else there means "not yet". That is exact, never a guess
// about stale bytes, because of one rule the producer keeps: before it
// publishes a record it writes a zero word (a terminator) where the next
// header goes, unless the record ends exactly `capacity` bytes after the
// consumer's `head`, in which case the next header's place holds the header
// of the record at `head` (one lap older: a different lap). So when the
// consumer reaches a position, the word there is the terminator, that older
// header, or the new header; payload bytes of an old record are never read
// as a header. (The consumer never writes to the ring.)
//
// Crash safety: the producer writes the payload and the terminator, then
// publishes the record with one release store of its header, then advances
// `tail` (which only producers and monitors read). A producer killed before
// the header store leaves no trace (the next producer overwrites the same
// place); one killed between the header store and the `tail` store leaves a
// published record that RepairTail() adopts. The consumer copies a record
// out, then frees it with one release store of `head`: a consumer killed
// half-way leaves it for the next consumer.
#ifndef TASKFORK_IPC_INTERNAL_RING_H_
#define TASKFORK_IPC_INTERNAL_RING_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/base/optimization.h"
#include "absl/strings/string_view.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc_internal {

// The shared indices of one ring. Zero-initialised memory is an empty ring.
// Each group sits on its own cache line: the producer writes only the first,
// the consumer only the second.
struct RingIndices {
  alignas(64) std::atomic<uint64_t> tail{0};  // bytes ever written
  uint64_t cached_head = 0;                   // producer's last view of head
  uint64_t write_prefetched = 0;              // producer: lines asked for up to
  alignas(64) std::atomic<uint64_t> head{0};  // bytes ever consumed
  alignas(64) Event readable;                 // notified after a push
  alignas(64) Event writable;                 // notified after a pop
};

inline constexpr size_t kRecordHeader = 8;
// Messages of at least this many bytes are written with non-temporal stores
// (docs/ipc.md, Large messages).
inline constexpr size_t kStreamingCopyMin = size_t{64} << 10;
// The largest capacity a ring supports (lengths take 41 bits of a header).
inline constexpr uint64_t kMaxRingCapacity = uint64_t{1} << 40;

// Bytes a message of `size` bytes takes in the ring.
inline uint64_t RecordSize(size_t size) {
  return kRecordHeader + ((static_cast<uint64_t>(size) + 7) & ~uint64_t{7});
}

// A process-local view of one ring (pointers into shared memory).
// Not thread-safe: at most one producer and one consumer at a time.
class RingView {
 public:
  RingView() = default;
  // `capacity` is a power of two in [64, kMaxRingCapacity]; `data` has
  // `capacity` bytes, zero-filled when the ring is new.
  RingView(RingIndices* indices, char* data, uint64_t capacity);

  uint64_t capacity() const { return capacity_; }
  // The largest message that fits in an empty ring.
  size_t max_message_size() const { return capacity_ - kRecordHeader; }
  RingIndices* indices() const { return indices_; }

  // Appends `message` if there is room; returns whether it did. The same as
  // Write() then AdvanceTail().
  // Precondition: message.size() <= max_message_size().
  bool TryPush(absl::string_view message) {
    const uint64_t next = Write(message);
    if (next == 0) return false;
    AdvanceTail(next);
    return true;
  }
  // Removes the oldest message into *out (replacing its contents): Peek(),
  // copy, Free().
  bool TryPop(std::string* out) {
    absl::string_view first, second;
    const uint64_t next = Peek(&first, &second);
    if (next == 0) return false;
    out->assign(first.data(), first.size());
    if (ABSL_PREDICT_FALSE(!second.empty())) {
      out->append(second.data(), second.size());
    }
    Free(next);
    return true;
  }

  // The oldest message, in place: sets *first and *second to its bytes
  // (*second is empty unless the record wraps around the end of the buffer)
  // and returns the position after it, to pass to Free() once the bytes are
  // no longer needed; returns 0 if there is no message. The bytes stay valid
  // and unchanged until Free(): producers never write below head + capacity.
  uint64_t Peek(absl::string_view* first, absl::string_view* second) const {
    const uint64_t head = indices_->head.load(std::memory_order_relaxed);
    const uint64_t header = LoadHeader(head);
    if (!Ready(head, header)) {
      CheckNotReady(head, header);
      return 0;
    }
    const uint64_t length = header & kLengthMask;
    if (length > max_message_size()) CorruptRecord(head, header);
    const uint64_t offset = (head + kRecordHeader) & (capacity_ - 1);
    const uint64_t in_first = std::min<uint64_t>(length, capacity_ - offset);
    *first = absl::string_view(data_ + offset, in_first);
    *second = absl::string_view(data_, length - in_first);
    return head + RecordSize(length);
  }
  // Frees the message Peek() returned `next` for (one release store of head).
  void Free(uint64_t next) {
    indices_->head.store(next, std::memory_order_release);
  }

  // The steps of TryPush, for tests that kill a producer between them.
  // Write() writes and publishes the record at `tail` (the consumer can take
  // it from then on) and returns the position after it (0 if there is no
  // room); AdvanceTail() then records that position in `tail`.
  uint64_t Write(absl::string_view message, bool publish = true) {
    RingIndices& ix = *indices_;
    const uint64_t need = RecordSize(message.size());
    const uint64_t tail = ix.tail.load(std::memory_order_relaxed);
    // Room for the record and, if possible, the terminator after it.
    uint64_t limit = ix.cached_head + capacity_;
    if (tail + need + kRecordHeader > limit) {
      ix.cached_head = ix.head.load(std::memory_order_acquire);
      limit = ix.cached_head + capacity_;
      if (tail + need > limit) return 0;
    }
    const uint64_t next = tail + need;
    CopyIn(tail + kRecordHeader, message.data(), message.size());
    if (next + kRecordHeader <= limit) {
      __atomic_store_n(HeaderAt(next), uint64_t{0}, __ATOMIC_RELAXED);
    }
    // Otherwise next == limit == head + capacity, freshly loaded: the word at
    // `next` is the header of the record at `head`, one lap older than `next`.
    if (publish) {
      __atomic_store_n(HeaderAt(tail), HeaderFor(tail, message.size()),
                       __ATOMIC_RELEASE);
    }
    return next;
  }
  void AdvanceTail(uint64_t next) {
    indices_->tail.store(next, std::memory_order_release);
  }

  // Producer side: asks for the whole cache lines in [tail, tail +
  // distance) that are free (below cached_head + capacity) and not asked for
  // before, in exclusive state (a hint; no effect on the contents).
  void PrefetchForWrite(uint64_t distance);

  // Producer side, with the producers' lock held, after the previous holder
  // died: adopts records that were published but whose `tail` store did not
  // happen. Returns how many it adopted (0 or 1 in practice).
  int RepairTail();

  // Whether a message is there. Only the consumer side may ask: a caller
  // that does not hold the consumers' lock (several consumers) may load a
  // `head` that another consumer has since moved past, and then read a word
  // the producer is overwriting with a payload (a data race); it asks
  // PublishedTailAhead() instead.
  bool Readable() const {
    const uint64_t head = indices_->head.load(std::memory_order_acquire);
    return Ready(head, LoadHeader(head));
  }
  // Whether `tail` is past `head`: a message is there (any thread or process
  // may ask). It misses a record whose producer died before advancing
  // `tail`, until the next producer's RepairTail(); TryPop() does not.
  bool PublishedTailAhead() const {
    const uint64_t head = indices_->head.load(std::memory_order_acquire);
    return indices_->tail.load(std::memory_order_acquire) > head;
  }
  // Whether a message of `size` bytes would fit now. (`tail` may lag `head`
  // while a dead producer's published record awaits RepairTail().)
  bool Writable(size_t size) const {
    const uint64_t head = indices_->head.load(std::memory_order_acquire);
    const uint64_t tail = indices_->tail.load(std::memory_order_acquire);
    const uint64_t used = tail > head ? tail - head : 0;
    return used + RecordSize(size) <= capacity_;
  }

 private:
  static constexpr int kLengthBits = 41;
  static constexpr uint64_t kLengthMask = (uint64_t{1} << kLengthBits) - 1;
  static constexpr uint64_t kLapMask = (uint64_t{1} << 22) - 1;

  uint64_t HeaderFor(uint64_t position, uint64_t length) const {
    return uint64_t{1} << 63 |
           ((position >> lap_shift_) & kLapMask) << kLengthBits | length;
  }
  // Header words are accessed with the __atomic builtins on the shared
  // bytes (C++17 has no atomic_ref); they are 8-byte aligned.
  uint64_t* HeaderAt(uint64_t position) const {
    return reinterpret_cast<uint64_t*>(data_ + (position & (capacity_ - 1)));
  }
  uint64_t LoadHeader(uint64_t position) const {
    return __atomic_load_n(HeaderAt(position), __ATOMIC_ACQUIRE);
  }
  // Whether `header`, read at `position`, is a record published there.
  bool Ready(uint64_t position, uint64_t header) const {
    return (header & ~kLengthMask) == (HeaderFor(position, 0) & ~kLengthMask);
  }
  void CopyIn(uint64_t position, const char* from, size_t size) {
    const uint64_t offset = position & (capacity_ - 1);
    if (size >= kStreamingCopyMin) {
      CopyInStreaming(offset, from, size);
    } else if (ABSL_PREDICT_TRUE(size <= capacity_ - offset)) {
      std::memcpy(data_ + offset, from, size);
    } else {
      CopyInWrapped(offset, from, size);
    }
  }
  void CopyInWrapped(uint64_t offset, const char* from, size_t size);
  // Copies with non-temporal stores (x86), then a store fence: the bytes go
  // to memory instead of staying dirty in this core's cache, where the
  // consumer's core would have to fetch them line by line.
  void CopyInStreaming(uint64_t offset, const char* from, size_t size);
  // Peek found no record: CHECK-fails unless the word is a terminator or
  // the header one lap older (see the top of this file).
  void CheckNotReady(uint64_t position, uint64_t header) const;
  [[noreturn]] void CorruptRecord(uint64_t position, uint64_t header) const;

  RingIndices* indices_ = nullptr;
  char* data_ = nullptr;
  uint64_t capacity_ = 0;
  int lap_shift_ = 0;  // log2(capacity_)
};

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_RING_H_
