// taskfork::serialize: pickle for C++ -- typed, versioned, bounds-checked
// encoding of C++ values (scalars, strings, std containers, tuples, optional,
// variant, smart pointers with a shared-object memo, absl time and status,
// protobuf messages via serialize/protobuf.h, and user classes that list
// their fields in one line).
//
//   struct Hero { std::string name; std::vector<int64_t> scores;
//                 TASKFORK_SERIALIZE(name, scores); };
//   std::string bytes = taskfork::serialize::Encode(Hero{"tony", {1, 2}});
//   absl::StatusOr<Hero> hero = taskfork::serialize::Decode<Hero>(bytes);
//
// The wire format is documented in serialize/FORMAT.md: a header (magic,
// version, a fingerprint of the value's *structure*, and its printable type
// name) followed by the value. Decoding checks every length against the bytes
// that remain, so hostile input yields an error, never a crash or an
// allocation larger than a type-dependent constant times the input size.
//
// Supported types (kIsSerializable<T> is true for exactly these):
//   bool, all integer and floating types, enums (as their underlying type),
//   std::string (any std::basic_string of a character type),
//   std::vector, std::array, std::deque, std::list, std::map,
//   std::unordered_map, std::set, std::unordered_set, std::multimap,
//   std::multiset, std::pair, std::tuple, std::optional, absl::optional,
//   std::variant, std::monostate, std::unique_ptr (default deleter),
//   std::shared_ptr, std::weak_ptr, absl::Duration, absl::Time, absl::Status,
//   absl::StatusOr<T>, protobuf messages (only where serialize/protobuf.h is
//   included) and classes declaring TASKFORK_SERIALIZE(fields...), nested in
//   any way. Refused at compile time (static_assert): raw pointers,
//   references, string_view, types without a codec, types declaring
//   TASKFORK_NOT_SERIALIZABLE(), and containers whose elements may encode to
//   zero bytes (std::tuple<>, empty classes), whose element count could not
//   be bounded by the input size.
//
// User classes:
//   class Session {
//    public:
//     ...
//    private:
//     TASKFORK_SERIALIZE(host_, port_);   // private fields are fine
//     absl::Status AfterDecode();           // optional hook, may be private
//     std::string host_;
//     int port_ = 0;
//     Connection live_;                     // not listed: not serialized
//   };
// The listed fields must be non-const data members; decoding default-constructs
// the class (the default constructor may be private) and assigns the fields
// in order, then calls `absl::Status AfterDecode()` if the class has one;
// a non-OK status from it is returned by Decode unchanged (pickle's
// __setstate__: reconnect a session, re-open a file).
//
// A class that must never be serialized (a live socket) declares
// TASKFORK_NOT_SERIALIZABLE(); encoding it, or anything containing it, fails
// to compile with a message saying so.
//
// Shared objects (pickle's memo): within one Encode call, every object
// reachable through std::shared_ptr / std::weak_ptr is written once; further
// pointers to it are written as back-references, so two shared_ptrs to one
// object decode as two shared_ptrs to one new object. Cycles are supported
// when a std::weak_ptr closes them (parent pointers, doubly linked lists: the
// usual C++ idiom). A cycle made only of shared_ptrs owns itself and leaks,
// so it is refused: Encode CHECK-fails naming the type, and Decode returns
// kInvalidArgument (hostile bytes cannot make a decoded value leak).
// Values nested deeper than kMaxDepth levels are refused too: Decode returns
// kInvalidArgument, Encode CHECK-fails (a programming error: flatten deep
// structures such as long linked lists). Neither recurses without bound.
#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#define TASKFORK_SERIALIZE_SERIALIZE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/optional.h"
#include "absl/utility/utility.h"

// Lists the data members of a class to serialize, in order; put it anywhere
// in the class body (any access section): TASKFORK_SERIALIZE(a, b_, c);
// An empty list (TASKFORK_SERIALIZE()) makes a class with no state
// serializable. It declares members named TaskforkSerialize* and befriends
// taskfork::serialize::Access.
#define TASKFORK_SERIALIZE(...)                                         \
  friend struct ::taskfork::serialize::Access;                          \
  auto TaskforkSerializeFields() { return ::std::tie(__VA_ARGS__); }    \
  auto TaskforkSerializeFields() const { return ::std::tie(__VA_ARGS__); }

// Marks a class as never serializable (e.g. it owns a live socket); any
// Encode or Decode of it, or of a value containing it, fails to compile.
#define TASKFORK_NOT_SERIALIZABLE() \
  friend struct ::taskfork::serialize::Access;   \
  using TaskforkNotSerializable = void

// The message of the static_assert that refuses a non-serializable type.
#define TASKFORK_SERIALIZE_NOT_SERIALIZABLE_                                 \
  "taskfork::serialize: this type is not serializable (it, or a type "      \
  "nested in it, has no codec, is a raw pointer, declares "                 \
  "TASKFORK_NOT_SERIALIZABLE(), lists a const field, or is a container of " \
  "zero-byte elements). See the next error for the offending type and "     \
  "serialize.h for what is supported."

namespace taskfork::serialize {

// Format version written in every header (see FORMAT.md). Version 2 writes
// ordered sets and maps in descending order; Decode reads only this version.
inline constexpr uint8_t kFormatVersion = 2;
// The deepest nesting Encode writes and Decode accepts. Every container,
// class, pair/tuple, optional, variant, StatusOr and pointer level counts one
// (a linked list through std::unique_ptr uses two levels per node).
inline constexpr int kMaxDepth = 512;

// Grants the codecs access to the private members the macros declare.
// Not for direct use.
struct Access {
  template <typename T>
  static auto Fields(T& v) -> decltype(v.TaskforkSerializeFields()) {
    return v.TaskforkSerializeFields();
  }
  template <typename T>
  static auto TestFields(int)
      -> decltype(std::declval<T&>().TaskforkSerializeFields(), std::true_type{});
  template <typename T>
  static std::false_type TestFields(...);
  template <typename T>
  static auto TestRefused(int)
      -> decltype(std::declval<typename T::TaskforkNotSerializable*>(), std::true_type{});
  template <typename T>
  static std::false_type TestRefused(...);
  template <typename T>
  static auto TestAfterDecode(int) -> std::is_same<
      decltype(std::declval<T&>().AfterDecode()), absl::Status>;
  template <typename T>
  static std::false_type TestAfterDecode(...);
  template <typename T>
  static absl::Status AfterDecode(T& v) {
    return v.AfterDecode();
  }
  template <typename T>
  static T Make() {
    return T();
  }
  template <typename T>
  static T* New() {
    return new T();
  }
};

}  // namespace taskfork::serialize

