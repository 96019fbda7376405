#include "reporter/internal/io.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/errno.h"

namespace taskfork::reporter_internal {

absl::StatusOr<std::string> ConnectablePath(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("empty socket path");
  if (path.size() <= kMaxSunPath) return path;
  char target[kMaxSunPath + 2];
  const ssize_t n = ::readlink(path.c_str(), target, sizeof(target));
  if (n < 0) {
    if (errno == EINVAL) {
      return absl::InvalidArgumentError(absl::StrCat(
          "socket path ", path, " is ", path.size(),
          " bytes, longer than sun_path allows (", kMaxSunPath,
          "), and not a symlink to a shorter one"));
    }
    return ErrnoError(errno, "readlink", path);
  }
  if (static_cast<size_t>(n) > kMaxSunPath || n == 0 || target[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "socket path ", path, " is a symlink to a path that is not absolute "
        "or does not fit in sun_path"));
  }
  return std::string(target, static_cast<size_t>(n));
}

absl::StatusOr<OwnedFd> ConnectUnix(const std::string& path,
                                    const RetryPolicy& retry) {
  absl::Duration backoff = retry.initial_backoff;
  const absl::Time start = absl::Now();
  int last_errno = 0;
  std::string last_target;
  for (int attempt = 1; attempt <= std::max(1, retry.attempts); ++attempt) {
    if (attempt > 1) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, retry.max_backoff);
    }
    // Resolve again on every attempt: the symlink may appear late.
    auto target = ConnectablePath(path);
    if (!target.ok()) {
      if (absl::IsNotFound(target.status())) {
        last_errno = ENOENT;
        continue;
      }
      return target.status();
    }
    last_target = *target;
    OwnedFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return ErrnoError(errno, "socket(AF_UNIX)");
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, target->data(), target->size());
    const int rc = RetryOnEintr([&] {
      return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr),
                       sizeof(addr));
    });
    if (rc == 0) return fd;
    last_errno = errno;
    if (last_errno == EACCES || last_errno == EPERM) {
      return ErrnoError(last_errno, "connect to reporter server at", path);
    }
    if (last_errno != ENOENT && last_errno != ECONNREFUSED &&
        last_errno != EAGAIN) {
      return ErrnoError(last_errno, "connect to reporter server at", path);
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot connect to reporter server at ", path,
      last_target.empty() || last_target == path ? ""
                                                 : " (-> " + last_target + ")",
      " after ", retry.attempts, " attempts over ",
      absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
      ": ", std::strerror(last_errno), " [", ErrnoName(last_errno), "]"));
}

namespace {

// One connect to `ai`, bounded by `deadline`. Returns the socket, or -1 with
// *error set to the errno (ETIMEDOUT at the deadline).
OwnedFd ConnectOnce(const addrinfo& ai, absl::Time deadline, int* error) {
  OwnedFd fd(::socket(ai.ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                      ai.ai_protocol));
  if (!fd) {
    *error = errno;
    return OwnedFd();
  }
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) {
      *error = errno;
      return OwnedFd();
    }
    auto ready = WaitFd(fd.get(), POLLOUT, deadline);
    if (!ready.ok() || !*ready) {
      *error = ETIMEDOUT;
      return OwnedFd();
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) {
      *error = errno;
      return OwnedFd();
    }
    if (so_error != 0) {
      *error = so_error;
      return OwnedFd();
    }
  }
  const int one = 1;
  // Small frames (a section start) go out at once, not after 40 ms.
  (void)::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace

