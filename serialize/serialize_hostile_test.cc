// Hostile input: truncated, corrupt and adversarial bytes must give kDataLoss
// or kInvalidArgument with a byte offset, never a crash, a huge allocation or
// unbounded recursion. This binary replaces operator new to record the
// largest single allocation.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <variant>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serialize/serialize.h"

namespace {
std::atomic<size_t> g_largest_allocation{0};
}  // namespace

void* operator new(size_t size) {
  size_t prev = g_largest_allocation.load(std::memory_order_relaxed);
  while (size > prev &&
         !g_largest_allocation.compare_exchange_weak(prev, size)) {
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// Not inlined: GCC 12 does not know these replace the global allocation
// functions, so where it inlines them into a `new T` expression it sees
// free() of the result of operator new and reports -Wmismatched-new-delete
// (a false positive: the operator new above allocates with malloc).
ABSL_ATTRIBUTE_NOINLINE void operator delete(void* p) noexcept { std::free(p); }
ABSL_ATTRIBUTE_NOINLINE void operator delete(void* p, size_t) noexcept {
  std::free(p);
}

namespace taskfork::serialize {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::AnyOf;
using ::testing::HasSubstr;
using namespace std::string_literals;  // NOLINT

struct Record {
  std::string name;
  std::string callsign;
  std::tuple<std::string, std::string, std::string, std::string> also_known_as;
  std::vector<int64_t> values;
  std::map<std::string, double> scores;
  std::optional<std::variant<int32_t, std::string>> extra;
  std::vector<std::shared_ptr<std::string>> shared;
  absl::Duration timeout;
  absl::Status status;
  TASKFORK_SERIALIZE(name, callsign, also_known_as, values, scores, extra,
                     shared, timeout, status);
};

Record MakeRecord() {
  auto s = std::make_shared<std::string>("memo");
  return Record{"tony stark",
                "ironman",
                {"genius", "billionaire", "playboy", "philanthropist"},
                {1, 2, 3, -4},
                {{"a", 1.0}, {"b", 2.0}},
                std::variant<int32_t, std::string>(std::string("x")),
                {s, s, nullptr},
                absl::Seconds(3),
                absl::NotFoundError("nope")};
}

template <typename T>
std::string Header() {
  return serialize_internal::GetTypeInfo<T>().header;
}

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

template <typename T>
std::string WithBody(absl::string_view body) {
  return Header<T>() + std::string(body);
}

auto DataLossAt(size_t offset) {
  return StatusIs(absl::StatusCode::kDataLoss,
                  HasSubstr("at byte offset " + std::to_string(offset)));
}

auto Rejected() {
  return StatusIs(AnyOf(absl::StatusCode::kDataLoss,
                        absl::StatusCode::kInvalidArgument));
}

TEST(HostileHeader, EmptyInput) {
  EXPECT_THAT(Decode<int>(""), DataLossAt(0));
}

TEST(HostileHeader, BadMagic) {
  EXPECT_THAT(Decode<int>("\x80\x03}q\x00(X"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("bad magic"), HasSubstr("offset 0"))));
}

TEST(HostileHeader, TruncatedAfterMagic) {
  EXPECT_THAT(Decode<int>("\x89TF"), DataLossAt(3));
  EXPECT_THAT(Decode<int>("\x89TFS"), DataLossAt(4));
}

TEST(HostileHeader, UnsupportedVersion) {
  std::string bytes = Encode(1);
  bytes[4] = kFormatVersion + 1;
  EXPECT_THAT(Decode<int>(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("format version " +
                                       std::to_string(kFormatVersion + 1)),
                             HasSubstr("offset 4"))));
}

TEST(HostileHeader, Version1IsRefused) {
  // Version 1 wrote ordered containers in ascending order; its bytes are
  // refused rather than read with another order of equal multimap keys.
  using M = std::multimap<int, int>;
  std::string bytes = Encode(M{{1, 1}, {1, 2}});
  bytes[4] = 1;
  EXPECT_THAT(Decode<M>(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("format version 1 is not supported")));
}

TEST(HostileHeader, TruncatedFingerprint) {
  EXPECT_THAT(Decode<int>(Encode(1).substr(0, 9)), DataLossAt(5));
}

TEST(HostileHeader, TypeNameTooLong) {
  std::string bytes = Encode(1).substr(0, 13) + Varint(1 << 20);
  EXPECT_THAT(Decode<int>(bytes), DataLossAt(13));
}

TEST(HostileHeader, TypeMismatchNamesBothTypes) {
  EXPECT_THAT(Decode<std::vector<std::string>>(Encode(MakeRecord())),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("`Record{str,str,"), HasSubstr("`[str]`"),
                             HasSubstr("offset 5"))));
}