namespace taskfork::serialize_internal {

using ::taskfork::serialize::Access;
using ::taskfork::serialize::kMaxDepth;

template <typename T>
inline constexpr bool kHasFields =
    decltype(Access::TestFields<T>(0))::value;
template <typename T>
inline constexpr bool kRefused = decltype(Access::TestRefused<T>(0))::value;
template <typename T>
inline constexpr bool kHasAfterDecode =
    decltype(Access::TestAfterDecode<T>(0))::value;

template <typename T>
inline constexpr bool kAlwaysFalse = false;

inline constexpr bool kLittleEndian =
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// A distinct address per type, stable within a process.
template <typename T>
struct TypeTag {
  static constexpr char kTag = 0;
};
template <typename T>
constexpr const void* TagOf() {
  return &TypeTag<T>::kTag;
}

// ---------------------------------------------------------------------------
// Non-template helpers (serialize.cc).

// Aborts with `what` (Encode's precondition failures).
[[noreturn]] void EncodeFatal(const std::string& what);
// Human-readable, namespace-free name of a type_info.
std::string ShortTypeName(const std::type_info& type);
// FNV-1a 64 of `bytes` (stable across processes and builds).
uint64_t Fingerprint(absl::string_view bytes);

// Builds the structural description of a type. `structure` feeds the
// fingerprint; `display` is the same with class names, for error messages.
class Describer {
 public:
  void Both(absl::string_view s) {
    structure_.append(s.data(), s.size());
    display_.append(s.data(), s.size());
  }
  void Label(absl::string_view s) { display_.append(s.data(), s.size()); }
  // Returns the nesting index of `tag` if it is being described (a recursive
  // type), else -1.
  int Find(const void* tag) const {
    for (size_t i = 0; i < stack_.size(); ++i) {
      if (stack_[i] == tag) return static_cast<int>(i);
    }
    return -1;
  }
  void Push(const void* tag) { stack_.push_back(tag); }
  void Pop() { stack_.pop_back(); }
  std::string& structure() { return structure_; }
  std::string& display() { return display_; }

 private:
  std::string structure_;
  std::string display_;
  std::vector<const void*> stack_;
};

// What the header of an encoding of one type holds (built once per type).
struct TypeInfo {
  std::string display;    // printable structure, e.g. "Hero{str,[i64]}"
  uint64_t fingerprint;   // Fingerprint() of the structure
  std::string header;     // the complete encoded header
};
// Fills `info` from a finished Describer.
void FinishTypeInfo(Describer& describer, TypeInfo* info);

// The shared objects of one Encode or Decode call (memo ids) and the strong
// (shared_ptr, not weak_ptr) references between them, to refuse cycles of
// shared_ptrs, which would own themselves and leak.
class SharedGraph {
 public:
  // The contents of shared object `id` are being coded / are done.
  void Enter(uint64_t id) { stack_.push_back(id); }
  void Leave() { stack_.pop_back(); }
  // A shared_ptr to object `id` is coded here (inside the innermost entered
  // object, if any).
  void StrongRef(uint64_t id) {
    if (!stack_.empty()) edges_.emplace_back(stack_.back(), id);
  }
  // Returns an object on a cycle of strong references among `objects`
  // objects, or -1. Linear in objects + references.
  int64_t FindCycle(size_t objects) const;

 private:
  std::vector<uint64_t> stack_;
  std::vector<std::pair<uint64_t, uint64_t>> edges_;
};

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
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

// ---------------------------------------------------------------------------
// Codecs. Each Codec<T> has:
//   template <typename Seen> static constexpr bool Supported();
//       whether T can be encoded; Seen lists the classes being checked
//       (recursive types are supported co-inductively).
//   static constexpr size_t MinSize();   fewest bytes an encoding takes
//   static void Describe(Describer&);    structural description
//   static void Encode(const T&, Writer&);
//   static bool Decode(Reader&, T&);     false after recording an error

template <typename... Ts>
struct TypeList {};

template <typename T, typename List>
struct Contains;
template <typename T, typename... Ts>
struct Contains<T, TypeList<Ts...>>
    : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

template <typename T, typename = void>
struct Codec {
  template <typename Seen>
  static constexpr bool Supported() {
    return false;
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer&) {}
  static void Encode(const T&, Writer&) {
    static_assert(!kRefused<T>,
                  "taskfork::serialize: this type declares "
                  "TASKFORK_NOT_SERIALIZABLE() (e.g. it owns a live "
                  "resource): encode the state needed to recreate it "
                  "instead, and recreate it in an AfterDecode() hook");
    static_assert(kRefused<T> || std::is_pointer_v<T>,
                  "taskfork::serialize: no codec for this type (see the "
                  "'Codec<T>' instantiation above). Add "
                  "TASKFORK_SERIALIZE(field, ...) to a class, include "
                  "serialize/protobuf.h for protobuf messages; see "
                  "serialize.h for the supported types");
    static_assert(kRefused<T> || !std::is_pointer_v<T>,
                  "taskfork::serialize: raw pointers are not serializable "
                  "(ownership is unknown); use std::unique_ptr or "
                  "std::shared_ptr");
  }
  static bool Decode(Reader&, T&) {
    static_assert(kAlwaysFalse<T>,
                  "taskfork::serialize: no codec for this type");
    return false;
  }
};

template <typename T, typename Seen>
constexpr bool SupportedIn() {
  return Codec<T>::template Supported<Seen>();
}
template <typename T>
constexpr size_t MinSizeOf() {
  return Codec<T>::MinSize();
}
template <typename T>
void DescribeType(Describer& d) {
  Codec<T>::Describe(d);
}
template <typename T>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline void EncodeValue(const T& v, Writer& w) {
  Codec<T>::Encode(v, w);
}
template <typename T>
ABSL_ATTRIBUTE_ALWAYS_INLINE inline bool DecodeValue(Reader& r, T& v) {
  return Codec<T>::Decode(r, v);
}

// Default-constructs a T (privately default-constructible classes too).
template <typename T>
T MakeDefault() {
  if constexpr (std::is_default_constructible_v<T>) {
    return T();
  } else {
    return Access::Make<T>();
  }
}

// --- arithmetic ------------------------------------------------------------

template <typename T>
constexpr const char* ArithmeticName() {
  if constexpr (std::is_floating_point_v<T>) {
    if constexpr (sizeof(T) == 4) return "f32";
    if constexpr (sizeof(T) == 8) return "f64";
    return "f80";
  } else if constexpr (std::is_signed_v<T>) {
    if constexpr (sizeof(T) == 1) return "i8";
    if constexpr (sizeof(T) == 2) return "i16";
    if constexpr (sizeof(T) == 4) return "i32";
    return "i64";
  } else {
    if constexpr (sizeof(T) == 1) return "u8";
    if constexpr (sizeof(T) == 2) return "u16";
    if constexpr (sizeof(T) == 4) return "u32";
    return "u64";
  }
}

// Bytes of a long double that carry its value (x87: 10 of 16).
inline constexpr size_t kLongDoubleBytes =
    (__LDBL_MANT_DIG__ == 64) ? 10 : sizeof(long double);

// Integers and floats: fixed-width little-endian.
template <typename T>
struct Codec<T, std::enable_if_t<std::is_arithmetic_v<T> &&
                                 !std::is_same_v<T, bool> &&
                                 !std::is_same_v<T, long double>>> {
  static_assert(sizeof(T) <= 8, "integers wider than 64 bits are not supported");
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return sizeof(T); }
  static void Describe(Describer& d) { d.Both(ArithmeticName<T>()); }
  static void Encode(const T& v, Writer& w) { w.Fixed(v); }
  static bool Decode(Reader& r, T& v) { return r.Fixed(&v, ArithmeticName<T>()); }
};

