#include "serialize/serialize.h"

#include <cmath>
#include <cstdint>
#include <deque>
#include <limits>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::serialize {
namespace {

using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

template <typename T>
absl::StatusOr<T> RoundTrip(const T& value) {
  return Decode<T>(Encode(value));
}

#define EXPECT_ROUND_TRIP(...)                                  \
  do {                                                          \
    const auto v_ = (__VA_ARGS__);                              \
    EXPECT_THAT(RoundTrip(v_), IsOkAndHolds(v_)) << #__VA_ARGS__; \
  } while (false)

enum class Color : uint8_t { kRed = 1, kBlue = 200 };
enum Plain { kPlainA = -5, kPlainB = 70000 };

TEST(SerializeScalars, RoundTrip) {
  EXPECT_ROUND_TRIP(true);
  EXPECT_ROUND_TRIP(false);
  EXPECT_ROUND_TRIP('x');
  EXPECT_ROUND_TRIP(static_cast<signed char>(-3));
  EXPECT_ROUND_TRIP(static_cast<unsigned char>(250));
  EXPECT_ROUND_TRIP(static_cast<int16_t>(-30000));
  EXPECT_ROUND_TRIP(static_cast<uint16_t>(65000));
  EXPECT_ROUND_TRIP(std::numeric_limits<int32_t>::min());
  EXPECT_ROUND_TRIP(std::numeric_limits<uint32_t>::max());
  EXPECT_ROUND_TRIP(std::numeric_limits<int64_t>::min());
  EXPECT_ROUND_TRIP(std::numeric_limits<uint64_t>::max());
  EXPECT_ROUND_TRIP(42L);
  EXPECT_ROUND_TRIP(42ULL);
  EXPECT_ROUND_TRIP(u'\u20ac');
  EXPECT_ROUND_TRIP(U'\U0001F600');
  EXPECT_ROUND_TRIP(L'w');
  EXPECT_ROUND_TRIP(1.5f);
  EXPECT_ROUND_TRIP(-2.25);
  EXPECT_ROUND_TRIP(std::numeric_limits<double>::infinity());
  EXPECT_ROUND_TRIP(std::numeric_limits<double>::denorm_min());
  EXPECT_ROUND_TRIP(3.25L);
  EXPECT_ROUND_TRIP(std::numeric_limits<long double>::max());
  EXPECT_ROUND_TRIP(Color::kBlue);
  EXPECT_ROUND_TRIP(kPlainB);
  EXPECT_ROUND_TRIP(kPlainA);
}

TEST(SerializeScalars, NanKeepsItsBits) {
  const double nan = std::nan("0x1234");
  absl::StatusOr<double> decoded = RoundTrip(nan);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(std::memcmp(&nan, &*decoded, sizeof(double)), 0);
}

TEST(SerializeScalars, NegativeZero) {
  absl::StatusOr<double> decoded = RoundTrip(-0.0);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(std::signbit(*decoded));
}

TEST(SerializeStrings, RoundTrip) {
  EXPECT_ROUND_TRIP(std::string());
  EXPECT_ROUND_TRIP(std::string("tony stark"));
  EXPECT_ROUND_TRIP(std::string("nul\0inside", 10));
  EXPECT_ROUND_TRIP(std::string(100000, 'z'));
  EXPECT_ROUND_TRIP(std::u16string(u"h\u00e9llo"));
  EXPECT_ROUND_TRIP(std::u32string(U"\U0001F600"));
  EXPECT_ROUND_TRIP(std::wstring(L"wide"));
}

TEST(SerializeContainers, RoundTrip) {
  EXPECT_ROUND_TRIP(std::vector<int>());
  EXPECT_ROUND_TRIP(std::vector<int64_t>{1, -2, 3});
  EXPECT_ROUND_TRIP(std::vector<uint8_t>{0, 255, 7});
  EXPECT_ROUND_TRIP(std::vector<bool>{true, false, true});
  EXPECT_ROUND_TRIP(std::vector<std::string>{"a", "", "ccc"});
  EXPECT_ROUND_TRIP(std::vector<std::vector<double>>{{1.0}, {}, {2.0, 3.0}});
  EXPECT_ROUND_TRIP((std::array<int, 3>{4, 5, 6}));
  EXPECT_ROUND_TRIP((std::array<std::string, 2>{"x", "y"}));
  EXPECT_ROUND_TRIP((std::array<int, 0>{}));
  EXPECT_ROUND_TRIP(std::deque<int>{1, 2, 3});
  EXPECT_ROUND_TRIP(std::list<std::string>{"l", "m"});
  EXPECT_ROUND_TRIP((std::map<std::string, double>{{"a", 1.0}, {"b", 2.0}}));
  EXPECT_ROUND_TRIP((std::unordered_map<int, std::string>{{1, "one"}, {2, "two"}}));
  EXPECT_ROUND_TRIP(std::set<std::string>{"p", "q"});
  EXPECT_ROUND_TRIP(std::unordered_set<int64_t>{10, 20, 30});
  EXPECT_ROUND_TRIP((std::multimap<int, int>{{1, 1}, {1, 2}, {0, 3}}));
  EXPECT_ROUND_TRIP((std::multiset<int>{5, 5, 5}));
  EXPECT_ROUND_TRIP((std::map<int, std::vector<std::set<int>>>{{1, {{1, 2}, {}}}}));
}

TEST(SerializeProducts, RoundTrip) {
  EXPECT_ROUND_TRIP(std::make_pair(1, std::string("one")));
  EXPECT_ROUND_TRIP(std::make_tuple(std::string("genius"), std::string("billionaire"),
                                    std::string("playboy"), std::string("philanthropist")));
  EXPECT_ROUND_TRIP(std::tuple<>());
  EXPECT_ROUND_TRIP(std::make_tuple(1, 2.5, true, std::vector<int>{1}));
  EXPECT_ROUND_TRIP(std::optional<int>());
  EXPECT_ROUND_TRIP(std::optional<int>(7));
  EXPECT_ROUND_TRIP(std::optional<std::string>("x"));
  EXPECT_ROUND_TRIP(absl::optional<int>(9));
  EXPECT_ROUND_TRIP(absl::optional<int>());
  EXPECT_ROUND_TRIP((std::variant<int, std::string>(std::string("s"))));
  EXPECT_ROUND_TRIP((std::variant<int, std::string>(3)));
  EXPECT_ROUND_TRIP((std::variant<std::monostate, double>()));
}

TEST(SerializeAbsl, TimeAndDuration) {
  EXPECT_ROUND_TRIP(absl::ZeroDuration());
  EXPECT_ROUND_TRIP(absl::Nanoseconds(1) / 4);
  EXPECT_ROUND_TRIP(absl::Seconds(-1) - absl::Nanoseconds(1) / 4);
  EXPECT_ROUND_TRIP(absl::Hours(-100000) + absl::Nanoseconds(3));
  EXPECT_ROUND_TRIP(absl::InfiniteDuration());
  EXPECT_ROUND_TRIP(-absl::InfiniteDuration());
  EXPECT_ROUND_TRIP(absl::Seconds(std::numeric_limits<int64_t>::max()) +
                    (absl::Seconds(1) - absl::Nanoseconds(1) / 4));
  EXPECT_ROUND_TRIP(absl::Seconds(std::numeric_limits<int64_t>::min()));
  EXPECT_ROUND_TRIP(absl::FromUnixNanos(1700000000123456789));
  EXPECT_ROUND_TRIP(absl::UnixEpoch());
  EXPECT_ROUND_TRIP(absl::InfiniteFuture());
  EXPECT_ROUND_TRIP(absl::InfinitePast());
  EXPECT_ROUND_TRIP(absl::FromUnixSeconds(-5000000000));
}

TEST(SerializeAbsl, Status) {
  EXPECT_ROUND_TRIP(absl::OkStatus());
  EXPECT_ROUND_TRIP(absl::NotFoundError("task t1"));
  absl::Status with_payload = absl::DataLossError("frame");
  with_payload.SetPayload("type.googleapis.com/x", absl::Cord("payload\0bytes"));
  with_payload.SetPayload("type.googleapis.com/y", absl::Cord(""));
  absl::StatusOr<absl::Status> decoded = RoundTrip(with_payload);
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, with_payload);
  EXPECT_EQ(decoded->GetPayload("type.googleapis.com/x"), absl::Cord("payload\0bytes"));
}

