// The Codec<T> template every codec specialises, its fallback that refuses
// unsupported types at compile time, and the dispatch helpers.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_CODEC_H_
#define TASKFORK_SERIALIZE_INTERNAL_CODEC_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <type_traits>

#include "absl/base/attributes.h"

#include "serialize/internal/reader.h"
#include "serialize/internal/traits.h"
#include "serialize/internal/type_info.h"
#include "serialize/internal/writer.h"

namespace taskfork::serialize_internal {

// Codecs. Each Codec<T> has:
//   template <typename Seen> static constexpr bool Supported();
//       whether T can be encoded; Seen lists the classes being checked
//       (recursive types are supported co-inductively).
//   static constexpr size_t MinSize();   fewest bytes an encoding takes
//   static void Describe(Describer&);    structural description
//   static void Encode(const T&, Writer&);
//   static bool Decode(Reader&, T&);     false after recording an error

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_CODEC_H_
