#include "reporter/result.h"

#include <map>
#include <string>

#include "gtest/gtest.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {
namespace {

// pyATS's documented 7x7 roll-up table, transcribed cell by
// cell with its row/column order: Fail Pass Abort Block Skip Err Passx.
constexpr Result F = Result::kFailed, P = Result::kPassed,
                 A = Result::kAborted, B = Result::kBlocked,
                 S = Result::kSkipped, E = Result::kErrored,
                 X = Result::kPassx;
constexpr Result kOrder[7] = {F, P, A, B, S, E, X};
constexpr Result kTable[7][7] = {
    /* Failed  */ {F, F, A, F, F, E, F},
    /* Passed  */ {F, P, A, B, P, E, X},
    /* Aborted */ {A, A, A, A, A, A, A},
    /* Blocked */ {F, B, A, B, B, E, B},
    /* Skipped */ {F, P, A, B, S, E, X},
    /* Errored */ {E, E, A, E, E, E, E},
    /* Passx   */ {F, X, A, B, X, E, X},
};

TEST(ResultTest, RollUpMatchesPyatsTableInAll49Cells) {
  int cells = 0;
  for (int row = 0; row < 7; ++row) {
    for (int col = 0; col < 7; ++col) {
      EXPECT_EQ(RollUp(kOrder[row], kOrder[col]), kTable[row][col])
          << ResultName(kOrder[row]) << " + " << ResultName(kOrder[col]);
      ++cells;
    }
  }
  EXPECT_EQ(cells, 49);
}

TEST(ResultTest, RollUpOfListIsLeftToRightPairwise) {
  EXPECT_EQ(RollUp({}), std::nullopt);
  EXPECT_EQ(RollUp({Result::kSkipped}), Result::kSkipped);
  EXPECT_EQ(RollUp({Result::kPassed, Result::kAborted, Result::kBlocked}),
            Result::kAborted);
  EXPECT_EQ(RollUp({Result::kSkipped, Result::kPassx, Result::kPassed}),
            Result::kPassx);
}

TEST(ResultTest, NamesRoundTrip) {
  const std::map<Result, std::string> expected = {
      {Result::kSkipped, "skipped"}, {Result::kPassed, "passed"},
      {Result::kPassx, "passx"},     {Result::kBlocked, "blocked"},
      {Result::kFailed, "failed"},   {Result::kErrored, "errored"},
      {Result::kAborted, "aborted"}};
  for (const auto& [result, name] : expected) {
    EXPECT_EQ(ResultName(result), name);
    EXPECT_EQ(ParseResult(name), result);
  }
  EXPECT_EQ(ParseResult("Passed"), std::nullopt);
  EXPECT_EQ(ParseResult(""), std::nullopt);
}

TEST(ResultTest, SuccessIsPassedPassxSkipped) {
  for (Result r : kAllResults) {
    EXPECT_EQ(IsSuccess(r), r == Result::kPassed || r == Result::kPassx ||
                                r == Result::kSkipped)
        << ResultName(r);
  }
}

TEST(ResultTest, CodesMatchTheProtoEnum) {
  EXPECT_EQ(ResultCodeOf(Result::kSkipped), RESULT_SKIPPED);
  EXPECT_EQ(ResultCodeOf(Result::kPassed), RESULT_PASSED);
  EXPECT_EQ(ResultCodeOf(Result::kPassx), RESULT_PASSX);
  EXPECT_EQ(ResultCodeOf(Result::kBlocked), RESULT_BLOCKED);
  EXPECT_EQ(ResultCodeOf(Result::kFailed), RESULT_FAILED);
  EXPECT_EQ(ResultCodeOf(Result::kErrored), RESULT_ERRORED);
  EXPECT_EQ(ResultCodeOf(Result::kAborted), RESULT_ABORTED);
  EXPECT_EQ(ResultFromCode(RESULT_UNSPECIFIED), std::nullopt);
  EXPECT_EQ(ResultFromCode(8), std::nullopt);
  EXPECT_EQ(ResultFromCode(-1), std::nullopt);
  for (Result r : kAllResults) EXPECT_EQ(ResultFromCode(ResultCodeOf(r)), r);
}

}  // namespace
}  // namespace taskfork::reporter
