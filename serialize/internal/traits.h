// Type traits shared by the codecs: which hooks a class declares (through
// Access), per-type tags and type lists.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_TRAITS_H_
#define TASKFORK_SERIALIZE_INTERNAL_TRAITS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <type_traits>

#include "absl/status/status.h"

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

template <typename... Ts>
struct TypeList {};

template <typename T, typename List>
struct Contains;
template <typename T, typename... Ts>
struct Contains<T, TypeList<Ts...>>
    : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_TRAITS_H_
