#include "runner/gtest_stream.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/result.h"

namespace taskfork::runner {
namespace {

using ::taskfork::reporter::Result;
using ::testing::HasSubstr;

// What GoogleTest 1.12.1 streamed for //runner:gtest_stream_test_helper
// --mode=utf8 (Order.Fourth fails with a non-ASCII message).
constexpr char kRecordedUtf8[] =
    "gtest_streaming_protocol_version=1.0\n"
    "event=TestProgramStart\n"
    "event=TestIterationStart&iteration=0\n"
    "event=TestCaseStart&name=Order\n"
    "event=TestStart&name=First\n"
    "event=TestEnd&passed=1&elapsed_time=0ms\n"
    "event=TestStart&name=Second\n"
    "event=TestEnd&passed=1&elapsed_time=0ms\n"
    "event=TestStart&name=Third\n"
    "event=TestEnd&passed=1&elapsed_time=12ms\n"
    "event=TestStart&name=Fourth\n"
    "event=TestPartResult&file=runner/gtest_stream_test_helper.cc&line=66&"
    "message=Failed%0AGr\xC3\xBC\xC3\x9F" "e: \xC3\xA4 \xC3\xB6 \xC3\xBC "
    "\xC3\x9F, party \xF0\x9F\x8E\x89\n"
    "event=TestEnd&passed=0&elapsed_time=0ms\n"
    "event=TestCaseEnd&passed=0&elapsed_time=0ms\n"
    "event=TestIterationEnd&passed=0&elapsed_time=0ms\n"
    "event=TestProgramEnd&passed=0\n";

// What it streamed with --mode=crash before SIGSEGV ended it.
constexpr char kRecordedCrash[] =
    "gtest_streaming_protocol_version=1.0\n"
    "event=TestProgramStart\n"
    "event=TestIterationStart&iteration=0\n"
    "event=TestCaseStart&name=Order\n"
    "event=TestStart&name=First\n"
    "event=TestEnd&passed=1&elapsed_time=0ms\n"
    "event=TestStart&name=Second\n"
    "event=TestEnd&passed=1&elapsed_time=0ms\n"
    "event=TestStart&name=Third\n";

TEST(GTestStream, RecordedRunGivesOneSectionPerTest) {
  GTestStream stream;
  stream.Append(kRecordedUtf8);
  EXPECT_TRUE(stream.started());
  EXPECT_TRUE(stream.program_ended());
  EXPECT_EQ(stream.running(), "");
  EXPECT_EQ(stream.malformed_lines(), 0);
  ASSERT_EQ(stream.finished().size(), 4u);
  EXPECT_EQ(stream.finished()[0].name, "Order.First");
  EXPECT_EQ(stream.finished()[0].result, Result::kPassed);
  EXPECT_EQ(stream.finished()[2].name, "Order.Third");
  EXPECT_EQ(stream.finished()[2].time, absl::Milliseconds(12));
  const GTestSection& fourth = stream.finished()[3];
  EXPECT_EQ(fourth.name, "Order.Fourth");
  EXPECT_EQ(fourth.result, Result::kFailed);
  // As GoogleTest's JSON has it: "file:line\nmessage", bytes unchanged.
  EXPECT_EQ(fourth.reason,
            "runner/gtest_stream_test_helper.cc:66\nFailed\nGr\xC3\xBC\xC3\x9F"
            "e: \xC3\xA4 \xC3\xB6 \xC3\xBC \xC3\x9F, party \xF0\x9F\x8E\x89");
}

TEST(GTestStream, AnySplitOfTheBytesParsesTheSame) {
  const std::string all = kRecordedUtf8;
  GTestStream whole;
  whole.Append(all);
  for (size_t step : {1u, 2u, 7u, 64u}) {
    GTestStream stream;
    for (size_t i = 0; i < all.size(); i += step) {
      stream.Append(absl::string_view(all).substr(i, step));
    }
    ASSERT_EQ(stream.finished().size(), 4u) << "step " << step;
    EXPECT_EQ(stream.finished()[3].reason, whole.finished()[3].reason)
        << "step " << step;
    EXPECT_EQ(stream.malformed_lines(), 0);
  }
}

TEST(GTestStream, CrashLeavesTheRunningTestNamed) {
  GTestStream stream;
  stream.Append(kRecordedCrash);
  EXPECT_FALSE(stream.program_ended());
  EXPECT_EQ(stream.running(), "Order.Third");
  const std::vector<GTestSection> sections =
      stream.Sections(Result::kErrored, "killed by SIGSEGV while running");
  ASSERT_EQ(sections.size(), 3u);
  EXPECT_EQ(sections[0].result, Result::kPassed);
  EXPECT_EQ(sections[1].result, Result::kPassed);
  EXPECT_EQ(sections[2].name, "Order.Third");
  EXPECT_EQ(sections[2].result, Result::kErrored);
  EXPECT_EQ(sections[2].reason, "killed by SIGSEGV while running");
}

TEST(GTestStream, RunningTestKeepsItsEarlierFailure) {
  GTestStream stream;
  stream.Append(
      "event=TestCaseStart&name=S\nevent=TestStart&name=T\n"
      "event=TestPartResult&file=a.cc&line=3&message=x%3D1 %26 y%25\n");
  const std::vector<GTestSection> sections =
      stream.Sections(Result::kAborted, "was running");
  ASSERT_EQ(sections.size(), 1u);
  EXPECT_EQ(sections[0].reason,
            "was running; it had failed before: a.cc:3\nx=1 & y%");
}

TEST(GTestStream, FailureCountsAndLocations) {
  GTestStream stream;
  stream.Append(
      "event=TestCaseStart&name=S\n"
      "event=TestStart&name=Two\n"
      "event=TestPartResult&file=&line=-1&message=first\n"
      "event=TestPartResult&file=b.cc&line=9&message=second\n"
      "event=TestEnd&passed=0&elapsed_time=3ms\n"
      "event=TestStart&name=NoLine\n"
      "event=TestPartResult&file=c.cc&line=-1&message=m\n"
      "event=TestEnd&passed=0&elapsed_time=0ms\n"
      // GTEST_SKIP: a part result and passed=0, as a failure.
      "event=TestStart&name=Skipped\n"
      "event=TestPartResult&file=d.cc&line=4&message=not today\n"
      "event=TestEnd&passed=0&elapsed_time=0ms\n"
      "event=TestStart&name=Silent\n"
      "event=TestEnd&passed=0&elapsed_time=0ms\n");
  ASSERT_EQ(stream.finished().size(), 4u);
  EXPECT_EQ(stream.finished()[0].reason,
            "unknown file\nfirst (and 1 more failures)");
  EXPECT_EQ(stream.finished()[0].time, absl::Milliseconds(3));
  EXPECT_EQ(stream.finished()[1].reason, "c.cc\nm");
  EXPECT_EQ(stream.finished()[2].result, Result::kFailed);
  EXPECT_EQ(stream.finished()[2].reason, "d.cc:4\nnot today");
  EXPECT_THAT(stream.finished()[3].reason, HasSubstr("no message"));
}

TEST(GTestStream, LongMessageIsCut) {
  GTestStream stream;
  stream.Append(absl::StrCat(
      "event=TestCaseStart&name=S\nevent=TestStart&name=T\n"
      "event=TestPartResult&file=a.cc&line=1&message=",
      std::string(5000, 'x'), "\nevent=TestEnd&passed=0&elapsed_time=0ms\n"));
  ASSERT_EQ(stream.finished().size(), 1u);
  EXPECT_EQ(stream.finished()[0].reason.size(), kMaxGTestReason + 3);
}

TEST(GTestStream, MalformedLinesAreCountedAndIgnored) {
  GTestStream stream;
  stream.Append(
      "event=TestCaseStart&name=S\n"
      "hello\n"                                      // no event=
      "event=TestStart&name=A\n"
      "event=TestPartResult&file=a.cc&line=x&message=m\n"  // bad line
      "event=TestPartResult&file=a.cc&line=1&message=%4\n"  // cut escape
      "event=TestPartResult&file=a.cc&line=1&message=%zz\n"  // bad escape
      "event=TestEnd&passed=maybe&elapsed_time=0ms\n"  // bad passed
      "event=TestEnd&passed=1&elapsed_time=soon\n"     // bad time
      "event=TestEnd&passed=1&elapsed_time=-1ms\n"     // negative time
      "event=TestEnd&passed&elapsed_time=1ms\n"        // field without '='
      "event=Teleport&to=mars\n"                     // unknown event
      "event=TestStart\n"                            // no name
      "event=TestCaseStart\n"                        // no name
      "event=TestEnd&passed=1&elapsed_time=1ms\n"    // A ends fine
      "event=TestEnd&passed=1&elapsed_time=1ms\n"    // no TestStart
      "\n"                                           // empty
      "event=TestStart&name=B\n"
      "event=TestStart&name=C\n"                     // B never ended
      "event=TestEnd&passed=1&elapsed_time=1ms\n");
  EXPECT_EQ(stream.malformed_lines(), 14);
  ASSERT_EQ(stream.finished().size(), 2u);
  EXPECT_EQ(stream.finished()[0].name, "S.A");
  EXPECT_EQ(stream.finished()[0].result, Result::kPassed);
  EXPECT_EQ(stream.finished()[1].name, "S.C");
}

TEST(GTestStream, OverlongLineIsSkippedToItsEnd) {
  GTestStream stream;
  stream.Append("event=TestCaseStart&name=S\nevent=TestStart&name=A\n");
  const std::string chunk(64 * 1024, 'x');
  for (size_t sent = 0; sent <= GTestStream::kMaxLine; sent += chunk.size()) {
    stream.Append(chunk);
  }
  stream.Append("tail\nevent=TestEnd&passed=1&elapsed_time=1ms\n");
  EXPECT_EQ(stream.malformed_lines(), 1);
  ASSERT_EQ(stream.finished().size(), 1u);
  EXPECT_EQ(stream.finished()[0].name, "S.A");
}

TEST(GTestStream, UnfinishedLastLineIsNotParsed) {
  GTestStream stream;
  stream.Append(
      "event=TestCaseStart&name=S\nevent=TestStart&name=A\nevent=TestE");
  EXPECT_EQ(stream.running(), "S.A");
  EXPECT_TRUE(stream.finished().empty());
  EXPECT_EQ(stream.malformed_lines(), 0);
}

TEST(GTestStream, NothingReceived) {
  GTestStream stream;
  EXPECT_FALSE(stream.started());
  EXPECT_TRUE(stream.Sections(Result::kErrored, "x").empty());
}

}  // namespace
}  // namespace taskfork::runner
