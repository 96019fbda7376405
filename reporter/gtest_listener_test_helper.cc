// A GoogleTest binary that links //reporter:gtest_listener, run by
// gtest_listener_test with and without TASKFORK_REPORTER_SOCKET.
#include "gtest/gtest.h"

namespace {

TEST(HelperSuite, Passes) { EXPECT_EQ(1 + 1, 2); }

TEST(HelperSuite, Fails) {
  EXPECT_EQ(1, 2) << "first failure";
  ADD_FAILURE() << "second failure";
}

TEST(HelperSuite, IsSkipped) { GTEST_SKIP() << "not on this machine"; }

class HelperParam : public ::testing::TestWithParam<int> {};
TEST_P(HelperParam, Even) { EXPECT_EQ(GetParam() % 2, 0); }
INSTANTIATE_TEST_SUITE_P(Numbers, HelperParam, ::testing::Values(2));

}  // namespace