TEST(HostileHeader, HostileTypeNameIsEscaped) {
  std::string bytes = Encode(1).substr(0, 5) + std::string(8, '\xff') +
                      Varint(3) + std::string("\x1b[2", 3);
  EXPECT_THAT(Decode<int>(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("`\\x1b[2`")));
}

TEST(HostileBody, EveryTruncationIsDataLoss) {
  const std::string bytes = Encode(MakeRecord());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THAT(Decode<Record>(bytes.substr(0, n)),
                StatusIs(absl::StatusCode::kDataLoss))
        << "prefix of " << n << " bytes";
  }
  EXPECT_THAT(Decode<Record>(bytes), IsOk());
}

TEST(HostileBody, TrailingBytes) {
  const std::string bytes = Encode(int32_t{7});
  EXPECT_THAT(Decode<int32_t>(bytes + "x"),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("1 trailing bytes"),
                             HasSubstr("offset " + std::to_string(bytes.size())))));
}

TEST(HostileBody, StringLength2To60) {
  const std::string h = Header<std::string>();
  EXPECT_THAT(Decode<std::string>(WithBody<std::string>(Varint(1ull << 60) + "abc")),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("1152921504606846976"),
                             HasSubstr("offset " + std::to_string(h.size())))));
}

TEST(HostileBody, VectorCount2To60) {
  EXPECT_THAT(Decode<std::vector<int64_t>>(
                  WithBody<std::vector<int64_t>>(Varint(1ull << 60) + "12345678")),
              DataLossAt(Header<std::vector<int64_t>>().size()));
  EXPECT_THAT(Decode<std::vector<std::string>>(
                  WithBody<std::vector<std::string>>(Varint(1ull << 60) + "\x01x")),
              StatusIs(absl::StatusCode::kDataLoss));
  // Just one element too many for the bytes that remain.
  EXPECT_THAT(Decode<std::vector<int64_t>>(
                  WithBody<std::vector<int64_t>>(Varint(2) + "12345678")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("exceeds the 8 bytes")));
}

TEST(HostileBody, MapCountHuge) {
  using M = std::map<std::string, double>;
  EXPECT_THAT(Decode<M>(WithBody<M>(Varint(~0ull))), DataLossAt(Header<M>().size()));
}

TEST(HostileBody, VarintTooLong) {
  EXPECT_THAT(Decode<std::string>(WithBody<std::string>(std::string(11, '\x80'))),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(HostileBody, VarintOverflows64Bits) {
  EXPECT_THAT(Decode<std::string>(
                  WithBody<std::string>(std::string(9, '\xff') + "\x02")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("overflows 64 bits")));
}

TEST(HostileBody, NonCanonicalVarint) {
  EXPECT_THAT(Decode<std::string>(WithBody<std::string>(std::string("\x81\x00x", 3))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("non-canonical")));
}

TEST(HostileBody, BoolOutOfRange) {
  EXPECT_THAT(Decode<bool>(WithBody<bool>("\x02")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("invalid bool byte 2")));
  EXPECT_THAT(Decode<std::vector<bool>>(WithBody<std::vector<bool>>("\x02\x01\x07")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("invalid bool byte 7")));
}

TEST(HostileBody, OptionalTagOutOfRange) {
  using O = std::optional<int>;
  EXPECT_THAT(Decode<O>(WithBody<O>("\x05")), DataLossAt(Header<O>().size()));
}

TEST(HostileBody, VariantIndexOutOfRange) {
  using V = std::variant<int, std::string>;
  EXPECT_THAT(Decode<V>(WithBody<V>("\x02")),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("variant index 2 out of range")));
}

TEST(HostileBody, DuplicateMapKey) {
  using M = std::map<int32_t, bool>;
  const std::string entry("\x01\x00\x00\x00\x01", 5);
  const std::string h = Header<M>();
  EXPECT_THAT(Decode<M>(WithBody<M>("\x02" + entry + entry)),
              StatusIs(absl::StatusCode::kDataLoss,
                       AllOf(HasSubstr("duplicate map key"),
                             HasSubstr("offset " + std::to_string(h.size() + 6)))));
}

TEST(HostileBody, AnyOrderOfUniqueKeysDecodes) {
  // Encode writes sets and maps in descending order; other orders (written
  // by hand, or hostile) decode to the same container, just slower.
  using M = std::map<int8_t, int8_t>;
  EXPECT_THAT(Decode<M>(WithBody<M>(std::string("\x03\x01\x0a\x03\x1e\x02\x14", 7))),
              IsOkAndHolds(M{{1, 10}, {2, 20}, {3, 30}}));
  using S = std::set<std::string>;
  EXPECT_THAT(Decode<S>(WithBody<S>("\x03\x01" "a" "\x01" "c" "\x01" "b")),
              IsOkAndHolds(S{"a", "b", "c"}));
  EXPECT_THAT(Decode<S>(WithBody<S>("\x03\x01" "a" "\x01" "c" "\x01" "a")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("duplicate set element")));
}

TEST(HostileBody, DuplicateSetElement) {
  using S = std::set<std::string>;
  EXPECT_THAT(Decode<S>(WithBody<S>("\x02\x01x\x01x")),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("duplicate set element")));
}

