// A gtest fixture for TaskLog tests (testonly): no TaskLog installed before
// or after each test, and a fresh directory for its files.
//
//   using MyTest = tasklog_testing::TaskLogTestBase;
//   TEST_F(MyTest, X) { TaskLog::Install(dir_ + "/TaskLog.x",
//                                        QuietOptions(false)); ... }
#ifndef TASKFORK_TASKLOG_INTERNAL_TEST_FIXTURE_H_
#define TASKFORK_TASKLOG_INTERNAL_TEST_FIXTURE_H_

#include <string>

#include "gtest/gtest.h"
#include "tasklog/tasklog.h"

namespace taskfork::tasklog_testing {

// Options for a TaskLog in a test: stdout/stderr stay on the terminal (gtest
// prints there) and no failure handler is installed.
tasklog::TaskLogOptions QuietOptions(bool merge_pcall_children);

// A fixture that starts and ends every test without an installed TaskLog and
// gives it a fresh directory `dir_`.
class TaskLogTestBase : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;
  std::string dir_;
};

}  // namespace taskfork::tasklog_testing

#endif  // TASKFORK_TASKLOG_INTERNAL_TEST_FIXTURE_H_
