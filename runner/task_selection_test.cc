#include "runner/task_selection.h"

#include <string>
#include <vector>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<std::string> kIds = {"unit_a", "unit_b", "e2e", "unit"};

TEST(SelectTaskIds, MatchesWholeIds) {
  EXPECT_THAT(SelectTaskIds("unit_.*", kIds),
              IsOkAndHolds(ElementsAre(true, true, false, false)));
  // "unit" is a substring of three ids but the whole of one only.
  EXPECT_THAT(SelectTaskIds("unit", kIds),
              IsOkAndHolds(ElementsAre(false, false, false, true)));
  EXPECT_THAT(SelectTaskIds("e2e|unit_b", kIds),
              IsOkAndHolds(ElementsAre(false, true, true, false)));
}

TEST(SelectTaskIds, InvalidRegexSaysWhy) {
  EXPECT_THAT(SelectTaskIds("unit_(", kIds),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"unit_(\" is not a valid regular "
                                 "expression: ")));
}

TEST(SelectTaskIds, MatchingNothingListsTheIds) {
  EXPECT_THAT(SelectTaskIds("nightly.*", kIds),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("\"nightly.*\" matches no task id"),
                             HasSubstr("unit_a, unit_b, e2e, unit"))));
  EXPECT_THAT(SelectTaskIds(".*", {}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("matches no task id")));
}

}  // namespace
}  // namespace taskfork::runner
