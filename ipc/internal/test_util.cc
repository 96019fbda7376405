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

bool WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = RetryOnEintr([&] { return ::write(fd, p, size); });
    if (n <= 0) return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

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

absl::Status RunInChild(absl::FunctionRef<absl::Status()> fn) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  const pid_t pid = ::fork();
  if (pid < 0) return ErrnoError(errno, "fork");
  if (pid == 0) {
    ::close(fds[0]);
    const absl::Status status = fn();
    const int32_t code = static_cast<int32_t>(status.code());
    const std::string message(status.message());
    const bool ok = WriteAll(fds[1], &code, sizeof(code)) &&
                    WriteAll(fds[1], message.data(), message.size());
    ::_exit(ok ? 0 : 1);
  }
  ::close(fds[1]);
  std::string bytes;
  char buffer[4096];
  for (;;) {
    const ssize_t n =
        RetryOnEintr([&] { return ::read(fds[0], buffer, sizeof(buffer)); });
    if (n <= 0) break;
    bytes.append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int wstatus = 0;
  if (RetryOnEintr([&] { return ::waitpid(pid, &wstatus, 0); }) != pid) {
    return ErrnoError(errno, "waitpid");
  }
  if (WIFSIGNALED(wstatus)) {
    return absl::InternalError(
        absl::StrCat("child killed by signal ", WTERMSIG(wstatus), " (",
                     ::strsignal(WTERMSIG(wstatus)), ")"));
  }
  if (bytes.size() < sizeof(int32_t)) {
    return absl::InternalError(absl::StrCat(
        "child exited with status ", WEXITSTATUS(wstatus), " without a result"));
  }
  int32_t code;
  std::memcpy(&code, bytes.data(), sizeof(code));
  return absl::Status(static_cast<absl::StatusCode>(code),
                      bytes.substr(sizeof(code)));
}

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
