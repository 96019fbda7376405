// Test-only helpers for //ipc tests: run code in a forked child and get its
// absl::Status back, give it a private /dev/shm, and check that a test binary
// leaves no named segment behind.
//
//   absl::Status s = testing::RunInChild([] { return MountPrivateShm("size=64k"); });
//   if (IsNamespaceRefused(s)) GTEST_SKIP() << s;
//   EXPECT_THAT(s, IsOk());
#ifndef TASKFORK_IPC_INTERNAL_TEST_UTIL_H_
#define TASKFORK_IPC_INTERNAL_TEST_UTIL_H_

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "ipc/message_view.h"

namespace taskfork::ipc_internal {

// Call in a forked child only: enters a private mount namespace (as root:
// unshare(CLONE_NEWNS); else with CLONE_NEWUSER too) and mounts a fresh tmpfs
// with `tmpfs_options` (e.g. "size=64k,mode=1777") over `target` (default
// /dev/shm). Returns a status for which IsNamespaceRefused() is true when the
// kernel refuses the namespace.
absl::Status MountPrivateTmpfs(const std::string& tmpfs_options,
                               const std::string& target = "/dev/shm");

// Remounts `target` read-only (in a namespace made by MountPrivateTmpfs).
absl::Status RemountReadOnly(const std::string& target = "/dev/shm");

// True for the status MountPrivateTmpfs returns when unshare is refused.
bool IsNamespaceRefused(const absl::Status& status);

// The prefix for SharedMemory::UniqueName() in tests ("t<pid of the test
// binary>"); fixed at the first call, so forked children share it.
const std::string& TestNamePrefix();

// The /dev/shm entries whose names start with "taskfork-<TestNamePrefix()>".
std::vector<std::string> LeftoverTestSegments();

// The path of a binary from the test's `data` (e.g. "ipc/shm_test_helper").
std::string RunfilePath(const std::string& workspace_relative);

// A Queue::Consume / Pipe::Consume callback that copies the message into
// *out (replacing its contents).
inline auto CopyMessageTo(std::string* out) {
  return [out](const ipc::MessageView& view) {
    view.CopyTo(out);
    return absl::OkStatus();
  };
}

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_TEST_UTIL_H_
