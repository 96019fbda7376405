// Pcall integration: the join hook merges children's logs in argument order.
//
// In its own binary because registering the hook creates //fork's join-hook
// registry, whose at-fork handlers (as of f3d1f93) leave the registry's
// std::shared_mutex write-locked in a fork child (glibc unlocks a rwlock as
// a reader when the caller's thread id is not the one that write-locked it,
// and the child's thread has a new id): a child of a process with the hook
// registered hangs when it forks again. tasklog_test forks grandchildren and
// never registers the hook.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "fork/pcall.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tasklog/internal/test_fixture.h"
#include "tasklog/internal/test_util.h"
#include "tasklog/tasklog.h"

namespace taskfork::tasklog {
namespace {

using ::taskfork::tasklog_testing::FindLines;
using ::taskfork::tasklog_testing::MakeTempDir;
using ::taskfork::tasklog_testing::MergedChildPaths;
using ::taskfork::tasklog_testing::ReadFile;
using ::taskfork::testing::IsOk;
using ::testing::HasSubstr;

TaskLogOptions QuietOptions() {
  return tasklog_testing::QuietOptions(/*merge_pcall_children=*/true);
}

using TaskLogPcallTest = tasklog_testing::TaskLogTestBase;

TEST_F(TaskLogPcallTest, PcallMergesChildLogsInArgumentOrder) {
  const std::string path = dir_ + "/TaskLog.pcall";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  // Later arguments finish first: merge order must still be argument order.
  PcallResults<int> results = PcallDetailed(
      [](int k) {
        LOG(INFO) << "pcall child " << k;
        return k;
      },
      std::vector<int>{0, 1, 2, 3});
  ASSERT_THAT(results.status, IsOk());
  LOG(INFO) << "after pcall";
  const std::string text = ReadFile(path);
  std::vector<std::string> expected;
  for (const auto& call : results.calls) {
    expected.push_back(TaskLog::ChildLogPath(path, call.pid));
  }
  EXPECT_EQ(MergedChildPaths(text), expected) << text;
  for (int k = 0; k < 4; ++k) {
    const std::string child_path = expected[k];
    const std::string block = absl::StrCat(
        ">>>> Begin child log ", child_path, "\n", ReadFile(child_path),
        "<<<< End child log ", child_path, "\n");
    EXPECT_THAT(text, HasSubstr(block));
    EXPECT_EQ(FindLines(child_path, absl::StrCat("pcall child ", k)).size(),
              1u);
  }
  EXPECT_LT(text.find("<<<< End child log " + expected[3]),
            text.find("] after pcall"));
  EXPECT_THAT(TaskLog::Current()->status(), IsOk());
}

TEST_F(TaskLogPcallTest, PcallMergeCanBeTurnedOffAndJobLogsNeverMerge) {
  TaskLogOptions no_merge = QuietOptions();
  no_merge.merge_pcall_children = false;
  ASSERT_THAT(TaskLog::Install(dir_ + "/TaskLog.nomerge", no_merge), IsOk());
  ASSERT_THAT(Pcall([](int k) { return k; }, std::vector<int>{1, 2}), IsOk());
  EXPECT_TRUE(MergedChildPaths(ReadFile(dir_ + "/TaskLog.nomerge")).empty());

  ASSERT_THAT(JobLog::Install(dir_ + "/JobLog.pcall", QuietOptions()), IsOk());
  ASSERT_THAT(Pcall(
                  [](int k) {
                    LOG(INFO) << "job child " << k;
                    return k;
                  },
                  std::vector<int>{1, 2}),
              IsOk());
  const std::string text = ReadFile(dir_ + "/JobLog.pcall");
  EXPECT_TRUE(MergedChildPaths(text).empty());
  EXPECT_THAT(text, HasSubstr("] job child 1\n"));
  EXPECT_THAT(TaskLog::Current()->status(), IsOk());
}

}  // namespace
}  // namespace taskfork::tasklog
