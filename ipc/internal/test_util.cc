#include "ipc/internal/test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "gtest/gtest.h"

namespace taskfork::ipc_internal {
namespace {

constexpr char kRefused[] = "mount namespace refused";

// Fails the test binary if it leaves a named test segment in /dev/shm
// (forked children leave with _exit and never run it).
class LeftoverCheck : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const std::string& name : LeftoverTestSegments()) {
      ADD_FAILURE() << "segment left in /dev/shm: " << name;
    }
  }
};

const bool kRegistered = [] {
  TestNamePrefix();
  ::testing::AddGlobalTestEnvironment(new LeftoverCheck);
  return true;
}();

}  // namespace

absl::Status MountPrivateTmpfs(const std::string& tmpfs_options,
                               const std::string& target) {
  if (::unshare(CLONE_NEWNS) != 0 &&
      ::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
    return absl::UnavailableError(
        absl::StrCat(kRefused, ": ", ::strerror(errno)));
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError(errno, "make / private in the new mount namespace");
  }
  if (::mount("tmpfs", target.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              tmpfs_options.c_str()) != 0) {
    return ErrnoError(errno, absl::StrCat("mount tmpfs (", tmpfs_options, ") on"),
                      target);
  }
  return absl::OkStatus();
}

absl::Status RemountReadOnly(const std::string& target) {
  if (::mount(nullptr, target.c_str(), nullptr,
              MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
    return ErrnoError(errno, "remount read-only", target);
  }
  return absl::OkStatus();
}

bool IsNamespaceRefused(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable &&
         absl::StartsWith(status.message(), kRefused);
}

const std::string& TestNamePrefix() {
  static const std::string* prefix =
      new std::string(absl::StrCat("t", ::getpid()));
  return *prefix;
}

std::vector<std::string> LeftoverTestSegments() {
  std::vector<std::string> leftovers;
  const std::string wanted = absl::StrCat("taskfork-", TestNamePrefix(), "-");
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return leftovers;
  while (const dirent* entry = ::readdir(dir)) {
    if (absl::StartsWith(entry->d_name, wanted)) {
      leftovers.push_back(entry->d_name);
    }
  }
  ::closedir(dir);
  return leftovers;
}

std::string RunfilePath(const std::string& workspace_relative) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  if (srcdir == nullptr) return workspace_relative;
  return absl::StrCat(srcdir, "/", workspace != nullptr ? workspace : "taskfork",
                      "/", workspace_relative);
}

}  // namespace taskfork::ipc_internal
