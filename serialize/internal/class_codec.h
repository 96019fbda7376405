// The codec of user classes that declare TASKFORK_SERIALIZE(fields...).
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_CLASS_CODEC_H_
#define TASKFORK_SERIALIZE_INTERNAL_CLASS_CODEC_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"

#include "serialize/internal/codec.h"

namespace taskfork::serialize_internal {

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_CLASS_CODEC_H_