template <>
struct Codec<long double> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return kLongDoubleBytes; }
  static void Describe(Describer& d) {
    d.Both(kLongDoubleBytes == 10 ? "f80" : "f128");
  }
  static void Encode(const long double& v, Writer& w) {
    char buf[sizeof(long double)];
    std::memcpy(buf, &v, sizeof(buf));
    if constexpr (!kLittleEndian) Writer::Reverse(buf, sizeof(buf));
    w.Bytes(buf, kLongDoubleBytes);
  }
  static bool Decode(Reader& r, long double& v) {
    char buf[sizeof(long double)] = {};
    if (!r.Bytes(buf, kLongDoubleBytes, "long double")) return false;
    if constexpr (!kLittleEndian) Writer::Reverse(buf, sizeof(buf));
    std::memcpy(&v, buf, sizeof(buf));
    return true;
  }
};

template <>
struct Codec<bool> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) { d.Both("bool"); }
  static void Encode(bool v, Writer& w) { w.Byte(v ? 1 : 0); }
  static bool Decode(Reader& r, bool& v) {
    uint8_t b;
    if (!r.Tag(&b, 2, "bool")) return false;
    v = b != 0;
    return true;
  }
};

template <typename T>
struct Codec<T, std::enable_if_t<std::is_enum_v<T>>> {
  using U = std::underlying_type_t<T>;
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return sizeof(U); }
  static void Describe(Describer& d) {
    d.Both("e");
    d.Both(ArithmeticName<U>());
  }
  static void Encode(const T& v, Writer& w) { w.Fixed(static_cast<U>(v)); }
  static bool Decode(Reader& r, T& v) {
    U u;
    if (!r.Fixed(&u, "enum")) return false;
    v = static_cast<T>(u);
    return true;
  }
};

// Arithmetic element types copied as one block (little-endian hosts).
template <typename T>
inline constexpr bool kBlockCopy =
    std::is_arithmetic_v<T> && !std::is_same_v<T, bool> &&
    !std::is_same_v<T, long double>;

// --- strings ----------------------------------------------------------------

template <typename C, typename Tr, typename A>
struct Codec<std::basic_string<C, Tr, A>> {
  using S = std::basic_string<C, Tr, A>;
  template <typename Seen>
  static constexpr bool Supported() {
    return kBlockCopy<C>;
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("str");
    if constexpr (sizeof(C) != 1) d.Both(ArithmeticName<C>());
  }
  static void Encode(const S& s, Writer& w) {
    w.Varint(s.size());
    if constexpr (sizeof(C) == 1 || kLittleEndian) {
      w.Bytes(s.data(), s.size() * sizeof(C));
    } else {
      for (C c : s) w.Fixed(c);
    }
  }
  static bool Decode(Reader& r, S& s) {
    uint64_t n;
    if (!r.Count(&n, sizeof(C), "string length")) return false;
    if constexpr (sizeof(C) == 1) {
      // clear + append: one copy, and no allocation while the bytes fit
      // the capacity (assign() takes a general path with aliasing checks;
      // constructing a temporary and moving it copies twice).
      s.clear();
      s.append(reinterpret_cast<const C*>(r.pos()), n);
      r.Skip(n);
    } else {
      s.resize(n);
      for (C& c : s) r.Fixed(&c, "string");
    }
    return true;
  }
};

// --- sequences --------------------------------------------------------------

// Most elements reserved ahead from a claimed count: the rest grow as
// elements actually decode, so a lying count cannot make Decode allocate
// more than the decoded elements need.
template <typename T>
constexpr size_t ReserveCap() {
  return 4096 / sizeof(T) + 1;
}

template <typename T, typename Seen>
constexpr bool ElementSupported() {
  return SupportedIn<T, Seen>() && MinSizeOf<T>() > 0;
}

// Shared by vector (non-block), deque and list: varint count + elements.
template <typename Seq>
struct SequenceCodec {
  using T = typename Seq::value_type;
  template <typename Seen>
  static constexpr bool Supported() {
    return ElementSupported<T, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("[");
    DescribeType<T>(d);
    d.Both("]");
  }
  static void Encode(const Seq& s, Writer& w) {
    w.Enter();
    w.Varint(s.size());
    for (const T& e : s) EncodeValue(e, w);
    w.Leave();
  }
  static bool Decode(Reader& r, Seq& s) {
    if (!r.Enter()) return false;
    uint64_t n;
    if (!r.Count(&n, MinSizeOf<T>(), "sequence length")) return false;
    s.clear();
    if constexpr (std::is_same_v<Seq, std::vector<T, typename Seq::allocator_type>>) {
      s.reserve(n < ReserveCap<T>() ? n : ReserveCap<T>());
    }
    for (uint64_t i = 0; i < n; ++i) {
      if constexpr (std::is_default_constructible_v<T>) {
        s.emplace_back();
      } else {
        s.push_back(Access::Make<T>());
      }
      if (!DecodeValue(r, s.back())) return false;
    }
    r.Leave();
    return true;
  }
};

