#include "runner/gtest_sections.h"

#include <string>

#include "absl/strings/str_cat.h"
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

// "ä ö ü ß 🎉" as GoogleTest 1.12 escapes it in JSON: each UTF-8 byte alone.
constexpr char kEscapedUtf8[] =
    R"(\u00C3\u00A4 \u00C3\u00B6 \u00C3\u00BC \u00C3\u009F )"
    R"(\u00F0\u009F\u008E\u0089)";
constexpr char kUtf8[] =
    "\xC3\xA4 \xC3\xB6 \xC3\xBC \xC3\x9F \xF0\x9F\x8E\x89";

TEST(RepairGTestJsonUtf8, EscapedUtf8BytesBecomeTheBytes) {
  EXPECT_EQ(RepairGTestJsonUtf8(absl::StrCat("\"", kEscapedUtf8, "\"")),
            absl::StrCat("\"", kUtf8, "\""));
  // Lower-case hex too.
  EXPECT_EQ(RepairGTestJsonUtf8(R"(\u00c3\u00a4)"), "\xC3\xA4");
}

TEST(RepairGTestJsonUtf8, EscapedBackslashIsNotAnEscape) {
  // \\u00C3\u00A4 is a backslash, then "u00C3", then the escape \u00A4.
  EXPECT_EQ(RepairGTestJsonUtf8(R"(\\u00C3\u00A4)"), R"(\\u00C3\u00A4)");
  EXPECT_EQ(RepairGTestJsonUtf8(R"(\\\u00C3\u00A4)"), "\\\\\xC3\xA4");
  EXPECT_EQ(RepairGTestJsonUtf8(R"(\\\\u00C3\u00A4)"), R"(\\\\u00C3\u00A4)");
}

TEST(RepairGTestJsonUtf8, InvalidSequencesStayEscaped) {
  for (const char* json : {
           R"(caf\u00E9)",                   // Latin-1 é: a lead byte alone
           R"(\u00C3x)",                     // cut: no continuation byte
           R"(\u00C3)",                      // cut at the end
           R"(\u00A4)",                      // a continuation byte alone
           R"(\u00C0\u0080)",               // overlong NUL
           R"(\u00E0\u0080\u0080)",        // overlong
           R"(\u00ED\u00A0\u0080)",        // surrogate U+D800
           R"(\u00F4\u0090\u0080\u0080)",  // above U+10FFFF
           R"(\u00FF)",                      // never in UTF-8
           R"(\u0001 \n \" \/ \u0041)",   // not bytes >= 0x80
           R"(\u00)",                        // cut escape
           "\\",                            // a lone backslash at the end
       }) {
    EXPECT_EQ(RepairGTestJsonUtf8(json), json);
  }
  // A valid sequence next to an invalid byte: only the valid one changes.
  EXPECT_EQ(RepairGTestJsonUtf8(R"(\u00E9\u00C3\u00A4\u00A4)"),
            "\\u00E9\xC3\xA4\\u00A4");
}

TEST(ParseGTestJson, NonAsciiFailureMessageReadsCorrectly) {
  const std::string json = absl::StrCat(
      R"({"name": "AllTests", "testsuites": [{"name": "S", "testsuite": [)",
      R"({"name": "A", "status": "RUN", "failures": [{"failure": "a.cc:1\n)",
      kEscapedUtf8, R"( caf\u00E9 \\u00C3"}]}]}]})");
  auto sections = ParseGTestJson(json, "t.json");
  ASSERT_THAT(sections, IsOk());
  // Latin-1 é stays U+00E9 (UTF-8 C3 A9); the escaped backslash stays one.
  EXPECT_EQ((*sections)[0].reason,
            absl::StrCat("a.cc:1\n", kUtf8, " caf\xC3\xA9 \\u00C3"));
}

TEST(ReadGTestJson, MissingFileNamesIt) {
  EXPECT_THAT(ReadGTestJson("/nonexistent/t1.gtest.json"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("/nonexistent/t1.gtest.json")));
}

}  // namespace
}  // namespace taskfork::runner
