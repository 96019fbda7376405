// Codecs of sequences, sets, maps, std::pair, std::tuple, optionals and
// std::variant.
//
// Internal to //serialize: included by serialize/serialize.h (after it
// declares taskfork::serialize::Access), never directly.

#ifndef TASKFORK_SERIALIZE_INTERNAL_CONTAINER_CODECS_H_
#define TASKFORK_SERIALIZE_INTERNAL_CONTAINER_CODECS_H_

#ifndef TASKFORK_SERIALIZE_SERIALIZE_H_
#error "serialize/internal/ headers are internal: include serialize/serialize.h"
#endif

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "absl/types/optional.h"
#include "absl/utility/utility.h"

#include "serialize/internal/codec.h"
#include "serialize/internal/scalar_codecs.h"

namespace taskfork::serialize_internal {

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

}  // namespace taskfork::serialize_internal

#endif  // TASKFORK_SERIALIZE_INTERNAL_CONTAINER_CODECS_H_
