#include "reporter/address.h"

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ParseReporterAddressTest, PlainPathAndUnixScheme) {
  auto plain = ParseReporterAddress("/run/job/reporter.sock");
  ASSERT_THAT(plain, IsOk());
  EXPECT_EQ(plain->kind, ReporterAddress::Kind::kUnix);
  EXPECT_EQ(plain->path, "/run/job/reporter.sock");
  auto relative = ParseReporterAddress("run/a:b.sock");
  ASSERT_THAT(relative, IsOk());
  EXPECT_EQ(relative->path, "run/a:b.sock");
  auto unix = ParseReporterAddress("unix:/run/job/reporter.sock");
  ASSERT_THAT(unix, IsOk());
  EXPECT_EQ(unix->kind, ReporterAddress::Kind::kUnix);
  EXPECT_EQ(unix->path, "/run/job/reporter.sock");
  EXPECT_EQ(unix->ToString(), "unix:/run/job/reporter.sock");
}

TEST(ParseReporterAddressTest, TcpHostPortAndBracketedIpv6) {
  auto tcp = ParseReporterAddress("tcp:node7.example:4242");
  ASSERT_THAT(tcp, IsOk());
  EXPECT_EQ(tcp->kind, ReporterAddress::Kind::kTcp);
  EXPECT_EQ(tcp->host, "node7.example");
  EXPECT_EQ(tcp->port, 4242);
  EXPECT_EQ(tcp->ToString(), "tcp:node7.example:4242");
  auto v6 = ParseReporterAddress("tcp:[::1]:65535");
  ASSERT_THAT(v6, IsOk());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 65535);
  EXPECT_EQ(v6->ToString(), "tcp:[::1]:65535");
}

TEST(ParseReporterAddressTest, MalformedAddressesNameThemselvesAndTheFault) {
  const struct {
    const char* address;
    const char* why;
  } cases[] = {
      {"", "empty"},
      {"unix:", "empty socket path"},
      {"tcp:", "no :PORT"},
      {"tcp:host", "no :PORT"},
      {"tcp::4242", "empty host"},
      {"tcp:host:", "port \"\" is not 1-65535"},
      {"tcp:host:0", "port \"0\" is not 1-65535"},
      {"tcp:host:65536", "port \"65536\""},
      {"tcp:host:42x", "port \"42x\""},
      {"tcp:host:-1", "port \"-1\""},
      {"tcp:::1:80", "IPv6 host must be in brackets"},
      {"tcp:[::1:80", "'[' without ']'"},
      {"tcp:[::1]80", "no :PORT after the bracketed host"},
      {"tcp:[]:80", "empty host"},
      {"udp:host:53", "unknown scheme \"udp:\""},
  };
  for (const auto& c : cases) {
    EXPECT_THAT(ParseReporterAddress(c.address),
                StatusIs(absl::StatusCode::kInvalidArgument,
                         ::testing::AllOf(
                             HasSubstr(absl::StrCat("\"", c.address, "\"")),
                             HasSubstr(c.why))))
        << c.address;
  }
}

TEST(ParseListenAddressTest, AcceptsPortZeroAndNamesBadInput) {
  auto any = ParseListenAddress("0.0.0.0:0");
  ASSERT_THAT(any, IsOk());
  EXPECT_EQ(any->host, "0.0.0.0");
  EXPECT_EQ(any->port, 0);
  auto v6 = ParseListenAddress("[::]:4242");
  ASSERT_THAT(v6, IsOk());
  EXPECT_EQ(v6->host, "::");
  EXPECT_EQ(v6->port, 4242);
  EXPECT_THAT(ParseListenAddress(""),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(ParseListenAddress("0.0.0.0"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("listen address \"0.0.0.0\": no :PORT")));
  EXPECT_THAT(ParseListenAddress("localhost:99999"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("port \"99999\" is not 0-65535")));
}

}  // namespace
}  // namespace taskfork::reporter
