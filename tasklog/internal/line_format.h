// Log line prefix formatting for //tasklog (internal): the fixed part of
// every line TaskLog writes, produced without allocation, locks or locale, so
// that it can run in an at-fork child handler and in a signal handler.
//
//   char buf[kMaxPrefixSize];
//   size_t n = FormatPrefix(1795000000, 42, 'I', 4242, 4243, "main.cc", 12,
//   buf);
//   // buf[0, n) == "2026-11-18T11:06:40.000042Z I 4242 4243 main.cc:12] "
//
// The grammar is in tasklog/FORMAT.md.
#ifndef TASKFORK_TASKLOG_INTERNAL_LINE_FORMAT_H_
#define TASKFORK_TASKLOG_INTERNAL_LINE_FORMAT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace taskfork::tasklog_internal {

// Longest source file name kept in a prefix; longer names keep their last
// kMaxFileNameInPrefix characters (glog passes base names, so this is a
// safety net, not a format rule).
inline constexpr size_t kMaxFileNameInPrefix = 255;

// A buffer of this size always holds a prefix.
inline constexpr size_t kMaxPrefixSize = 96 + kMaxFileNameInPrefix;

// The glog severity letter ('I', 'W', 'E', 'F'); '?' outside [0, 3].
char SeverityLetter(int severity);

// Writes "YYYY-MM-DDTHH:MM:SS.uuuuuuZ S PID TID FILE:LINE] " (UTC) into `out`
// (at least kMaxPrefixSize bytes) and returns its length. `unix_seconds` is
// seconds since the Unix epoch (any int64 whose year fits in 4 digits is
// exact; others are clamped to 0000 / 9999), `micros` is clamped to
// [0, 999999]. Async-signal-safe; thread-safe.
size_t FormatPrefix(int64_t unix_seconds, int32_t micros, char severity,
                    pid_t pid, pid_t tid, const char* file, int line,
                    char* out);

// Writes the decimal form of `value` into `out` (at least 20 bytes) and
// returns its length. Async-signal-safe.
size_t FormatInt(int64_t value, char* out);

}  // namespace taskfork::tasklog_internal

#endif  // TASKFORK_TASKLOG_INTERNAL_LINE_FORMAT_H_
