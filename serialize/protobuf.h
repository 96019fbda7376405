// Protocol Buffers support for taskfork::serialize: include this header (and
// depend on //serialize:protobuf) to make every generated message type
// serializable, by its own wire format, alone or nested in anything.
//
//   #include "serialize/protobuf.h"
//   std::string bytes = taskfork::serialize::Encode(std::vector<MyProto>{m1, m2});
//   auto back = taskfork::serialize::Decode<std::vector<MyProto>>(bytes);
//
// Kept apart from serialize.h so that users of //serialize who do not use
// protobuf do not link it. Include it in every translation unit that encodes
// or decodes a type containing a message (without it, kIsSerializable of such
// a type is false and Encode fails to compile, pointing here).
//
// Wire form (FORMAT.md): varint byte length, then the message's own
// serialization. The structural fingerprint includes the message's full name
// ("pb:package.Message"), not its fields: compatibility across message
// versions follows protobuf's own rules. A message that fails to parse gives
// kDataLoss with the offset; protobuf's parser bounds its own recursion.
// Encoding a message larger than 2 GiB CHECK-fails (protobuf's own limit).
#ifndef TASKFORK_SERIALIZE_PROTOBUF_H_
#define TASKFORK_SERIALIZE_PROTOBUF_H_

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include "google/protobuf/message_lite.h"
#include "serialize/serialize.h"

namespace taskfork::serialize_internal {

template <typename T>
struct Codec<T, std::enable_if_t<std::is_base_of_v<google::protobuf::MessageLite, T> &&
                                 !std::is_same_v<google::protobuf::MessageLite, T>>> {
  template <typename Seen>
  static constexpr bool Supported() {
    return !std::is_abstract_v<T>;
  }
  static constexpr size_t MinSize() { return 1; }
  static void Describe(Describer& d) {
    d.Both("pb:");
    d.Both(T::default_instance().GetTypeName());
  }
  static void Encode(const T& v, Writer& w) {
    const size_t n = v.ByteSizeLong();
    if (n > static_cast<size_t>(std::numeric_limits<int>::max())) {
      EncodeFatal("serialize::Encode: protobuf message " + v.GetTypeName() +
                  " is larger than 2 GiB");
    }
    w.Varint(n);
    char* p = w.Extend(n);
    v.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(p));
  }
  static bool Decode(Reader& r, T& v) {
    const size_t at = r.offset();
    uint64_t n;
    if (!r.Count(&n, 1, "protobuf message length")) return false;
    if (n > static_cast<uint64_t>(std::numeric_limits<int>::max()) ||
        !v.ParseFromArray(r.pos(), static_cast<int>(n))) {
      return r.Fail(at, "protobuf message " + v.GetTypeName() + " of " +
                            std::to_string(n) + " bytes does not parse");
    }
    r.Skip(n);
    return true;
  }
};

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_PROTOBUF_H_
