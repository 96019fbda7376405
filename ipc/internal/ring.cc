#include "ipc/internal/ring.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>
#endif

#include "glog/logging.h"

namespace taskfork::ipc_internal {

RingView::RingView(RingIndices* indices, char* data, uint64_t capacity)
    : indices_(indices), data_(data), capacity_(capacity) {
  CHECK(capacity >= 64 && capacity <= kMaxRingCapacity &&
        (capacity & (capacity - 1)) == 0)
      << "ring capacity " << capacity;
  CHECK_EQ(reinterpret_cast<uintptr_t>(data) % 8, 0u);
  while ((uint64_t{1} << lap_shift_) < capacity) ++lap_shift_;
}

void RingView::CopyInWrapped(uint64_t offset, const char* from, size_t size) {
  const size_t first = capacity_ - offset;
  std::memcpy(data_ + offset, from, first);
  std::memcpy(data_, from + first, size - first);
}

namespace {

void StreamTo(char* to, const char* from, size_t size) {
#if defined(__x86_64__) || defined(__i386__)
  const size_t unaligned =
      std::min<size_t>(size, (16 - reinterpret_cast<uintptr_t>(to) % 16) % 16);
  std::memcpy(to, from, unaligned);
  to += unaligned;
  from += unaligned;
  size -= unaligned;
  for (; size >= 64; to += 64, from += 64, size -= 64) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + 16));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + 32));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(to), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(to + 48), d);
  }
#endif
  std::memcpy(to, from, size);
}

}  // namespace

void RingView::CopyInStreaming(uint64_t offset, const char* from, size_t size) {
  const size_t first = std::min<uint64_t>(size, capacity_ - offset);
  StreamTo(data_ + offset, from, first);
  if (first < size) StreamTo(data_, from + first, size - first);
#if defined(__x86_64__) || defined(__i386__)
  // Non-temporal stores are weakly ordered: they must be visible before the
  // header's release store publishes the record.
  _mm_sfence();
#endif
}

void RingView::CheckNotReady(uint64_t position, uint64_t header) const {
  CHECK(header == 0 || Ready(position - capacity_, header))
      << "corrupt ring header at " << position << ": " << header;
}

void RingView::CorruptRecord(uint64_t position, uint64_t header) const {
  LOG(FATAL) << "corrupt ring record at " << position << ": header " << header
             << " gives a length over the maximum of " << max_message_size();
}

void RingView::PrefetchForWrite(uint64_t distance) {
  constexpr uint64_t kLine = 64;
  RingIndices& ix = *indices_;
  const uint64_t tail = ix.tail.load(std::memory_order_relaxed);
  const uint64_t end =
      std::min(tail + distance, ix.cached_head + capacity_) & ~(kLine - 1);
  uint64_t a = std::max(ix.write_prefetched, (tail + kLine - 1) & ~(kLine - 1));
  for (; a < end; a += kLine) {
    __builtin_prefetch(data_ + (a & (capacity_ - 1)), 1, 3);
  }
  if (end > ix.write_prefetched) ix.write_prefetched = end;
}

int RingView::RepairTail() {
  RingIndices& ix = *indices_;
  int adopted = 0;
  for (;;) {
    const uint64_t tail = ix.tail.load(std::memory_order_relaxed);
    const uint64_t header = LoadHeader(tail);
    if (!Ready(tail, header)) return adopted;
    const uint64_t length = header & kLengthMask;
    if (length > max_message_size()) CorruptRecord(tail, header);
    AdvanceTail(tail + RecordSize(length));
    ++adopted;
  }
}

}  // namespace taskfork::ipc_internal
