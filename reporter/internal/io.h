// Socket helpers shared by the reporter server, client and subscriber.
//
//   TASKFORK_ASSIGN_OR_RETURN(OwnedFd fd, ConnectUnix(path, retry));
//   TASKFORK_RETURN_IF_ERROR(SendAll(fd.get(), bytes, deadline, path));
//   TASKFORK_ASSIGN_OR_RETURN(bool got, ReadFrame(fd.get(), &decoder, &msg, deadline, path));
#ifndef TASKFORK_REPORTER_INTERNAL_IO_H_
#define TASKFORK_REPORTER_INTERNAL_IO_H_

#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "google/protobuf/message_lite.h"
#include "reporter/frame.h"

namespace taskfork::reporter_internal {

// Longest path that fits in sockaddr_un::sun_path with its NUL.
inline constexpr size_t kMaxSunPath = sizeof(sockaddr_un{}.sun_path) - 1;

// The path to connect() to for `path`: `path` itself when it fits in
// sun_path, else the target of the symlink at `path` (the server's long-path
// fallback). Errors: kInvalidArgument when it is too long and not a symlink
// to a path that fits; the readlink error otherwise (kNotFound ...).
absl::StatusOr<std::string> ConnectablePath(const std::string& path);

struct RetryPolicy {
  int attempts = 8;
  absl::Duration initial_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Milliseconds(500);
};

// A non-blocking, close-on-exec Unix stream socket connected to `path`,
// retrying ENOENT / ECONNREFUSED / EAGAIN (server not listening yet, or its
// backlog full) with doubling backoff. Errors: kPermissionDenied at once
// (EACCES: not ours); kUnavailable after the last attempt, naming the path,
// the attempts and the last errno; those of ConnectablePath.
absl::StatusOr<OwnedFd> ConnectUnix(const std::string& path,
                                    const RetryPolicy& retry);

// A non-blocking, close-on-exec TCP socket (TCP_NODELAY) connected to
// `host`:`port` (resolved with getaddrinfo; each address is tried), waiting
// at most `connect_timeout` per attempt, and retrying ECONNREFUSED,
// ETIMEDOUT, EHOSTUNREACH, ENETUNREACH and a temporary resolver failure with
// the backoff of `retry`. Errors: kNotFound at once when `host` does not
// resolve (naming it); kUnavailable after the last attempt, naming
// host:port, the attempts and the last error; other socket errors' codes.
absl::StatusOr<OwnedFd> ConnectTcp(const std::string& host, uint16_t port,
                                   const RetryPolicy& retry,
                                   absl::Duration connect_timeout);

// Sends all of `data` on non-blocking socket `fd` (MSG_NOSIGNAL), waiting in
// poll() until `deadline`. Errors: kUnavailable when the peer is gone
// (EPIPE / ECONNRESET), kDeadlineExceeded when the peer did not take the
// bytes by `deadline`; `what` names the peer in messages.
absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline,
                     absl::string_view what);

// Reads from non-blocking `fd` into `decoder` until it yields one message
// (parsed into `*message`) or `deadline`. Returns false at a clean end of
// stream. Errors: kDeadlineExceeded, kDataLoss (malformed or truncated),
// kResourceExhausted (oversize), kUnavailable (ECONNRESET).
absl::StatusOr<bool> ReadFrame(int fd, reporter::FrameDecoder* decoder,
                               google::protobuf::MessageLite* message,
                               absl::Time deadline, absl::string_view what);

// Waits until `fd` is ready for `events` (POLLIN / POLLOUT) or `deadline`.
// Returns false on timeout. Errors: kInternal for poll failures.
absl::StatusOr<bool> WaitFd(int fd, short events, absl::Time deadline);

}  // namespace taskfork::reporter_internal

#endif  // TASKFORK_REPORTER_INTERNAL_IO_H_
