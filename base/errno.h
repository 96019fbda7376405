// errno -> absl::Status that keeps what failed and on which path or name.
//
//   int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
//   if (fd < 0) return ErrnoError(errno, "open", path);
//   // -> NOT_FOUND: open /tmp/x: No such file or directory [ENOENT]
#ifndef TASKFORK_BASE_ERRNO_H_
#define TASKFORK_BASE_ERRNO_H_

#include <cerrno>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace taskfork {

// Returns the status absl::ErrnoToStatus maps `errno_value` to (kNotFound for
// ENOENT, kPermissionDenied for EACCES, kResourceExhausted for ENOSPC, ...)
// with the message "<operation> <subject>: <strerror> [<ENAME>]"; an empty
// `subject` is left out. `errno_value` 0 CHECK-fails: it is not an error.
absl::Status ErrnoError(int errno_value, absl::string_view operation,
                        absl::string_view subject = {});

// The symbolic name of an errno value ("ENOENT"), or "unknown errno".
// Async-signal-safe for known values (returns a static string).
const char* ErrnoName(int errno_value);

// Calls `f()` until it does not fail with EINTR; returns its last result.
// `f` returns a signed integer with -1 meaning failure (the POSIX convention).
template <typename F>
auto RetryOnEintr(F&& f) -> decltype(f()) {
  decltype(f()) result;
  do {
    result = f();
  } while (result == -1 && errno == EINTR);
  return result;
}

}  // namespace taskfork

#endif  // TASKFORK_BASE_ERRNO_H_
