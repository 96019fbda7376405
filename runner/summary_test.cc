#include "runner/summary.h"

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"

namespace taskfork::runner {
namespace {

using reporter::Result;

TaskRecord Record(std::string id, std::optional<Result> result,
                  std::string reason = "") {
  TaskRecord record;
  record.id = std::move(id);
  record.log_path = "/runs/TaskLog." + record.id;
  if (result.has_value()) {
    record.result = TaskResult{*result, std::move(reason), absl::Seconds(2), ""};
  }
  return record;
}

TEST(SummarizeTasks, OneRowPerTaskInOrderWithItsResult) {
  const std::vector<TaskRecord> records = {
      Record("a", Result::kPassed), Record("b", Result::kFailed, "exit 1"),
      Record("c", std::nullopt)};
  const std::vector<TaskSummaryRow> rows = SummarizeTasks(records, {});
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].id, "a");
  EXPECT_EQ(rows[0].result, Result::kPassed);
  EXPECT_EQ(rows[0].runtime, absl::Seconds(2));
  EXPECT_EQ(rows[0].log_path, "/runs/TaskLog.a");
  EXPECT_EQ(rows[1].result, Result::kFailed);
  EXPECT_EQ(rows[1].reason, "exit 1");
  EXPECT_EQ(rows[2].result, Result::kBlocked);
  EXPECT_EQ(rows[2].reason, "never started");
}

TEST(SummarizeTasks, TheReportsRollUpWinsOnlyWhereItIsWorse) {
  const std::vector<TaskRecord> records = {Record("a", Result::kPassed),
                                           Record("b", Result::kFailed, "own")};
  absl::flat_hash_map<std::string, reporter::ResultInfo> reported;
  reported["a"] = reporter::MakeResultInfo(Result::kErrored, "section open");
  reported["b"] = reporter::MakeResultInfo(Result::kPassed, "");
  const std::vector<TaskSummaryRow> rows = SummarizeTasks(records, reported);
  EXPECT_EQ(rows[0].result, Result::kErrored);
  EXPECT_EQ(rows[0].reason, "section open");
  EXPECT_EQ(rows[1].result, Result::kFailed);
  EXPECT_EQ(rows[1].reason, "own");
}

TEST(RunnerExitCode, FollowsTheRowsAndInfrastructure) {
  const std::vector<TaskRecord> good = {Record("a", Result::kPassed),
                                        Record("b", Result::kSkipped),
                                        Record("c", Result::kPassx)};
  const std::vector<TaskRecord> bad = {Record("a", Result::kPassed),
                                       Record("b", Result::kBlocked)};
  EXPECT_EQ(RunnerExitCode(SummarizeTasks(good, {}), false), kExitAllSucceeded);
  EXPECT_EQ(RunnerExitCode(SummarizeTasks(bad, {}), false),
            kExitSomeDidNotSucceed);
  EXPECT_EQ(RunnerExitCode(SummarizeTasks(good, {}), true),
            kExitInfrastructure);
  EXPECT_EQ(RunnerExitCode({}, false), kExitSomeDidNotSucceed);  // no task
}

}  // namespace
}  // namespace taskfork::runner