template <typename T, typename A>
struct Codec<std::vector<T, A>> : SequenceCodec<std::vector<T, A>> {
  using V = std::vector<T, A>;
  static void Encode(const V& v, Writer& w) {
    if constexpr (kBlockCopy<T> && kLittleEndian) {
      w.Varint(v.size());
      w.Bytes(v.data(), v.size() * sizeof(T));
    } else {
      SequenceCodec<V>::Encode(v, w);
    }
  }
  static bool Decode(Reader& r, V& v) {
    if constexpr (kBlockCopy<T> && kLittleEndian) {
      uint64_t n;
      if (!r.Count(&n, sizeof(T), "vector length")) return false;
      if constexpr (sizeof(T) == 1) {
        const T* p = reinterpret_cast<const T*>(r.pos());
        v.assign(p, p + n);
      } else {
        v.resize(n);
        if (n != 0) std::memcpy(v.data(), r.pos(), n * sizeof(T));
      }
      r.Skip(n * sizeof(T));
      return true;
    } else {
      return SequenceCodec<V>::Decode(r, v);
    }
  }
};

// std::vector<bool>: one byte (0 or 1) per element.
template <typename A>
struct Codec<std::vector<bool, A>> {
  using V = std::vector<bool, A>;
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) { d.Both("[bool]"); }
  static void Encode(const V& v, Writer& w) {
    w.Varint(v.size());
    char* p = w.Extend(v.size());
    for (size_t i = 0; i < v.size(); ++i) p[i] = v[i] ? 1 : 0;
  }
  static bool Decode(Reader& r, V& v) {
    uint64_t n;
    if (!r.Count(&n, 1, "vector<bool> length")) return false;
    v.assign(n, false);
    for (uint64_t i = 0; i < n; ++i) {
      uint8_t b;
      if (!r.Tag(&b, 2, "bool")) return false;
      v[i] = b != 0;
    }
    return true;
  }
};

template <typename T, typename A>
struct Codec<std::deque<T, A>> : SequenceCodec<std::deque<T, A>> {};
template <typename T, typename A>
struct Codec<std::list<T, A>> : SequenceCodec<std::list<T, A>> {};

template <typename T, size_t N>
struct Codec<std::array<T, N>> {
  using V = std::array<T, N>;
  template <typename Seen>
  static constexpr bool Supported() {
    return SupportedIn<T, Seen>();
  }
  static constexpr size_t MinSize() { return N * MinSizeOf<T>(); }
  static void Describe(Describer& d) {
    d.Both("[");
    DescribeType<T>(d);
    d.Both(";");
    d.Both(std::to_string(N));
    d.Both("]");
  }
  static void Encode(const V& v, Writer& w) {
    if constexpr (kBlockCopy<T> && kLittleEndian) {
      w.Bytes(v.data(), N * sizeof(T));
    } else {
      w.Enter();
      for (const T& e : v) EncodeValue(e, w);
      w.Leave();
    }
  }
  static bool Decode(Reader& r, V& v) {
    if constexpr (kBlockCopy<T> && kLittleEndian) {
      return r.Bytes(v.data(), N * sizeof(T), "array");
    } else {
      if (!r.Enter()) return false;
      for (T& e : v) {
        if (!DecodeValue(r, e)) return false;
      }
      r.Leave();
      return true;
    }
  }
};

// --- sets and maps ----------------------------------------------------------

template <typename M>
inline constexpr bool kIsUniqueKeys = true;
template <typename K, typename C, typename A>
inline constexpr bool kIsUniqueKeys<std::multiset<K, C, A>> = false;
template <typename K, typename V, typename C, typename A>
inline constexpr bool kIsUniqueKeys<std::multimap<K, V, C, A>> = false;

template <typename M>
inline constexpr bool kIsHashed = false;
template <typename K, typename V, typename H, typename E, typename A>
inline constexpr bool kIsHashed<std::unordered_map<K, V, H, E, A>> = true;
template <typename K, typename H, typename E, typename A>
inline constexpr bool kIsHashed<std::unordered_set<K, H, E, A>> = true;

// Ordered containers are written in reverse iteration order (descending
// keys; equal keys of a multi- container last to first) and decoded by
// inserting each element at the front: with the hint begin(), std::map and
// std::set then compare each new key once (at the end, they compare twice:
// once to check the hint and once more to link the node). Unordered
// containers keep their iteration order; the hint does not matter there.
template <typename M, typename F>
void ForEachInWireOrder(const M& m, F&& f) {
  if constexpr (kIsHashed<M>) {
    for (const auto& e : m) f(e);
  } else {
    // Not a reverse_iterator: it steps back on every dereference too.
    for (auto it = m.end(); it != m.begin();) f(*--it);
  }
}
template <typename M>
typename M::iterator DecodeHint(M& m) {
  if constexpr (kIsHashed<M>) {
    return m.end();
  } else {
    return m.begin();
  }
}

template <typename M>
void ReserveIfHashed(M& m, uint64_t n) {
  if constexpr (kIsHashed<M>) {
    constexpr size_t kCap = ReserveCap<typename M::value_type>();
    m.reserve(n < kCap ? n : kCap);
  }
}

template <typename S>
struct SetCodec {
  using K = typename S::key_type;
  template <typename Seen>
  static constexpr bool Supported() {
    return ElementSupported<K, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both(kIsUniqueKeys<S> ? "{" : "{*");
    DescribeType<K>(d);
    d.Both("}");
  }
  static void Encode(const S& s, Writer& w) {
    w.Enter();
    w.Varint(s.size());
    ForEachInWireOrder(s, [&w](const K& k) { EncodeValue(k, w); });
    w.Leave();
  }
  static bool Decode(Reader& r, S& s) {
    if (!r.Enter()) return false;
    uint64_t n;
    if (!r.Count(&n, MinSizeOf<K>(), "set size")) return false;
    s.clear();
    ReserveIfHashed(s, n);
    for (uint64_t i = 0; i < n; ++i) {
      const size_t at = r.offset();
      K k = MakeDefault<K>();
      if (!DecodeValue(r, k)) return false;
      const size_t before = s.size();
      s.insert(DecodeHint(s), std::move(k));
      if (kIsUniqueKeys<S> && s.size() == before) {
        return r.Fail(at, "duplicate set element");
      }
    }
    r.Leave();
    return true;
  }
};

