// A GoogleTest binary the demo job runs as a command task (gtest: true): the
// runner reports each test as a section of the task.
#include <string>

#include "gtest/gtest.h"

namespace {

TEST(DemoGTest, Arithmetic) { EXPECT_EQ(2 + 2, 4); }

TEST(DemoGTest, Strings) { EXPECT_EQ(std::string("task") + "fork", "taskfork"); }

TEST(DemoGTest, SkippedOnPurpose) { GTEST_SKIP() << "shows a Skipped section"; }

}  // namespace