TEST(HostileBody, SharedPtrBackReferenceToUnknownObject) {
  using V = std::vector<std::shared_ptr<int32_t>>;
  // One new object (#0), then a reference to #5.
  EXPECT_THAT(Decode<V>(WithBody<V>(std::string("\x02\x01\x07\x00\x00\x00\x07", 7))),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("back-reference to object #5, but only 1")));
}

TEST(HostileBody, SharedPtrBackReferenceOfOtherType) {
  using P = std::pair<std::shared_ptr<int32_t>, std::shared_ptr<uint32_t>>;
  EXPECT_THAT(Decode<P>(WithBody<P>(std::string("\x01\x07\x00\x00\x00\x02", 6))),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("different type")));
}

struct Ring {
  std::string name;
  std::shared_ptr<Ring> next;
  std::weak_ptr<Ring> prev;
  TASKFORK_SERIALIZE(name, next, prev);
};

struct Ring2 {
  std::string name;
  std::weak_ptr<Ring2> prev;
  std::shared_ptr<Ring2> next;
  TASKFORK_SERIALIZE(name, prev, next);
};

TEST(HostileBody, StrongCyclesAreRefused) {
  using P = std::shared_ptr<Ring>;
  // Object #0 {name "a", next = back-reference to #0, prev = null}.
  const std::string h = Header<P>();
  EXPECT_THAT(Decode<P>(WithBody<P>("\x01\x01" "a" "\x02\x00"s)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("object #0 lies on a cycle of shared_ptrs"),
                             HasSubstr("offset " + std::to_string(h.size())))));
  // The same back edge as a weak_ptr is fine.
  absl::StatusOr<P> ok = Decode<P>(WithBody<P>("\x01\x01" "a" "\x00\x02"s));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->prev.lock(), *ok);
  // Two objects: #0 {"a", next = #1 {"b", next = #0}}.
  EXPECT_THAT(Decode<P>(WithBody<P>("\x01\x01" "a" "\x01\x01" "b" "\x02\x00\x00"s)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  // #0 {"d", prev = weak #1 {"c", prev null, next = #0}, next = #1}: the
  // cycle's first edge is a weak one, its closing edge a strong one.
  using P2 = std::shared_ptr<Ring2>;
  EXPECT_THAT(Decode<P2>(WithBody<P2>("\x01\x01" "d" "\x01\x01" "c" "\x00\x02" "\x03"s)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("cycle")));
  absl::StatusOr<P2> no_cycle =
      Decode<P2>(WithBody<P2>("\x01\x01" "d" "\x01\x01" "c" "\x00\x02" "\x00"s));
  ASSERT_TRUE(no_cycle.ok()) << no_cycle.status();
}

struct Nest {
  std::unique_ptr<Nest> next;
  TASKFORK_SERIALIZE(next);
};

TEST(HostileBody, NestingBombIsRejected) {
  // 100000 levels claimed with 100000 bytes: rejected at kMaxDepth, with no
  // stack overflow.
  const std::string bytes = WithBody<Nest>(std::string(100000, '\x01'));
  EXPECT_THAT(Decode<Nest>(bytes),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("kMaxDepth")));
  using Deep = std::vector<std::vector<std::vector<std::vector<int>>>>;
  EXPECT_THAT(Decode<Deep>(WithBody<Deep>(std::string(50, '\x01'))), Rejected());
}

