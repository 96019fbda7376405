#include "base/status_matchers.h"

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::testing {
namespace {

using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(StatusIs, MatchesCodeAndMessage) {
  const absl::Status status = absl::NotFoundError("open /x: missing");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound, HasSubstr("/x")));
  EXPECT_THAT(status, Not(StatusIs(absl::StatusCode::kInternal)));
  EXPECT_THAT(status,
              Not(StatusIs(absl::StatusCode::kNotFound, HasSubstr("/y"))));
}

TEST(StatusIs, WorksOnStatusOr) {
  const absl::StatusOr<int> error = absl::DataLossError("short");
  EXPECT_THAT(error, StatusIs(absl::StatusCode::kDataLoss, "short"));
  const absl::StatusOr<int> value = 3;
  EXPECT_THAT(value, StatusIs(absl::StatusCode::kOk));
}

TEST(IsOk, MatchesOnlyOk) {
  EXPECT_THAT(absl::OkStatus(), IsOk());
  EXPECT_THAT(absl::StatusOr<std::string>("x"), IsOk());
  EXPECT_THAT(absl::CancelledError(), Not(IsOk()));
  EXPECT_THAT(absl::StatusOr<int>(absl::UnknownError("u")), Not(IsOk()));
}

TEST(IsOkAndHolds, MatchesValue) {
  const absl::StatusOr<std::string> value = std::string("taskfork");
  EXPECT_THAT(value, IsOkAndHolds("taskfork"));
  EXPECT_THAT(value, IsOkAndHolds(HasSubstr("fork")));
  EXPECT_THAT(value, Not(IsOkAndHolds(Eq("pyats"))));
  const absl::StatusOr<std::string> error = absl::InternalError("boom");
  EXPECT_THAT(error, Not(IsOkAndHolds(::testing::_)));
}

TEST(Matchers, ExplainFailures) {
  const ::testing::Matcher<const absl::Status&> matcher =
      StatusIs(absl::StatusCode::kNotFound);
  ::testing::StringMatchResultListener listener;
  EXPECT_FALSE(matcher.MatchAndExplain(absl::InternalError("boom"), &listener));
  EXPECT_THAT(listener.str(), HasSubstr("INTERNAL: boom"));

  const ::testing::Matcher<const absl::StatusOr<int>&> holds = IsOkAndHolds(1);
  ::testing::StringMatchResultListener holds_listener;
  EXPECT_FALSE(holds.MatchAndExplain(absl::StatusOr<int>(absl::AbortedError("a")),
                                     &holds_listener));
  EXPECT_THAT(holds_listener.str(), HasSubstr("ABORTED: a"));
}

}  // namespace
}  // namespace taskfork::testing
