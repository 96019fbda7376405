// Codecs of arithmetic types, bool, enums and std::basic_string.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_SCALAR_CODECS_H_
#define TASKFORK_SERIALIZE_INTERNAL_SCALAR_CODECS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include "serialize/internal/codec.h"

namespace taskfork::serialize_internal {

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_SCALAR_CODECS_H_