template <typename M>
struct MapCodec {
  using K = typename M::key_type;
  using V = typename M::mapped_type;
  template <typename Seen>
  static constexpr bool Supported() {
    return ElementSupported<K, Seen>() && SupportedIn<V, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both(kIsUniqueKeys<M> ? "{" : "{*");
    DescribeType<K>(d);
    d.Both(":");
    DescribeType<V>(d);
    d.Both("}");
  }
  static void Encode(const M& m, Writer& w) {
    w.Enter();
    w.Varint(m.size());
    ForEachInWireOrder(m, [&w](const auto& kv) {
      EncodeValue(kv.first, w);
      EncodeValue(kv.second, w);
    });
    w.Leave();
  }
  static bool Decode(Reader& r, M& m) {
    if (!r.Enter()) return false;
    uint64_t n;
    if (!r.Count(&n, MinSizeOf<K>() + MinSizeOf<V>(), "map size")) {
      return false;
    }
    m.clear();
    ReserveIfHashed(m, n);
    for (uint64_t i = 0; i < n; ++i) {
      const size_t at = r.offset();
      typename M::iterator it;
      const size_t before = m.size();
      if constexpr (std::is_same_v<K, std::string> &&
                    std::is_default_constructible_v<V>) {
        // Builds the key in its node: no temporary string.
        uint64_t size;
        if (!r.Count(&size, 1, "string length")) return false;
        it = m.emplace_hint(DecodeHint(m), std::piecewise_construct,
                            std::forward_as_tuple(r.pos(), size),
                            std::forward_as_tuple());
        r.Skip(size);
      } else {
        K k = MakeDefault<K>();
        if (!DecodeValue(r, k)) return false;
        it = m.emplace_hint(DecodeHint(m), std::move(k), MakeDefault<V>());
      }
      if (kIsUniqueKeys<M> && m.size() == before) {
        return r.Fail(at, "duplicate map key");
      }
      if (!DecodeValue(r, it->second)) return false;
    }
    r.Leave();
    return true;
  }
};

template <typename K, typename C, typename A>
struct Codec<std::set<K, C, A>> : SetCodec<std::set<K, C, A>> {};
template <typename K, typename C, typename A>
struct Codec<std::multiset<K, C, A>> : SetCodec<std::multiset<K, C, A>> {};
template <typename K, typename H, typename E, typename A>
struct Codec<std::unordered_set<K, H, E, A>>
    : SetCodec<std::unordered_set<K, H, E, A>> {};
template <typename K, typename V, typename C, typename A>
struct Codec<std::map<K, V, C, A>> : MapCodec<std::map<K, V, C, A>> {};
template <typename K, typename V, typename C, typename A>
struct Codec<std::multimap<K, V, C, A>> : MapCodec<std::multimap<K, V, C, A>> {};
template <typename K, typename V, typename H, typename E, typename A>
struct Codec<std::unordered_map<K, V, H, E, A>>
    : MapCodec<std::unordered_map<K, V, H, E, A>> {};

// --- pair, tuple ------------------------------------------------------------

template <typename... Ts>
struct ProductCodec {
  template <typename Seen>
  static constexpr bool Supported() {
    return (SupportedIn<Ts, Seen>() && ...);
  }
  static constexpr size_t MinSize() { return (size_t{0} + ... + MinSizeOf<Ts>()); }
  static void Describe(Describer& d) {
    d.Both("(");
    bool first = true;
    ((d.Both(first ? "" : ","), first = false, DescribeType<Ts>(d)), ...);
    d.Both(")");
  }
  template <typename Tuple>
  static void EncodeAll(const Tuple& t, Writer& w) {
    w.Enter();
    std::apply([&w](const auto&... e) { (EncodeValue(e, w), ...); }, t);
    w.Leave();
  }
  template <typename Tuple>
  static bool DecodeAll(Reader& r, Tuple& t) {
    if (!r.Enter()) return false;
    const bool ok =
        std::apply([&r](auto&... e) { return (DecodeValue(r, e) && ...); }, t);
    if (ok) r.Leave();
    return ok;
  }
};

template <typename A, typename B>
struct Codec<std::pair<A, B>> : ProductCodec<A, B> {
  static void Encode(const std::pair<A, B>& p, Writer& w) {
    w.Enter();
    EncodeValue(p.first, w);
    EncodeValue(p.second, w);
    w.Leave();
  }
  static bool Decode(Reader& r, std::pair<A, B>& p) {
    if (!r.Enter()) return false;
    if (!DecodeValue(r, p.first) || !DecodeValue(r, p.second)) return false;
    r.Leave();
    return true;
  }
};

template <typename... Ts>
struct Codec<std::tuple<Ts...>> : ProductCodec<Ts...> {
  static void Encode(const std::tuple<Ts...>& t, Writer& w) {
    ProductCodec<Ts...>::EncodeAll(t, w);
  }
  static bool Decode(Reader& r, std::tuple<Ts...>& t) {
    return ProductCodec<Ts...>::DecodeAll(r, t);
  }
};

// --- optional, variant ------------------------------------------------------

template <typename Opt, typename T>
struct OptionalCodec {
  template <typename Seen>
  static constexpr bool Supported() {
    return SupportedIn<T, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("?");
    DescribeType<T>(d);
  }
  static void Encode(const Opt& o, Writer& w) {
    if (!o.has_value()) {
      w.Byte(0);
      return;
    }
    w.Enter();
    w.Byte(1);
    EncodeValue(*o, w);
    w.Leave();
  }
  static bool Decode(Reader& r, Opt& o) {
    uint8_t tag;
    if (!r.Tag(&tag, 2, "optional tag")) return false;
    if (tag == 0) {
      o.reset();
      return true;
    }
    if (!r.Enter()) return false;
    if constexpr (std::is_default_constructible_v<T>) {
      o.emplace();
    } else {
      o.emplace(Access::Make<T>());
    }
    if (!DecodeValue(r, *o)) return false;
    r.Leave();
    return true;
  }
};

template <typename T>
struct Codec<std::optional<T>> : OptionalCodec<std::optional<T>, T> {};
template <typename T>
struct Codec<absl::optional<T>, std::enable_if_t<!std::is_same_v<
                                    absl::optional<T>, std::optional<T>>>>
    : OptionalCodec<absl::optional<T>, T> {};

template <>
struct Codec<std::monostate> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 0; }
  static void Describe(Describer& d) { d.Both("()"); }
  static void Encode(const std::monostate&, Writer&) {}
  static bool Decode(Reader&, std::monostate&) { return true; }
};