TEST(SerializeAbsl, StatusOr) {
  const absl::StatusOr<std::string> ok = std::string("result");
  const absl::StatusOr<std::string> error = absl::UnavailableError("gone");
  EXPECT_THAT(RoundTrip(ok), IsOkAndHolds(ok));
  EXPECT_THAT(RoundTrip(error), IsOkAndHolds(error));
}

struct Hero {
  std::string name;
  std::string callsign;
  std::tuple<std::string, std::string, std::string, std::string> also_known_as;
  std::vector<int64_t> values;
  std::map<std::string, double> scores;
  TASKFORK_SERIALIZE(name, callsign, also_known_as, values, scores);
  friend bool operator==(const Hero& a, const Hero& b) {
    return std::tie(a.name, a.callsign, a.also_known_as, a.values, a.scores) ==
           std::tie(b.name, b.callsign, b.also_known_as, b.values, b.scores);
  }
};

TEST(SerializeUserTypes, Struct) {
  Hero hero{"tony stark",
            "ironman",
            {"genius", "billionaire", "playboy", "philanthropist"},
            {1, 2, 3},
            {{"strength", 0.5}}};
  EXPECT_ROUND_TRIP(hero);
  EXPECT_ROUND_TRIP(std::vector<Hero>{hero, hero});
  EXPECT_ROUND_TRIP((std::map<std::string, Hero>{{"tony", hero}}));
}

TEST(SerializeContract, EncodeToAppends) {
  std::string out = "prefix";
  EncodeTo(int32_t{5}, &out);
  EXPECT_EQ(out.substr(0, 6), "prefix");
  EXPECT_THAT(Decode<int32_t>(absl::string_view(out).substr(6)), IsOkAndHolds(5));
  EXPECT_EQ(out.substr(6), Encode(int32_t{5}));
}

TEST(SerializeContract, KIsSerializable) {
  static_assert(kIsSerializable<int>);
  static_assert(kIsSerializable<Hero>);
  static_assert(kIsSerializable<const Hero>);
  static_assert(!kIsSerializable<int*>);
  static_assert(!kIsSerializable<int&>);
  static_assert(!kIsSerializable<absl::string_view>);
  static_assert(!kIsSerializable<std::vector<std::tuple<>>>);
  static_assert(!kIsSerializable<std::vector<int*>>);
}

TEST(SerializeErrors, WrongTypeNamesBoth) {
  EXPECT_THAT(Decode<std::string>(Encode(int32_t{1})),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("`i32`"), HasSubstr("`str`"))));
}

}  // namespace
}  // namespace taskfork::serialize
