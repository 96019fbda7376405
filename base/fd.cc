#include "base/fd.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/status_macros.h"

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

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view path) {
  while (!data.empty()) {
    const ssize_t n =
        RetryOnEintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) return ErrnoError(errno, "write", path);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents, mode_t mode) {
  static std::atomic<uint64_t> counter{0};
  const std::string tmp =
      absl::StrCat(path, ".tmp.", ::getpid(), ".", counter++);
  absl::Status status = [&]() -> absl::Status {
    TASKFORK_ASSIGN_OR_RETURN(
        OwnedFd fd, OwnedFd::Open(tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
    TASKFORK_RETURN_IF_ERROR(WriteAll(fd.get(), contents, tmp));
    if (::fsync(fd.get()) != 0) return ErrnoError(errno, "fsync", tmp);
    TASKFORK_RETURN_IF_ERROR(fd.Close());
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      return ErrnoError(errno, "rename " + tmp + " to", path);
    }
    return absl::OkStatus();
  }();
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

}  // namespace taskfork