template <typename... Ts>
struct Codec<std::variant<Ts...>> {
  using V = std::variant<Ts...>;
  template <typename Seen>
  static constexpr bool Supported() {
    return (SupportedIn<Ts, Seen>() && ...);
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("<");
    bool first = true;
    ((d.Both(first ? "" : "|"), first = false, DescribeType<Ts>(d)), ...);
    d.Both(">");
  }
  static void Encode(const V& v, Writer& w) {
    if (ABSL_PREDICT_FALSE(v.valueless_by_exception())) {
      EncodeFatal("serialize::Encode: std::variant is valueless_by_exception");
    }
    w.Enter();
    w.Varint(v.index());
    std::visit([&w](const auto& e) { EncodeValue(e, w); }, v);
    w.Leave();
  }
  template <size_t I>
  static bool DecodeAlternative(Reader& r, V& v) {
    using T = std::variant_alternative_t<I, V>;
    if constexpr (std::is_default_constructible_v<T>) {
      v.template emplace<I>();
    } else {
      v.template emplace<I>(Access::Make<T>());
    }
    return DecodeValue(r, std::get<I>(v));
  }
  template <size_t... Is>
  static bool DecodeIndex(Reader& r, V& v, size_t index,
                          std::index_sequence<Is...>) {
    using Fn = bool (*)(Reader&, V&);
    static constexpr Fn kTable[] = {&DecodeAlternative<Is>...};
    return kTable[index](r, v);
  }
  static bool Decode(Reader& r, V& v) {
    const size_t at = r.offset();
    uint64_t index;
    if (!r.Varint(&index, "variant index")) return false;
    if (ABSL_PREDICT_FALSE(index >= sizeof...(Ts))) {
      return r.Fail(at, "variant index " + std::to_string(index) +
                            " out of range (the variant has " +
                            std::to_string(sizeof...(Ts)) + " alternatives)");
    }
    if (!r.Enter()) return false;
    if (!DecodeIndex(r, v, index, std::index_sequence_for<Ts...>{})) {
      return false;
    }
    r.Leave();
    return true;
  }
};

// --- smart pointers ---------------------------------------------------------

// Checks that a pointee is exactly of its static type (no slicing).
template <typename T>
void CheckExactType(const T& v) {
  if constexpr (std::is_polymorphic_v<T> && !std::is_final_v<T>) {
    if (ABSL_PREDICT_FALSE(typeid(v) != typeid(T))) {
      EncodeFatal("serialize::Encode: a pointer to " + ShortTypeName(typeid(T)) +
                  " points to a " + ShortTypeName(typeid(v)) +
                  "; only the static type would be written (slicing)");
    }
  }
}

// unique_ptr: encoded like optional (0 = null, 1 + value).
template <typename T>
struct Codec<std::unique_ptr<T>> {
  template <typename Seen>
  static constexpr bool Supported() {
    return !std::is_array_v<T> && SupportedIn<std::remove_const_t<T>, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("?");
    DescribeType<std::remove_const_t<T>>(d);
  }
  static void Encode(const std::unique_ptr<T>& p, Writer& w) {
    if (p == nullptr) {
      w.Byte(0);
      return;
    }
    CheckExactType(*p);
    w.Enter();
    w.Byte(1);
    EncodeValue(*p, w);
    w.Leave();
  }
  static bool Decode(Reader& r, std::unique_ptr<T>& p) {
    using V = std::remove_const_t<T>;
    uint8_t tag;
    if (!r.Tag(&tag, 2, "unique_ptr tag")) return false;
    if (tag == 0) {
      p.reset();
      return true;
    }
    if (!r.Enter()) return false;
    std::unique_ptr<V> v;
    if constexpr (std::is_default_constructible_v<V>) {
      v = std::make_unique<V>();
    } else {
      v.reset(Access::New<V>());
    }
    if (!DecodeValue(r, *v)) return false;
    p = std::move(v);
    r.Leave();
    return true;
  }
};

// shared_ptr / weak_ptr: varint 0 = null, 1 = a new object follows (it gets
// the next id, counting from 0), id + 2 = the object written earlier as id.
template <typename T>
struct SharedCodec {
  using V = std::remove_const_t<T>;
  template <typename Seen>
  static constexpr bool Supported() {
    return !std::is_array_v<T> && SupportedIn<V, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("&");
    DescribeType<V>(d);
  }
  // `weak`: whether the pointer is a weak_ptr.
  static void EncodeShared(const T* p, bool weak, Writer& w) {
    if (p == nullptr) {
      w.Byte(0);
      return;
    }
    uint64_t id;
    const bool seen = w.Memo(p, TagOf<V>(), typeid(V), &id);
    if (!weak) w.shared().StrongRef(id);
    if (seen) {
      w.Varint(id + 2);
      return;
    }
    CheckExactType(*p);
    w.Enter();
    w.Byte(1);
    w.shared().Enter(id);
    EncodeValue(*p, w);
    w.shared().Leave();
    w.Leave();
  }
  static bool DecodeShared(Reader& r, bool weak, std::shared_ptr<T>& out) {
    static_assert(std::is_move_assignable_v<V>,
                  "taskfork::serialize: Decode of std::shared_ptr<T> or "
                  "std::weak_ptr<T> needs a move-assignable T (to reset "
                  "objects of refused input)");
    const size_t at = r.offset();
    uint64_t tag;
    if (!r.Varint(&tag, "shared_ptr tag")) return false;
    if (tag == 0) {
      out.reset();
      return true;
    }
    auto& memo = r.memo();
    if (tag >= 2) {
      const uint64_t id = tag - 2;
      if (ABSL_PREDICT_FALSE(id >= memo.size())) {
        return r.Fail(at, "shared_ptr back-reference to object #" +
                              std::to_string(id) + ", but only " +
                              std::to_string(memo.size()) +
                              " shared objects precede it");
      }
      if (ABSL_PREDICT_FALSE(memo[id].tag != TagOf<V>())) {
        return r.Fail(at, "shared_ptr back-reference to object #" +
                              std::to_string(id) +
                              ", which has a different type");
      }
      if (!weak) r.shared().StrongRef(id);
      out = std::static_pointer_cast<V>(memo[id].object);
      return true;
    }
    if (!r.Enter()) return false;
    std::shared_ptr<V> v;
    if constexpr (std::is_default_constructible_v<V>) {
      v = std::make_shared<V>();
    } else {
      v.reset(Access::New<V>());
    }
    // Registered before its contents decode, so back edges resolve to it.
    const uint64_t id = memo.size();
    memo.push_back({v, TagOf<V>(), at,
                    [](void* p) { *static_cast<V*>(p) = MakeDefault<V>(); }});
    if (!weak) r.shared().StrongRef(id);
    r.shared().Enter(id);
    if (!DecodeValue(r, *v)) return false;
    r.shared().Leave();
    out = std::move(v);
    r.Leave();
    return true;
  }
};

