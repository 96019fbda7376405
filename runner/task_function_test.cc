#include "runner/task_function.h"

#include <stdexcept>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::reporter::Result;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;

TASKFORK_TASK(registry_test_ok)(TaskContext& context) {
  return context.args().empty() ? absl::InvalidArgumentError("no args")
                                : absl::OkStatus();
}

TASKFORK_TASK(registry_test_skip)(TaskContext& context) {
  context.SetResult(Result::kSkipped, "nothing to do");
  return absl::OkStatus();
}

TASKFORK_TASK(registry_test_throws)(TaskContext&) {
  throw std::runtime_error("device unreachable");
}

TASKFORK_TASK(registry_test_throws_int)(TaskContext&) { throw 42; }

TASKFORK_TASK(registry_test_fail_and_block)(TaskContext& context) {
  context.SetResult(Result::kBlocked, "dependency missing");
  return absl::InternalError("and it failed");
}

TaskFunctionOutcome RunByName(absl::string_view name,
                        std::vector<std::string> args = {}) {
  const TaskRegistry::Entry* entry = TaskRegistry::Global().Find(name);
  EXPECT_NE(entry, nullptr) << name;
  TaskContext context("t1", std::move(args), "/tmp", nullptr);
  return RunTaskFunction(entry->function, context);
}

TEST(TaskRegistry, RegistersByNameWithSource) {
  EXPECT_THAT(TaskRegistry::Global().Names(),
              IsSupersetOf({"registry_test_ok", "registry_test_skip"}));
  const TaskRegistry::Entry* entry =
      TaskRegistry::Global().Find("registry_test_ok");
  ASSERT_NE(entry, nullptr);
  EXPECT_THAT(entry->file, HasSubstr("task_function_test.cc"));
  EXPECT_EQ(TaskRegistry::Global().Find("registry_test_missing"), nullptr);
}

TEST(TaskRegistryDeathTest, DuplicateNameIsAProgrammerError) {
  EXPECT_DEATH(TaskRegistry::Global().Register(
                   "registry_test_ok", [](TaskContext&) { return absl::OkStatus(); },
                   "other.cc", 7),
               "task function \"registry_test_ok\" registered twice: "
               ".*task_function_test.cc:.* and other.cc:7");
}

TEST(RunTaskFunction, OkIsPassedErrorIsFailed) {
  TaskFunctionOutcome ok = RunByName("registry_test_ok", {"x"});
  EXPECT_EQ(ok.result, Result::kPassed);
  EXPECT_EQ(ok.reason, "");
  TaskFunctionOutcome failed = RunByName("registry_test_ok");
  EXPECT_EQ(failed.result, Result::kFailed);
  EXPECT_EQ(failed.reason, "INVALID_ARGUMENT: no args");
}

TEST(RunTaskFunction, SetResultOverridesPassed) {
  TaskFunctionOutcome skipped = RunByName("registry_test_skip");
  EXPECT_EQ(skipped.result, Result::kSkipped);
  EXPECT_EQ(skipped.reason, "nothing to do");
}

TEST(RunTaskFunction, SetResultRollsUpWithAnError) {
  TaskFunctionOutcome outcome = RunByName("registry_test_fail_and_block");
  EXPECT_EQ(outcome.result, Result::kFailed);
  EXPECT_EQ(outcome.reason, "INTERNAL: and it failed");
}

TEST(RunTaskFunction, ExceptionsAreErroredWithTypeAndWhat) {
  TaskFunctionOutcome outcome = RunByName("registry_test_throws");
  EXPECT_EQ(outcome.result, Result::kErrored);
  EXPECT_EQ(outcome.reason,
            "uncaught exception std::runtime_error: device unreachable");
  TaskFunctionOutcome other = RunByName("registry_test_throws_int");
  EXPECT_EQ(other.result, Result::kErrored);
  EXPECT_EQ(other.reason, "uncaught exception of type int");
}

// A context with a client made on demand: nothing is made until reporter(),
// then once, and what it returned (nullptr too: the reporter is
// unavailable) is kept.
TEST(TaskContext, ReporterIsMadeAtTheFirstCallOnly) {
  int made = 0;
  TaskContext context("t1", {}, "/tmp", [&made]() -> reporter::ReportClient* {
    ++made;
    return nullptr;
  });
  EXPECT_EQ(made, 0);
  TaskFunctionOutcome outcome =
      RunTaskFunction([](TaskContext&) { return absl::OkStatus(); }, context);
  EXPECT_EQ(outcome.result, Result::kPassed);
  EXPECT_EQ(made, 0);  // a task that reports nothing connects nowhere
  EXPECT_EQ(context.reporter(), nullptr);
  EXPECT_EQ(context.reporter(), nullptr);
  EXPECT_EQ(made, 1);
}

}  // namespace
}  // namespace taskfork::runner
