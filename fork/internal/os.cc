#include "fork/internal/os.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <string>

#include "absl/status/statusor.h"
#include "base/errno.h"
#include "base/fd.h"

namespace taskfork::fork_internal {

long PidfdOpen(pid_t pid) { return ::syscall(SYS_pidfd_open, pid, 0); }

int PidfdSendSignal(int pidfd, int signo) {
  return static_cast<int>(
      ::syscall(SYS_pidfd_send_signal, pidfd, signo, nullptr, 0));
}

std::string ReadSmallFile(const std::string& path) {
  std::string text;
  absl::StatusOr<OwnedFd> fd = OwnedFd::Open(path, O_RDONLY);
  if (!fd.ok()) return text;
  char buf[4096];
  for (;;) {
    const ssize_t n =
        RetryOnEintr([&] { return ::read(fd->get(), buf, sizeof(buf)); });
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace taskfork::fork_internal
