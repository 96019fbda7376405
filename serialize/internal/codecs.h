// All codecs, and the per-type header (GetTypeInfo) that Encode and
// Decode use.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_CODECS_H_
#define TASKFORK_SERIALIZE_INTERNAL_CODECS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "serialize/internal/absl_codecs.h"
#include "serialize/internal/class_codec.h"
#include "serialize/internal/codec.h"
#include "serialize/internal/container_codecs.h"
#include "serialize/internal/pointer_codecs.h"
#include "serialize/internal/scalar_codecs.h"
#include "serialize/internal/type_info.h"

namespace taskfork::serialize_internal {

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

#endif  // TASKFORK_SERIALIZE_INTERNAL_CODECS_H_