template <typename T>
struct Codec<std::shared_ptr<T>> : SharedCodec<T> {
  static void Encode(const std::shared_ptr<T>& p, Writer& w) {
    SharedCodec<T>::EncodeShared(p.get(), /*weak=*/false, w);
  }
  static bool Decode(Reader& r, std::shared_ptr<T>& p) {
    return SharedCodec<T>::DecodeShared(r, /*weak=*/false, p);
  }
};

// A weak_ptr is written as the object it points to (null if expired); the
// decoded object lives as long as some decoded shared_ptr owns it.
template <typename T>
struct Codec<std::weak_ptr<T>> : SharedCodec<T> {
  static void Encode(const std::weak_ptr<T>& p, Writer& w) {
    const std::shared_ptr<T> locked = p.lock();
    SharedCodec<T>::EncodeShared(locked.get(), /*weak=*/true, w);
  }
  static bool Decode(Reader& r, std::weak_ptr<T>& p) {
    std::shared_ptr<T> s;
    if (!SharedCodec<T>::DecodeShared(r, /*weak=*/true, s)) return false;
    p = s;
    return true;
  }
};

// --- absl time and status ---------------------------------------------------

// absl::Duration: i64 seconds + u32 quarter-nanoseconds in [0, 4e9);
// +/-infinity are (INT64_MAX / INT64_MIN, 0xFFFFFFFF).
template <>
struct Codec<absl::Duration> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 12; }
  static void Describe(Describer& d) { d.Both("dur"); }
  static void Encode(const absl::Duration& v, Writer& w);
  static bool Decode(Reader& r, absl::Duration& v);
};

// absl::Time: the absl::Duration since the Unix epoch.
template <>
struct Codec<absl::Time> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 12; }
  static void Describe(Describer& d) { d.Both("time"); }
  static void Encode(const absl::Time& v, Writer& w) {
    Codec<absl::Duration>::Encode(v - absl::UnixEpoch(), w);
  }
  static bool Decode(Reader& r, absl::Time& v) {
    absl::Duration d;
    if (!Codec<absl::Duration>::Decode(r, d)) return false;
    v = absl::UnixEpoch() + d;
    return true;
  }
};

// absl::Status: varint code, message, varint payload count, (url, bytes)*.
template <>
struct Codec<absl::Status> {
  template <typename Seen>
  static constexpr bool Supported() {
    return true;
  }
  static constexpr size_t MinSize() { return 3; }
  static void Describe(Describer& d) { d.Both("status"); }
  static void Encode(const absl::Status& v, Writer& w);
  static bool Decode(Reader& r, absl::Status& v);
};

// absl::StatusOr<T>: 1 + value, or 0 + a non-OK absl::Status.
template <typename T>
struct Codec<absl::StatusOr<T>> {
  template <typename Seen>
  static constexpr bool Supported() {
    return SupportedIn<T, Seen>();
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("!");
    DescribeType<T>(d);
  }
  static void Encode(const absl::StatusOr<T>& v, Writer& w) {
    w.Enter();
    if (v.ok()) {
      w.Byte(1);
      EncodeValue(*v, w);
    } else {
      w.Byte(0);
      EncodeValue(v.status(), w);
    }
    w.Leave();
  }
  static bool Decode(Reader& r, absl::StatusOr<T>& v) {
    uint8_t tag;
    if (!r.Tag(&tag, 2, "StatusOr tag")) return false;
    if (!r.Enter()) return false;
    if (tag == 1) {
      T value = MakeDefault<T>();
      if (!DecodeValue(r, value)) return false;
      v = std::move(value);
    } else {
      const size_t at = r.offset();
      absl::Status status;
      if (!DecodeValue(r, status)) return false;
      if (status.ok()) return r.Fail(at, "StatusOr holds an OK status without a value");
      v = std::move(status);
    }
    r.Leave();
    return true;
  }
};

// --- user classes -----------------------------------------------------------

template <typename T>
using FieldsTuple =
    decltype(Access::Fields(std::declval<T&>()));  // std::tuple<F&...>

template <typename Tuple>
struct FieldTypes;
template <typename... Fs>
struct FieldTypes<std::tuple<Fs...>> {
  using Decayed = TypeList<std::remove_cv_t<std::remove_reference_t<Fs>>...>;
  static constexpr bool kAllMutable =
      (!std::is_const_v<std::remove_reference_t<Fs>> && ...);
};

template <typename List, typename Seen>
struct AllSupported;
template <typename... Fs, typename... Seen>
struct AllSupported<TypeList<Fs...>, TypeList<Seen...>> {
  static constexpr bool value =
      (SupportedIn<Fs, TypeList<Seen...>>() && ...);
};
template <typename List>
struct FieldsMinSize;
template <typename... Fs>
struct FieldsMinSize<TypeList<Fs...>> {
  static constexpr size_t value = (size_t{0} + ... + MinSizeOf<Fs>());
};
template <typename List>
struct DescribeFields;
template <typename... Fs>
struct DescribeFields<TypeList<Fs...>> {
  static void Run(Describer& d) {
    bool first = true;
    ((d.Both(first ? "" : ","), first = false, DescribeType<Fs>(d)), ...);
  }
};

template <typename Seen, typename T>
struct Append;
template <typename... Ts, typename T>
struct Append<TypeList<Ts...>, T> {
  using type = TypeList<Ts..., T>;
};

