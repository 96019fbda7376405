// Codecs of absl::Duration, absl::Time, absl::Status and absl::StatusOr.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_ABSL_CODECS_H_
#define TASKFORK_SERIALIZE_INTERNAL_ABSL_CODECS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

#include "serialize/internal/codec.h"
#include "serialize/internal/scalar_codecs.h"

namespace taskfork::serialize_internal {

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_ABSL_CODECS_H_
