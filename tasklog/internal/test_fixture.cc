#include "tasklog/internal/test_fixture.h"

#include "absl/status/status.h"
#include "tasklog/internal/test_util.h"

namespace taskfork::tasklog_testing {

tasklog::TaskLogOptions QuietOptions(bool merge_pcall_children) {
  tasklog::TaskLogOptions options;
  options.capture_stdio = false;  // keep gtest's output on the terminal
  options.install_failure_handler = false;
  options.merge_pcall_children = merge_pcall_children;
  return options;
}

void TaskLogTestBase::SetUp() {
  if (tasklog::TaskLog::Current() != nullptr) {
    const absl::Status status = tasklog::TaskLog::Uninstall();
    ASSERT_TRUE(status.ok()) << status;
  }
  dir_ = MakeTempDir();
}

void TaskLogTestBase::TearDown() {
  if (tasklog::TaskLog::Current() != nullptr) {
    const absl::Status status = tasklog::TaskLog::Uninstall();
    EXPECT_TRUE(status.ok()) << status;
  }
}

}  // namespace taskfork::tasklog_testing
