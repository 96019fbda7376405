// Tests of the run_leftovers helpers that act on processes.
#include "tests/run_leftovers.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::tests {
namespace {

using ::testing::HasSubstr;

TEST(KillAndAwaitExitTest, ReturnsOnceTheProcessHasExited) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    for (;;) ::pause();
  }
  EXPECT_TRUE(KillAndAwaitExit(child, absl::Seconds(60)).ok());
  // Exited already: reaping does not block, and SIGKILL is what ended it.
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, WNOHANG), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST(KillAndAwaitExitTest, AProcessThatIsGoneIsAnErrorNamingIt) {
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(child, nullptr, 0), child);  // reaped: the pid is free
  const absl::Status status = KillAndAwaitExit(child, absl::Seconds(1));
  EXPECT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(absl::StrCat(child)));
}

}  // namespace
}  // namespace taskfork::tests