absl::StatusOr<OwnedFd> ConnectTcp(const std::string& host, uint16_t port,
                                   const RetryPolicy& retry,
                                   absl::Duration connect_timeout) {
  const std::string endpoint =
      host.find(':') != std::string::npos
          ? absl::StrCat("[", host, "]:", port)
          : absl::StrCat(host, ":", port);
  absl::Duration backoff = retry.initial_backoff;
  const absl::Time start = absl::Now();
  std::string last_error;
  for (int attempt = 1; attempt <= std::max(1, retry.attempts); ++attempt) {
    if (attempt > 1) {
      absl::SleepFor(backoff);
      backoff = std::min(backoff * 2, retry.max_backoff);
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    addrinfo* list = nullptr;
    const std::string service = absl::StrCat(port);
    const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    if (rc != 0) {
      if (rc == EAI_AGAIN) {
        last_error = ::gai_strerror(rc);
        continue;
      }
      if (rc == EAI_SYSTEM) return ErrnoError(errno, "getaddrinfo", host);
      return absl::NotFoundError(absl::StrCat(
          "cannot resolve reporter server host \"", host, "\": ",
          ::gai_strerror(rc)));
    }
    int error = 0;
    OwnedFd fd;
    for (addrinfo* ai = list; ai != nullptr && !fd; ai = ai->ai_next) {
      fd = ConnectOnce(*ai, absl::Now() + connect_timeout, &error);
    }
    ::freeaddrinfo(list);
    if (fd) return fd;
    last_error = absl::StrCat(std::strerror(error), " [", ErrnoName(error), "]");
    if (error != ECONNREFUSED && error != ETIMEDOUT && error != EHOSTUNREACH &&
        error != ENETUNREACH && error != EAGAIN) {
      return ErrnoError(error, "connect to reporter server at",
                        absl::StrCat("tcp:", endpoint));
    }
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot connect to reporter server at tcp:", endpoint, " after ",
      retry.attempts, " attempts over ",
      absl::FormatDuration(absl::Trunc(absl::Now() - start, absl::Milliseconds(1))),
      ": ", last_error));
}

absl::StatusOr<bool> WaitFd(int fd, short events, absl::Time deadline) {
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    int timeout_ms;
    if (deadline == absl::InfiniteFuture()) {
      timeout_ms = -1;
    } else if (left <= absl::ZeroDuration()) {
      timeout_ms = 0;
    } else {
      timeout_ms = static_cast<int>(
          std::min<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(
                                left, absl::Milliseconds(1))),
                            1 << 30));
    }
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll");
    }
    if (rc > 0) return true;
    if (timeout_ms == 0 || absl::Now() >= deadline) return false;
  }
}

absl::Status SendAll(int fd, absl::string_view data, absl::Time deadline,
                     absl::string_view what) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      auto ready = WaitFd(fd, POLLOUT, deadline);
      if (!ready.ok()) return ready.status();
      if (!*ready) {
        return absl::DeadlineExceededError(absl::StrCat(
            what, " did not take ", data.size() - done,
            " more bytes before the deadline"));
      }
      continue;
    }
    if (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN) {
      return absl::UnavailableError(absl::StrCat(
          what, " is gone: send: ", std::strerror(errno), " [",
          ErrnoName(errno), "]"));
    }
    return ErrnoError(errno, "send to", what);
  }
  return absl::OkStatus();
}

// What ReadFrame() asks the decoder for before a recv: a page, not 64 KiB
// (a fresh decoder zero-fills what it grows by, and each page written in a
// forked child is a copy-on-write fault). The decoder hands out all of its
// free space, so after growing for a large frame reads are large again.
constexpr size_t kReadWindow = 4096;

absl::StatusOr<bool> ReadFrame(int fd, reporter::FrameDecoder* decoder,
                               google::protobuf::MessageLite* message,
                               absl::Time deadline, absl::string_view what) {
  for (;;) {
    auto got = decoder->Next(message);
    if (!got.ok()) {
      return absl::Status(got.status().code(),
                          absl::StrCat(what, ": ", got.status().message()));
    }
    if (*got) return true;
    absl::Span<char> space = decoder->WritableSpace(kReadWindow);
    const ssize_t n = ::recv(fd, space.data(), space.size(), MSG_DONTWAIT);
    if (n > 0) {
      decoder->Commit(static_cast<size_t>(n));
      continue;
    }
    if (n == 0) {
      const absl::Status finished = decoder->Finish();
      if (!finished.ok()) {
        return absl::Status(finished.code(),
                            absl::StrCat(what, ": ", finished.message()));
      }
      return false;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      auto ready = WaitFd(fd, POLLIN, deadline);
      if (!ready.ok()) return ready.status();
      if (!*ready) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, " did not answer before the deadline"));
      }
      continue;
    }
    if (errno == ECONNRESET) {
      return absl::UnavailableError(absl::StrCat(what, " reset the connection"));
    }
    return ErrnoError(errno, "recv from", what);
  }
}

}  // namespace taskfork::reporter_internal