template <typename T>
struct Codec<T, std::enable_if_t<std::is_class_v<T> && kHasFields<T>>> {
  using Types = typename FieldTypes<FieldsTuple<T>>::Decayed;
  template <typename Seen>
  static constexpr bool Supported() {
    if constexpr (kRefused<T>) {
      return false;
    } else if constexpr (Contains<T, Seen>::value) {
      return true;  // recursive type: the outer check covers it
    } else {
      return FieldTypes<FieldsTuple<T>>::kAllMutable &&
             AllSupported<Types, typename Append<Seen, T>::type>::value;
    }
  }
  static constexpr size_t MinSize() { return FieldsMinSize<Types>::value; }
  static void Describe(Describer& d) {
    const int index = d.Find(TagOf<T>());
    d.Label(ShortTypeName(typeid(T)));
    if (index >= 0) {  // a recursive reference to an enclosing class
      d.structure().append("^" + std::to_string(index));
      return;
    }
    d.Push(TagOf<T>());
    d.Both("{");
    DescribeFields<Types>::Run(d);
    d.Both("}");
    d.Pop();
  }
  static void Encode(const T& v, Writer& w) {
    static_assert(!kRefused<T>,
                  "taskfork::serialize: this class declares "
                  "TASKFORK_NOT_SERIALIZABLE()");
    static_assert(FieldTypes<FieldsTuple<T>>::kAllMutable,
                  "taskfork::serialize: TASKFORK_SERIALIZE lists a const "
                  "field; Decode could not assign it");
    w.Enter();
    std::apply([&w](const auto&... f) { (EncodeValue(f, w), ...); },
               Access::Fields(v));
    w.Leave();
  }
  static bool Decode(Reader& r, T& v) {
    if (!r.Enter()) return false;
    const bool ok = std::apply(
        [&r](auto&... f) { return (DecodeValue(r, f) && ...); },
        Access::Fields(v));
    if (!ok) return false;
    if constexpr (kHasAfterDecode<T>) {
      absl::Status status = Access::AfterDecode(v);
      if (ABSL_PREDICT_FALSE(!status.ok())) return r.FailWith(std::move(status));
    }
    r.Leave();
    return true;
  }
};

// ---------------------------------------------------------------------------

// An error absl::StatusOr<T>. absl::StatusOr<absl::Status>(status) would hold
// `status` as its value, so that case goes through StatusOr<const Status>.
template <typename T>
absl::StatusOr<T> ErrorOr(absl::Status error) {
  if constexpr (std::is_same_v<T, absl::Status>) {
    return absl::StatusOr<T>(absl::StatusOr<const absl::Status>(std::move(error)));
  } else {
    return error;
  }
}

template <typename T>
const TypeInfo& GetTypeInfo() {
  static const TypeInfo* const info = [] {
    Describer d;
    DescribeType<T>(d);
    auto* info = new TypeInfo;
    FinishTypeInfo(d, info);
    return info;
  }();
  return *info;
}

}  // namespace taskfork::serialize_internal

namespace taskfork::serialize {

// True iff T can be encoded (and decoded, if default-constructible) by this
// library; see the list at the top of this file.
template <typename T>
inline constexpr bool kIsSerializable =
    !std::is_reference_v<T> &&
    serialize_internal::SupportedIn<std::remove_cv_t<T>,
                                    serialize_internal::TypeList<>>();

// Appends the encoding of `value` (header + value, see FORMAT.md) to *out;
// existing contents of *out are kept. Deterministic for a given value
// except for the order of unordered containers. Thread-compatible (reads
// `value`; concurrent calls on different values are fine); allocates, so not
// async-signal-safe. CHECK-fails (aborts with a message) if `value` nests
// deeper than kMaxDepth, a std::variant in it is valueless_by_exception, a
// smart pointer points to a subclass of its static type, or its shared_ptrs
// form a cycle (close cycles with a std::weak_ptr). Fails to compile unless
// kIsSerializable<T>. Decode<T> reads the result.
template <typename T>
void EncodeTo(const T& value, std::string* out) {
  static_assert(kIsSerializable<T>, TASKFORK_SERIALIZE_NOT_SERIALIZABLE_);
  using U = std::remove_cv_t<T>;
  const serialize_internal::TypeInfo& info = serialize_internal::GetTypeInfo<U>();
  serialize_internal::Writer writer(out);
  writer.Bytes(info.header.data(), info.header.size());
  serialize_internal::EncodeValue(value, writer);
  writer.CheckNoStrongCycles();
  writer.Finish();
}

// Returns the encoding of `value`; see EncodeTo.
template <typename T>
std::string Encode(const T& value) {
  std::string out;
  EncodeTo(value, &out);
  return out;
}

// Decodes bytes written by Encode<T> / EncodeTo<T> (one value, nothing
// after it). Errors:
//   kInvalidArgument: not taskfork::serialize bytes (bad magic), an
//     unsupported format version, bytes of a different type (the message
//     names both types), nesting deeper than kMaxDepth, or shared objects
//     whose shared_ptrs form a cycle;
//   kDataLoss: truncated or corrupt bytes (a length beyond the input, a bad
//     tag, a duplicate map key, trailing bytes, ...), with the byte offset;
//   whatever an AfterDecode() hook of a decoded class returns.
// Never crashes on hostile bytes; allocates at most a type-dependent
// constant times bytes.size(); on failure frees everything it built.
// Requires a default-constructible T (the constructor may be private to a
// TASKFORK_SERIALIZE class). Thread-safe; not async-signal-safe. The result
// owns all its memory (no reference into `bytes`).
template <typename T>
absl::StatusOr<T> Decode(absl::string_view bytes) {
  static_assert(kIsSerializable<T>, TASKFORK_SERIALIZE_NOT_SERIALIZABLE_);
  static_assert(!std::is_const_v<T>, "Decode<const T>: drop the const");
  const serialize_internal::TypeInfo& info = serialize_internal::GetTypeInfo<T>();
  serialize_internal::Reader reader(bytes, &info);
  if (!reader.Header()) {
    return serialize_internal::ErrorOr<T>(std::move(reader).status());
  }
  if constexpr (std::is_default_constructible_v<T>) {
    // Decodes in place: no move of the finished value.
    absl::StatusOr<T> result(absl::in_place);
    if (!serialize_internal::DecodeValue(reader, *result) || !reader.Finish()) {
      return serialize_internal::ErrorOr<T>(std::move(reader).status());
    }
    return result;
  } else {
    T value = serialize_internal::MakeDefault<T>();
    if (!serialize_internal::DecodeValue(reader, value) || !reader.Finish()) {
      return serialize_internal::ErrorOr<T>(std::move(reader).status());
    }
    return absl::StatusOr<T>(absl::in_place, std::move(value));
  }
}

// The printable structural type name written in headers, e.g.
// "Hero{str,[i64]}" (for error messages and debugging).
template <typename T>
const std::string& TypeName() {
  return serialize_internal::GetTypeInfo<std::remove_cv_t<T>>().display;
}

}  // namespace taskfork::serialize

#endif  // TASKFORK_SERIALIZE_SERIALIZE_H_
