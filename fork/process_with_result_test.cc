#include "fork/process_with_result.h"

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "serialize/serialize.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

struct Verdict {
  std::string task;
  std::vector<int64_t> steps;
  std::map<std::string, double> scores;
  TASKFORK_SERIALIZE(task, steps, scores);
};

TEST(ProcessWithResult, ScalarComesBack) {
  auto p = ProcessWithResult<int>::Start({}, [] { return 6 * 7; });
  ASSERT_THAT(p, IsOk());
  EXPECT_GT(p->pid(), 0);
  EXPECT_EQ(p->exit_status(), nullptr);
  EXPECT_THAT(p->Join(), IsOkAndHolds(42));
  ASSERT_NE(p->exit_status(), nullptr);
  EXPECT_TRUE(p->exit_status()->success());
  EXPECT_THAT(p->Join(), StatusIs(absl::StatusCode::kFailedPrecondition,
                                  HasSubstr("taken already")));
}

TEST(ProcessWithResult, ClassComesBackWithTheChildsState) {
  int computed_in_child = 0;
  auto p = ProcessWithResult<Verdict>::Start({}, [&computed_in_child] {
    computed_in_child = 5;  // the child's copy of memory only
    Verdict v;
    v.task = "t1";
    v.steps = {1, 2, computed_in_child};
    v.scores = {{"pass", 0.5}};
    return v;
  });
  ASSERT_THAT(p, IsOk());
  auto v = p->Join();
  ASSERT_THAT(v, IsOk());
  EXPECT_EQ(v->task, "t1");
  EXPECT_THAT(v->steps, ElementsAre(1, 2, 5));
  EXPECT_THAT(v->scores, ElementsAre(Pair("pass", 0.5)));
  EXPECT_EQ(computed_in_child, 0);
}

TEST(ProcessWithResult, MoveOnlyValue) {
  auto r = RunInChild<std::unique_ptr<std::string>>(
      {}, [] { return std::make_unique<std::string>("owned"); });
  ASSERT_THAT(r, IsOk());
  ASSERT_NE(*r, nullptr);
  EXPECT_EQ(**r, "owned");
}

TEST(ProcessWithResult, StatusValuesAreValuesNotErrors) {
  auto r = RunInChild<absl::Status>(
      {}, [] { return absl::NotFoundError("no such device"); });
  ASSERT_THAT(r, IsOk());
  EXPECT_THAT(*r, StatusIs(absl::StatusCode::kNotFound, "no such device"));
}

TEST(ProcessWithResult, ExceptionComesBackWithTypeAndWhat) {
  auto r = RunInChild<int>({}, []() -> int {
    throw std::invalid_argument("bad testbed");
  });
  EXPECT_THAT(r, StatusIs(absl::StatusCode::kUnknown,
                          HasSubstr("threw std::invalid_argument: bad testbed")));
}

TEST(ProcessWithResult, CrashComesBackWithTheSignalName) {
  auto p = ProcessWithResult<int>::Start({}, []() -> int {
    const rlimit no_core{0, 0};
    ::setrlimit(RLIMIT_CORE, &no_core);
    std::abort();
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(p->Join(), StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("killed by SIGABRT")));
  ASSERT_NE(p->exit_status(), nullptr);
  EXPECT_EQ(p->exit_status()->signal, SIGABRT);
}

TEST(ProcessWithResult, EarlyExitIsAbortedWithTheCode) {
  EXPECT_THAT(RunInChild<int>({}, []() -> int { ::_exit(9); }),
              StatusIs(absl::StatusCode::kAborted,
                       HasSubstr("exited with code 9")));
}

TEST(ProcessWithResult, HundredMebibyteResult) {
  constexpr size_t kSize = size_t{100} << 20;
  auto r = RunInChild<std::string>({}, [] {
    std::string s(kSize, 'x');
    s[12345] = 'y';
    return s;
  });
  ASSERT_THAT(r, IsOk());
  EXPECT_EQ(r->size(), kSize);
  EXPECT_EQ((*r)[12345], 'y');
  EXPECT_EQ(r->find('y', 12346), std::string::npos);
}

TEST(ProcessWithResult, TimeoutThenTerminate) {
  auto p = ProcessWithResult<int>::Start({}, [] {
    for (;;) ::pause();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(p->Join(absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_THAT(p->process().Terminate(absl::Seconds(60)), IsOk());
  EXPECT_THAT(p->Join(), StatusIs(absl::StatusCode::kAborted,
                                  HasSubstr("killed by SIGTERM")));
}

TEST(ProcessWithResult, RunInChildTerminatesOnTimeout) {
  EXPECT_THAT(RunInChild<int>(
                  {},
                  [] {
                    for (;;) ::pause();
                    return 0;
                  },
                  absl::Milliseconds(10)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // reaped, no zombie
  EXPECT_EQ(errno, ECHILD);
}

TEST(ProcessWithResult, BadOptionsAreRejected) {
  ProcessOptions options;
  options.env = {{"=", "x"}};
  EXPECT_THAT(ProcessWithResult<int>::Start(options, [] { return 1; }),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ProcessWithResult, UndecodableBytesAreDataLoss) {
  EXPECT_THAT(fork_internal::DecodeResult<int>(77, std::string("garbage")),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("result of pid 77")));
  EXPECT_THAT(fork_internal::DecodeResult<int>(
                  77, serialize::Encode(std::string("a string"))),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT(fork_internal::DecodeResult<int>(77, serialize::Encode(3)),
              IsOkAndHolds(3));
}

}  // namespace
}  // namespace taskfork
