#include "base/fd.h"

#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno.h"

namespace taskfork {

OwnedFd& OwnedFd::operator=(OwnedFd&& other) noexcept {
  if (this != &other) Reset(other.Release());
  return *this;
}

OwnedFd::~OwnedFd() { Reset(); }

absl::StatusOr<OwnedFd> OwnedFd::Open(const std::string& path, int flags,
                                      mode_t mode) {
  const int fd =
      RetryOnEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, mode); });
  if (fd < 0) return ErrnoError(errno, "open", path);
  return OwnedFd(fd);
}

absl::StatusOr<OwnedFd::PipeEnds> OwnedFd::Pipe(int flags) {
  int fds[2];
  if (::pipe2(fds, flags | O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  return PipeEnds{OwnedFd(fds[0]), OwnedFd(fds[1])};
}

int OwnedFd::Release() { return std::exchange(fd_, -1); }

void OwnedFd::Reset(int fd) {
  const int old = std::exchange(fd_, fd);
  if (old >= 0) ::close(old);
}

absl::Status OwnedFd::Close() {
  const int old = Release();
  if (old < 0 || ::close(old) == 0) return absl::OkStatus();
  if (errno == EINTR) return absl::OkStatus();  // Linux: already closed.
  return ErrnoError(errno, "close", absl::StrCat("fd ", old));
}

}  // namespace taskfork
