#include "fork/testing/run_in_child.h"

#include <signal.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::testing {
namespace {

using ::testing::HasSubstr;

TEST(RunInChild, ReturnsTheBodysStatusFromAnotherProcess) {
  const pid_t parent = ::getpid();
  EXPECT_THAT(RunInChild([parent] {
                return ::getpid() != parent
                           ? absl::OkStatus()
                           : absl::InternalError("ran in the parent");
              }),
              IsOk());
  EXPECT_THAT(RunInChild([] { return absl::NotFoundError("no such thing"); }),
              StatusIs(absl::StatusCode::kNotFound, "no such thing"));
}

TEST(RunInChild, AChildThatDiesSaysHow) {
  EXPECT_THAT(RunInChild([] {
                ::raise(SIGKILL);
                return absl::OkStatus();
              }),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("SIGKILL")));
  EXPECT_THAT(RunInChild([]() -> absl::Status { ::_exit(3); }),
              StatusIs(absl::StatusCode::kAborted, HasSubstr("code 3")));
}

TEST(RunInChild, AHungChildIsTerminatedAtTheTimeout) {
  EXPECT_THAT(RunInChild(
                  []() -> absl::Status {
                    for (;;) ::pause();
                  },
                  absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

}  // namespace
}  // namespace taskfork::testing
