// RunInChild for tests: run a check in a forked child and get its status
// back, the one helper every package's multi-process tests use.
//
//   absl::Status s = testing::RunInChild([] { return MountPrivateShm(); });
//   EXPECT_THAT(s, IsOk());
//
// The child is a taskfork::Process (own process group, stdin /dev/null,
// reset signals, at-fork and child-exit handlers run); the body's status
// travels back through the Process's result pipe (//serialize).
#ifndef TASKFORK_FORK_TESTING_RUN_IN_CHILD_H_
#define TASKFORK_FORK_TESTING_RUN_IN_CHILD_H_

#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fork/process_with_result.h"

namespace taskfork::testing {

// Forks, runs `body` in the child and returns the status it returned. A
// child that ends without returning one gives the error saying how it ended
// (kAborted "child ended without a result: pid N killed by SIGSEGV ...",
// kUnknown for an exception); one still running after `timeout` is
// terminated (SIGTERM, SIGKILL after 1 s): kDeadlineExceeded. Fork errors
// as Process::Start.
inline absl::Status RunInChild(absl::AnyInvocable<absl::Status()> body,
                               absl::Duration timeout = absl::Minutes(2)) {
  absl::StatusOr<absl::Status> returned =
      taskfork::RunInChild<absl::Status>({}, std::move(body), timeout);
  if (!returned.ok()) return returned.status();
  return *std::move(returned);
}

}  // namespace taskfork::testing

#endif  // TASKFORK_FORK_TESTING_RUN_IN_CHILD_H_
