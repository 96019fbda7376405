#include "base/status_macros.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;

absl::Status ReturnIfError(absl::Status inner, int* reached) {
  TASKFORK_RETURN_IF_ERROR(inner);
  ++*reached;
  return absl::OkStatus();
}

TEST(ReturnIfError, ReturnsTheErrorAndStops) {
  int reached = 0;
  EXPECT_THAT(ReturnIfError(absl::NotFoundError("gone"), &reached),
              StatusIs(absl::StatusCode::kNotFound, "gone"));
  EXPECT_EQ(reached, 0);
}

TEST(ReturnIfError, ContinuesOnOk) {
  int reached = 0;
  EXPECT_THAT(ReturnIfError(absl::OkStatus(), &reached), IsOk());
  EXPECT_EQ(reached, 1);
}

TEST(ReturnIfError, AcceptsStatusOrAndEvaluatesOnce) {
  int calls = 0;
  auto make = [&]() -> absl::StatusOr<int> {
    ++calls;
    return absl::DataLossError("truncated");
  };
  auto f = [&]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(make());
    return absl::OkStatus();
  };
  EXPECT_THAT(f(), StatusIs(absl::StatusCode::kDataLoss, "truncated"));
  EXPECT_EQ(calls, 1);
}

absl::StatusOr<std::unique_ptr<int>> MakeUnique(bool ok) {
  if (!ok) return absl::InvalidArgumentError("no");
  return std::make_unique<int>(7);
}

absl::StatusOr<int> Declares(bool ok) {
  TASKFORK_ASSIGN_OR_RETURN(std::unique_ptr<int> value, MakeUnique(ok));
  return *value + 1;
}

TEST(AssignOrReturn, DeclaresMoveOnlyValue) {
  EXPECT_THAT(Declares(true), IsOkAndHolds(8));
  EXPECT_THAT(Declares(false), StatusIs(absl::StatusCode::kInvalidArgument));
}

absl::StatusOr<std::pair<int, int>> MakePair() { return std::make_pair(1, 2); }

absl::StatusOr<int> AssignsExistingAndParenthesised() {
  int existing = 0;
  TASKFORK_ASSIGN_OR_RETURN(existing, absl::StatusOr<int>(40));
  TASKFORK_ASSIGN_OR_RETURN((std::pair<int, int> pair), MakePair());
  TASKFORK_ASSIGN_OR_RETURN((auto [a, b]), MakePair());
  return existing + pair.first + a + b - 1;
}

TEST(AssignOrReturn, AssignsExistingLvalueAndParenthesisedDeclaration) {
  EXPECT_THAT(AssignsExistingAndParenthesised(), IsOkAndHolds(43));
}

absl::StatusOr<int> TwoOnOneLineScope() {
  TASKFORK_ASSIGN_OR_RETURN(int a, absl::StatusOr<int>(1));
  TASKFORK_ASSIGN_OR_RETURN(int b, absl::StatusOr<int>(2));
  return a + b;
}

TEST(AssignOrReturn, SeveralInOneFunction) {
  EXPECT_THAT(TwoOnOneLineScope(), IsOkAndHolds(3));
}

}  // namespace
}  // namespace taskfork
