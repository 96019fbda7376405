// Reader: the decoder's bounds-checked input cursor.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_READER_H_
#define TASKFORK_SERIALIZE_INTERNAL_READER_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

#include "serialize/internal/traits.h"
#include "serialize/internal/type_info.h"
#include "serialize/internal/writer.h"

namespace taskfork::serialize_internal {

// Reader: bounds-checked cursor with a sticky status (the first error wins).
class Reader {
 public:
  Reader(absl::string_view bytes, const TypeInfo* info)
      : begin_(bytes.data()),
        pos_(bytes.data()),
        end_(bytes.data() + bytes.size()),
        info_(info) {}
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() {
    if (ABSL_PREDICT_FALSE(failed_ && !memo_.empty())) ClearMemo();
  }

  size_t remaining() const { return static_cast<size_t>(end_ - pos_); }
  size_t offset() const { return static_cast<size_t>(pos_ - begin_); }
  const char* pos() const { return pos_; }
  void Skip(size_t n) { pos_ += n; }

  // Records an error (kDataLoss unless `code` says otherwise) at byte
  // `offset`; returns false.
  bool Fail(size_t offset, absl::string_view what,
            absl::StatusCode code = absl::StatusCode::kDataLoss);
  // Records a status returned by a user hook unchanged; returns false.
  bool FailWith(absl::Status status);
  bool Truncated(size_t need, absl::string_view what);

  bool Bytes(void* dst, size_t n, absl::string_view what) {
    if (ABSL_PREDICT_FALSE(n > remaining())) return Truncated(n, what);
    if (n != 0) std::memcpy(dst, pos_, n);  // dst may be null when n == 0
    pos_ += n;
    return true;
  }
  // The primitive readers below (Byte, Tag, Varint, Fixed, Count) write
  // their output on every path, zero when they fail: a caller that reads it
  // only after a success never sees an indeterminate value, and the
  // compiler can see that (GCC 12's -Wmaybe-uninitialized cannot follow the
  // `return false` through the sticky status otherwise).
  bool Byte(uint8_t* b, absl::string_view what) {
    if (ABSL_PREDICT_FALSE(pos_ == end_)) {
      *b = 0;
      return Truncated(1, what);
    }
    *b = static_cast<uint8_t>(*pos_++);
    return true;
  }
  // Reads a tag byte that must be < `limit`.
  bool Tag(uint8_t* b, uint8_t limit, absl::string_view what) {
    const size_t at = offset();
    if (!Byte(b, what)) return false;
    if (ABSL_PREDICT_FALSE(*b >= limit)) return BadTag(at, *b, what);
    return true;
  }
  bool Varint(uint64_t* v, absl::string_view what) {
    if (ABSL_PREDICT_TRUE(pos_ != end_ && static_cast<uint8_t>(*pos_) < 0x80)) {
      *v = static_cast<uint8_t>(*pos_++);
      return true;
    }
    return VarintSlow(v, what);
  }
  template <typename T>
  bool Fixed(T* v, absl::string_view what) {
    if (ABSL_PREDICT_FALSE(sizeof(T) > remaining())) {
      *v = T();
      return Truncated(sizeof(T), what);
    }
    char buf[sizeof(T)];
    std::memcpy(buf, pos_, sizeof(T));
    if constexpr (!kLittleEndian) Writer::Reverse(buf, sizeof(T));
    std::memcpy(v, buf, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  // Reads an element count and checks that `count * min_element_bytes`
  // bytes remain (so no claimed length can make Decode allocate more than a
  // constant times the input).
  bool Count(uint64_t* count, size_t min_element_bytes, absl::string_view what) {
    const size_t at = offset();
    if (!Varint(count, what)) return false;
    if (ABSL_PREDICT_FALSE(*count > remaining() / min_element_bytes)) {
      return TooLong(at, *count, min_element_bytes, what);
    }
    return true;
  }
  bool Enter() {
    if (ABSL_PREDICT_FALSE(++depth_ > kMaxDepth)) return TooDeep();
    return true;
  }
  void Leave() { --depth_; }

  // Shared-object memo (ids in order of first appearance). If the decode
  // fails, `clear` resets every memo object to a default value, which breaks
  // any cycle of shared_ptrs the refused input had built, so nothing leaks.
  struct MemoEntry {
    std::shared_ptr<void> object;
    const void* tag;
    size_t offset;  // where the object starts
    void (*clear)(void*);
  };
  std::vector<MemoEntry>& memo() { return memo_; }
  SharedGraph& shared() { return shared_; }

  // Checks the header against `info_`. The common case, the exact header
  // Encode<T> writes, is one comparison; anything else (a structurally
  // equal type with another name, or an error) takes the detailed path.
  bool Header() {
    const std::string& expected = info_->header;
    if (ABSL_PREDICT_TRUE(expected.size() <= remaining() &&
                          std::memcmp(pos_, expected.data(), expected.size()) == 0)) {
      pos_ += expected.size();
      return true;
    }
    return HeaderSlow();
  }
  // Checks that every byte was consumed and that the shared objects form no
  // cycle of shared_ptrs.
  bool Finish();
  absl::Status status() && { return std::move(status_); }

 private:
  bool HeaderSlow();
  bool VarintSlow(uint64_t* v, absl::string_view what);
  bool BadTag(size_t at, uint8_t tag, absl::string_view what);
  bool TooLong(size_t at, uint64_t count, size_t min_element_bytes,
               absl::string_view what);
  bool TooDeep();
  void ClearMemo();

  bool failed_ = false;
  const char* begin_;
  const char* pos_;
  const char* end_;
  const TypeInfo* info_;
  int depth_ = 0;
  std::vector<MemoEntry> memo_;
  SharedGraph shared_;
  absl::Status status_;
};

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_READER_H_
