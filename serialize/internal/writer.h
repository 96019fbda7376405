// Writer: the encoder's output cursor.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_WRITER_H_
#define TASKFORK_SERIALIZE_INTERNAL_WRITER_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"

#include "serialize/internal/traits.h"
#include "serialize/internal/type_info.h"

namespace taskfork::serialize_internal {

// Writer: appends to a std::string through a raw cursor. The string is grown
// ahead (zero-filled slack) and cut back to the bytes written by Finish();
// large byte runs are appended directly, with no slack and a single copy.
class Writer {
 public:
  explicit Writer(std::string* out)
      : out_(out), cur_(out->data() + out->size()), end_(cur_) {}
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { Finish(); }

  // Cuts the string back to the bytes written. Idempotent.
  void Finish() { out_->resize(static_cast<size_t>(cur_ - out_->data())); end_ = cur_; }

  void Bytes(const void* data, size_t n) {
    if (ABSL_PREDICT_TRUE(n <= static_cast<size_t>(end_ - cur_))) {
      if (n <= 16) {
        SmallCopy(cur_, static_cast<const char*>(data), n);
      } else {
        std::memcpy(cur_, data, n);
      }
      cur_ += n;
      return;
    }
    BytesSlow(data, n);
  }
  void Byte(uint8_t b) {
    Reserve(1);
    *cur_++ = static_cast<char>(b);
  }
  void Varint(uint64_t v) {
    Reserve(10);
    while (v >= 0x80) {
      *cur_++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *cur_++ = static_cast<char>(v);
  }
  // Appends the little-endian bytes of an arithmetic value.
  template <typename T>
  void Fixed(T v) {
    Reserve(sizeof(T));
    std::memcpy(cur_, &v, sizeof(T));
    if constexpr (!kLittleEndian) Reverse(cur_, sizeof(T));
    cur_ += sizeof(T);
  }
  // Returns a pointer to the next `n` bytes of output, which the caller
  // must fill.
  char* Extend(size_t n) {
    Reserve(n);
    char* p = cur_;
    cur_ += n;
    return p;
  }
  void Enter() {
    if (ABSL_PREDICT_FALSE(++depth_ > kMaxDepth)) TooDeep();
  }
  void Leave() { --depth_; }

  // The shared-object memo: sets *id to the id of (ptr, tag) and returns
  // true if it was written before; else records it under the next id, sets
  // *id to that and returns false.
  bool Memo(const void* ptr, const void* tag, const std::type_info& type,
            uint64_t* id);
  SharedGraph& shared() { return shared_; }
  // CHECK-fails if the shared objects written form a cycle of shared_ptrs.
  void CheckNoStrongCycles() {
    if (ABSL_PREDICT_FALSE(memo_ != nullptr)) CheckCycles();
  }

  // Copies n <= 16 bytes inline with fixed-size (possibly overlapping)
  // moves, which is cheaper than a call to memcpy for the short strings
  // and keys records are full of. Reads and writes only [src, src + n) and
  // [dst, dst + n).
  static void SmallCopy(char* dst, const char* src, size_t n) {
    if (n >= 8) {
      uint64_t head, tail;
      std::memcpy(&head, src, 8);
      std::memcpy(&tail, src + n - 8, 8);
      std::memcpy(dst, &head, 8);
      std::memcpy(dst + n - 8, &tail, 8);
    } else if (n >= 4) {
      uint32_t head, tail;
      std::memcpy(&head, src, 4);
      std::memcpy(&tail, src + n - 4, 4);
      std::memcpy(dst, &head, 4);
      std::memcpy(dst + n - 4, &tail, 4);
    } else if (n != 0) {
      // 1..3 bytes: first, middle and last (some may coincide).
      const char first = src[0], middle = src[n / 2], last = src[n - 1];
      dst[0] = first;
      dst[n / 2] = middle;
      dst[n - 1] = last;
    }
  }

  static void Reverse(char* p, size_t n) {
    for (size_t i = 0; i < n / 2; ++i) std::swap(p[i], p[n - 1 - i]);
  }

 private:
  void Reserve(size_t n) {
    if (ABSL_PREDICT_FALSE(static_cast<size_t>(end_ - cur_) < n)) Grow(n);
  }
  void Grow(size_t n);
  void BytesSlow(const void* data, size_t n);
  [[noreturn]] void TooDeep();
  void CheckCycles();

  std::string* out_;
  char* cur_;  // next byte to write, in out_'s buffer
  char* end_;  // end of out_'s current size (cur_..end_ is slack)
  int depth_ = 0;
  std::unique_ptr<std::map<std::pair<const void*, const void*>, int64_t>>
      memo_;
  std::vector<const std::type_info*> memo_types_;
  SharedGraph shared_;
};

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_WRITER_H_
