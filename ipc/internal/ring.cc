#include "ipc/internal/ring.h"

#include <algorithm>
#include <cstring>

#include "glog/logging.h"

namespace taskfork::ipc_internal {

void RingView::CopyIn(uint64_t position, const char* from, size_t size) {
  const uint64_t offset = position & (capacity_ - 1);
  const size_t first = std::min<uint64_t>(size, capacity_ - offset);
  std::memcpy(data_ + offset, from, first);
  if (first < size) std::memcpy(data_, from + first, size - first);
}

void RingView::CopyOut(uint64_t position, std::string* to, size_t size) {
  const uint64_t offset = position & (capacity_ - 1);
  const size_t first = std::min<uint64_t>(size, capacity_ - offset);
  to->assign(data_ + offset, first);
  if (first < size) to->append(data_, size - first);
}

bool RingView::TryPush(absl::string_view message) {
  RingIndices& ix = *indices_;
  const uint64_t need = RecordSize(message.size());
  const uint64_t tail = ix.tail.load(std::memory_order_relaxed);
  if (tail + need - ix.cached_head > capacity_) {
    ix.cached_head = ix.head.load(std::memory_order_acquire);
    if (tail + need - ix.cached_head > capacity_) return false;
  }
  // The header never wraps: records are 8-byte aligned and capacity_ is a
  // multiple of 8.
  const uint64_t length = message.size();
  std::memcpy(data_ + (tail & (capacity_ - 1)), &length, kRecordHeader);
  CopyIn(tail + kRecordHeader, message.data(), message.size());
  ix.tail.store(tail + need, std::memory_order_release);
  return true;
}

bool RingView::TryPop(std::string* out) {
  RingIndices& ix = *indices_;
  const uint64_t head = ix.head.load(std::memory_order_relaxed);
  if (head == ix.cached_tail) {
    ix.cached_tail = ix.tail.load(std::memory_order_acquire);
    if (head == ix.cached_tail) return false;
  }
  uint64_t length;
  std::memcpy(&length, data_ + (head & (capacity_ - 1)), kRecordHeader);
  const uint64_t need = RecordSize(length);
  CHECK(length <= max_message_size() && need <= ix.cached_tail - head)
      << "corrupt ring record at " << head << ": length " << length
      << ", tail " << ix.cached_tail;
  CopyOut(head + kRecordHeader, out, length);
  ix.head.store(head + need, std::memory_order_release);
  return true;
}

}  // namespace taskfork::ipc_internal
