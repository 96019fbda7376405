// OwnedFd: a move-only owner of one file descriptor.
//
//   TASKFORK_ASSIGN_OR_RETURN(OwnedFd fd, OwnedFd::Open(path, O_RDONLY));
//   ssize_t n = ::read(fd.get(), buf, sizeof(buf));
//   // closed when `fd` goes out of scope; Close() reports close()'s error.
#ifndef TASKFORK_BASE_FD_H_
#define TASKFORK_BASE_FD_H_

#include <fcntl.h>
#include <sys/types.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork {

// Owns a file descriptor (or none: -1). Move-only; the destructor closes it
// and ignores close()'s error (call Close() to see it). Thread-compatible.
// Fork: the child inherits the descriptor unless it is O_CLOEXEC and the child
// execs; both processes' OwnedFd then close their own copy.
class OwnedFd {
 public:
  OwnedFd() = default;
  // Takes ownership of `fd` (-1 means none).
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(other.Release()) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept;
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd();

  // open(2) with O_CLOEXEC added. Errors name the path: kNotFound (ENOENT),
  // kPermissionDenied (EACCES), ... (see ErrnoError).
  static absl::StatusOr<OwnedFd> Open(const std::string& path, int flags,
                                      mode_t mode = 0);

  // pipe2(2) with O_CLOEXEC added: {read end, write end}.
  struct PipeEnds;
  static absl::StatusOr<PipeEnds> Pipe(int flags = 0);

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }

  // Gives up ownership without closing; returns the descriptor (or -1).
  int Release();
  // Closes the owned descriptor (if any) and takes `fd` instead.
  void Reset(int fd = -1);
  // Closes the descriptor now and returns close()'s error, if any; the
  // descriptor is released even on error (POSIX leaves it unspecified, Linux
  // always frees it, so retrying could close someone else's).
  absl::Status Close();

 private:
  int fd_ = -1;
};

struct OwnedFd::PipeEnds {
  OwnedFd read;
  OwnedFd write;
};

// Writes all of `data` to `fd`, retrying short writes and EINTR. `path` only
// names the file in the error: ErrnoError of write(2), e.g. kResourceExhausted
// (ENOSPC), kUnavailable (EPIPE). On error an unknown prefix was written.
// Async-signal-safe apart from building the error status.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view path);

// Writes `contents` to `path` atomically: a new temporary file in the same
// directory (O_EXCL, `mode`), fsync, rename over `path`. Readers see the old
// file or the new one, never a part; on failure the temporary file is removed
// and `path` is untouched. Errors name the path: kNotFound (no such
// directory), kPermissionDenied, kResourceExhausted (disk full),
// kFailedPrecondition / kInvalidArgument (e.g. `path` is a directory).
// Thread-safe (temporary names are unique per process and call).
absl::Status WriteFileAtomically(const std::string& path,
                                 absl::string_view contents,
                                 mode_t mode = 0644);

}  // namespace taskfork

#endif  // TASKFORK_BASE_FD_H_
