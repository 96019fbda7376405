#include "runner/gtest_sections.h"

#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::reporter::Result;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

// What GoogleTest 1.12.1 wrote for four tests: a failure, a GTEST_SKIP, a
// DISABLED_ test and a pass (trimmed of timestamps only).
constexpr char kOutput[] = R"json({
  "tests": 4, "failures": 1, "disabled": 1, "errors": 0, "time": "0s",
  "name": "AllTests",
  "testsuites": [
    {"name": "S", "tests": 3, "failures": 1, "disabled": 1, "errors": 0,
     "time": "0s",
     "testsuite": [
       {"name": "A", "file": "gt.cc", "line": 2, "status": "RUN",
        "result": "COMPLETED", "time": "0.25s", "classname": "S",
        "failures": [
          {"failure": "gt.cc:2\nExpected equality of these values:\n  1\n  2\nboom", "type": ""},
          {"failure": "second", "type": ""}]},
       {"name": "B", "file": "gt.cc", "line": 3, "status": "RUN",
        "result": "SKIPPED", "time": "0s", "classname": "S"},
       {"name": "DISABLED_C", "file": "gt.cc", "line": 4, "status": "NOTRUN",
        "result": "SUPPRESSED", "time": "0s", "classname": "S"}]},
    {"name": "T", "tests": 1, "failures": 0, "disabled": 0, "errors": 0,
     "time": "0s",
     "testsuite": [
       {"name": "D", "file": "gt.cc", "line": 5, "status": "RUN",
        "result": "COMPLETED", "time": "0.001s", "classname": "T"}]}]
})json";

TEST(ParseGTestJson, OneSectionPerTest) {
  auto sections = ParseGTestJson(kOutput, "t.json");
  ASSERT_THAT(sections, IsOk());
  ASSERT_EQ(sections->size(), 4u);
  const GTestSection& a = (*sections)[0];
  EXPECT_EQ(a.name, "S.A");
  EXPECT_EQ(a.result, Result::kFailed);
  EXPECT_EQ(a.reason,
            "gt.cc:2\nExpected equality of these values:\n  1\n  2\nboom "
            "(and 1 more failures)");
  EXPECT_EQ(a.time, absl::Milliseconds(250));
  EXPECT_EQ(a.file, "gt.cc");
  EXPECT_EQ(a.line, 2);
  EXPECT_EQ((*sections)[1].result, Result::kSkipped);
  EXPECT_EQ((*sections)[1].reason, "skipped by GTEST_SKIP");
  EXPECT_EQ((*sections)[2].name, "S.DISABLED_C");
  EXPECT_EQ((*sections)[2].result, Result::kSkipped);
  EXPECT_EQ((*sections)[2].reason, "disabled");
  EXPECT_EQ((*sections)[3].name, "T.D");
  EXPECT_EQ((*sections)[3].result, Result::kPassed);
  EXPECT_EQ((*sections)[3].reason, "");
}

TEST(ParseGTestJson, LongFailureIsCut) {
  const std::string json =
      R"({"name": "AllTests", "testsuites": [{"name": "S", "testsuite": [)"
      R"({"name": "A", "status": "RUN", "failures": [{"failure": ")" +
      std::string(5000, 'x') + R"("}]}]}]})";
  auto sections = ParseGTestJson(json, "t.json");
  ASSERT_THAT(sections, IsOk());
  EXPECT_EQ((*sections)[0].reason.size(), 2003u);
}

TEST(ParseGTestJson, GarbageIsDataLossNamingTheFile) {
  EXPECT_THAT(ParseGTestJson("{not json", "/r/t1.gtest.json"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("/r/t1.gtest.json: not GoogleTest JSON")));
  EXPECT_THAT(ParseGTestJson("{}", "/r/t1.gtest.json"),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("no \"testsuites\"")));
  EXPECT_THAT(ParseGTestJson(R"({"testsuites": 3})", "x"),
              StatusIs(absl::StatusCode::kDataLoss));
}

TEST(ReadGTestJson, MissingFileNamesIt) {
  EXPECT_THAT(ReadGTestJson("/nonexistent/t1.gtest.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/t1.gtest.json")));
}

}  // namespace
}  // namespace taskfork::runner
