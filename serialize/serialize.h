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

#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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

// The codecs (Writer, Reader, Codec<T> for every supported type, TypeInfo):
// templates, so visible here, but internal to this package.
#include "serialize/internal/codecs.h"  // IWYU pragma: export

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