TEST(HostileBody, InvalidDuration) {
  using D = absl::Duration;
  EXPECT_THAT(Decode<D>(WithBody<D>(std::string(8, '\0') + "\x00\x28\x6b\xee"s)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("4000000000 quarter-nanoseconds")));
  // The infinity marker with finite seconds.
  EXPECT_THAT(Decode<D>(WithBody<D>(std::string(8, '\0') + std::string(4, '\xff'))),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(HostileBody, InvalidStatus) {
  using S = absl::Status;
  EXPECT_THAT(Decode<S>(WithBody<S>("\x11\x00\x00"s)),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("invalid absl::StatusCode 17")));
  EXPECT_THAT(Decode<S>(WithBody<S>("\x00\x01x\x00"s)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("OK status with")));
  EXPECT_THAT(Decode<S>(WithBody<S>("\x05\x00\x02\x01u\x00\x01u\x00"s)),
              StatusIs(absl::StatusCode::kDataLoss, HasSubstr("duplicate status payload")));
  using SO = absl::StatusOr<int>;
  EXPECT_THAT(Decode<SO>(WithBody<SO>(std::string("\x00\x00\x00\x00", 4))),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("OK status without a value")));
}

TEST(HostileBody, EveryByteFlipIsHandled) {
  const std::string bytes = Encode(MakeRecord());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ (1 << bit));
      absl::StatusOr<Record> r = Decode<Record>(corrupt);
      if (!r.ok()) {
        EXPECT_THAT(r, Rejected()) << "byte " << i << " bit " << bit;
        EXPECT_THAT(r.status().message(), HasSubstr("offset"));
      }
    }
  }
}

TEST(HostileBody, RandomBodiesAreHandledWithBoundedAllocation) {
  std::mt19937_64 rng(12345);
  size_t largest_ratio_case = 0;
  for (int round = 0; round < 3000; ++round) {
    const size_t n = rng() % 64;
    std::string body(n, '\0');
    for (char& c : body) {
      // Bias towards small and high-bit bytes, which are lengths and tags.
      const uint64_t r = rng();
      c = static_cast<char>((r & 3) == 0 ? (r >> 8) % 4 : (r >> 8));
    }
    const std::string bytes = WithBody<Record>(body);
    g_largest_allocation = 0;
    absl::StatusOr<Record> r = Decode<Record>(bytes);
    if (!r.ok()) {
      EXPECT_THAT(r, Rejected());
    }
    largest_ratio_case = std::max(largest_ratio_case, g_largest_allocation.load());
  }
  // No single allocation beyond a small constant (ReserveCap() elements).
  EXPECT_LT(largest_ratio_case, 8192u);
}

TEST(HostileBody, ClaimedLengthsNeverAllocateBeyondTheInput) {
  struct Case {
    std::string name;
    std::function<absl::Status()> decode;
  };
  const std::string huge = Varint(1ull << 60);
  const std::string big = Varint(1ull << 31);
  const std::vector<Case> cases = {
      {"string", [&] { return Decode<std::string>(WithBody<std::string>(huge)).status(); }},
      {"u16string",
       [&] { return Decode<std::u16string>(WithBody<std::u16string>(big + "ab")).status(); }},
      {"vector<u8>",
       [&] {
         return Decode<std::vector<uint8_t>>(WithBody<std::vector<uint8_t>>(big)).status();
       }},
      {"vector<bool>",
       [&] { return Decode<std::vector<bool>>(WithBody<std::vector<bool>>(big)).status(); }},
      {"vector<string>",
       [&] {
         return Decode<std::vector<std::string>>(
                    WithBody<std::vector<std::string>>(big + std::string(100, '\0')))
             .status();
       }},
      {"deque<vector<int>>",
       [&] {
         using T = std::deque<std::vector<int>>;
         return Decode<T>(WithBody<T>(big + std::string(100, '\0'))).status();
       }},
      {"unordered_map",
       [&] {
         using T = std::unordered_map<int64_t, std::string>;
         return Decode<T>(WithBody<T>(big + std::string(100, '\0'))).status();
       }},
      {"Status payloads",
       [&] {
         return Decode<absl::Status>(WithBody<absl::Status>("\x02\x00"s + big)).status();
       }},
  };
  for (const Case& c : cases) {
    g_largest_allocation = 0;
    EXPECT_THAT(c.decode(), StatusIs(absl::StatusCode::kDataLoss)) << c.name;
    EXPECT_LT(g_largest_allocation.load(), 8192u) << c.name;
  }
}

}  // namespace
}  // namespace taskfork::serialize
