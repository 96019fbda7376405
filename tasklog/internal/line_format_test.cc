#include "tasklog/internal/line_format.h"

#include <cstdint>
#include <limits>
#include <string>

#include "gtest/gtest.h"

namespace taskfork::tasklog_internal {
namespace {

std::string Prefix(int64_t seconds, int32_t micros, char severity, pid_t pid,
                   pid_t tid, const char* file, int line) {
  char buffer[kMaxPrefixSize];
  const size_t n =
      FormatPrefix(seconds, micros, severity, pid, tid, file, line, buffer);
  EXPECT_LE(n, kMaxPrefixSize);
  return std::string(buffer, n);
}

TEST(FormatPrefix, MatchesTheDocumentedLayout) {
  EXPECT_EQ(Prefix(1795000000, 42, 'I', 4242, 4243, "main.cc", 12),
            "2026-11-18T11:06:40.000042Z I 4242 4243 main.cc:12] ");
}

TEST(FormatPrefix, EpochLeapDayAndBeforeEpoch) {
  EXPECT_EQ(Prefix(0, 0, 'W', 1, 1, "a.cc", 1),
            "1970-01-01T00:00:00.000000Z W 1 1 a.cc:1] ");
  EXPECT_EQ(Prefix(951782400, 999999, 'E', 7, 8, "b.cc", 0),
            "2000-02-29T00:00:00.999999Z E 7 8 b.cc:0] ");
  EXPECT_EQ(Prefix(-1, 5, 'F', 9, 10, "c.cc", 3),
            "1969-12-31T23:59:59.000005Z F 9 10 c.cc:3] ");
}

TEST(FormatPrefix, ClampsOutOfRangeTimes) {
  EXPECT_EQ(Prefix(std::numeric_limits<int64_t>::max(), 2000000, 'I', 1, 2,
                   "x.cc", 5),
            "9999-12-31T23:59:59.999999Z I 1 2 x.cc:5] ");
  EXPECT_EQ(
      Prefix(std::numeric_limits<int64_t>::min(), -3, 'I', 1, 2, "x.cc", 5),
      "0000-01-01T00:00:00.000000Z I 1 2 x.cc:5] ");
}

TEST(FormatPrefix, MissingAndOverlongFileNames) {
  EXPECT_EQ(Prefix(0, 0, 'I', 1, 2, nullptr, 3),
            "1970-01-01T00:00:00.000000Z I 1 2 -:3] ");
  EXPECT_EQ(Prefix(0, 0, 'I', 1, 2, "", 3),
            "1970-01-01T00:00:00.000000Z I 1 2 -:3] ");
  const std::string long_name = std::string(300, 'a') + "tail.cc";
  const std::string prefix = Prefix(0, 0, 'I', 1, 2, long_name.c_str(), 3);
  EXPECT_EQ(prefix,
            "1970-01-01T00:00:00.000000Z I 1 2 " +
                long_name.substr(long_name.size() - kMaxFileNameInPrefix) +
                ":3] ");
}

TEST(FormatPrefix, LargestFieldsFitTheBuffer) {
  const std::string long_name(kMaxFileNameInPrefix, 'f');
  const std::string prefix =
      Prefix(-62167219200 - 1, -1, '?', std::numeric_limits<pid_t>::min(),
             std::numeric_limits<pid_t>::min(), long_name.c_str(),
             std::numeric_limits<int>::min());
  EXPECT_LT(prefix.size(), kMaxPrefixSize);
  EXPECT_EQ(prefix.substr(0, 30), "0000-01-01T00:00:00.000000Z ? ");
}

TEST(SeverityLetter, GlogSeverities) {
  EXPECT_EQ(SeverityLetter(0), 'I');
  EXPECT_EQ(SeverityLetter(1), 'W');
  EXPECT_EQ(SeverityLetter(2), 'E');
  EXPECT_EQ(SeverityLetter(3), 'F');
  EXPECT_EQ(SeverityLetter(4), '?');
  EXPECT_EQ(SeverityLetter(-1), '?');
}

TEST(FormatInt, Extremes) {
  char buffer[24];
  EXPECT_EQ(std::string(buffer, FormatInt(0, buffer)), "0");
  EXPECT_EQ(std::string(buffer, FormatInt(-7, buffer)), "-7");
  EXPECT_EQ(std::string(buffer,
                        FormatInt(std::numeric_limits<int64_t>::min(), buffer)),
            "-9223372036854775808");
  EXPECT_EQ(std::string(buffer,
                        FormatInt(std::numeric_limits<int64_t>::max(), buffer)),
            "9223372036854775807");
}

}  // namespace
}  // namespace taskfork::tasklog_internal
