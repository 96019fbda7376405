// Codecs of std::unique_ptr, std::shared_ptr and std::weak_ptr (the
// shared-object memo).
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_POINTER_CODECS_H_
#define TASKFORK_SERIALIZE_INTERNAL_POINTER_CODECS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <cstdint>
#include <memory>
#include <typeinfo>
#include <utility>

#include "serialize/internal/codec.h"

namespace taskfork::serialize_internal {

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_POINTER_CODECS_H_
