// Test helpers for //tasklog (testonly): reading and parsing log files,
// waiting for children with a deadline, running a body in a forked child.
//
//   std::vector<Line> lines = FindLines(path, "hello");   // parsed log lines
//   ChildOutcome out = RunInChild([] { return std::string(); });
//   EXPECT_TRUE(ExitedWith(out.wait_status, 0));
#ifndef TASKFORK_TASKLOG_INTERNAL_TEST_UTIL_H_
#define TASKFORK_TASKLOG_INTERNAL_TEST_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <string>

#include "absl/status/status.h"
#include <vector>

#include "absl/strings/string_view.h"

namespace taskfork::tasklog_testing {

// The calling thread's kernel thread id.
pid_t Gettid();

// A fresh directory under $TEST_TMPDIR (or /tmp). CHECK-fails on error.
std::string MakeTempDir();

// The whole file, or "<cannot open PATH>".
std::string ReadFile(const std::string& path);

bool Exists(const std::string& path);

// `text` split at '\n', without the empty string after a final newline.
std::vector<std::string> Lines(const std::string& text);

// One parsed log line (tasklog/FORMAT.md).
struct Line {
  char severity;
  pid_t pid;
  pid_t tid;
  std::string file;
  int line;
  std::string message;
};

// Parses "YYYY-MM-DDTHH:MM:SS.uuuuuuZ S PID TID FILE:LINE] MESSAGE" strictly.
bool ParseLine(absl::string_view text, Line* out);

// The parsed lines of `path` whose message is exactly `message`.
std::vector<Line> FindLines(const std::string& path,
                            const std::string& message);

// The begin-marker paths of merged child logs in `text`, in order.
std::vector<std::string> MergedChildPaths(const std::string& text);

// Waits up to `timeout_ms` for `pid`; kills it if it does not exit (a hang,
// for example a deadlock in the child). Returns the wait status, or -1 when
// it had to be killed.
int WaitWithTimeout(pid_t pid, int timeout_ms);

// Whether `status` (from WaitWithTimeout) is a normal exit with `code`.
bool ExitedWith(int status, int code);

// What a child run by RunInChild reported.
struct ChildOutcome {
  absl::Status child;  // OK if the body returned (how the child ended if not)
  std::string report;  // empty for success, else the failures found
};

// Runs `body` in a forked child (fork/testing/run_in_child.h) and returns
// what it reported. The child's stdout and stderr may be captured into a
// log, so the report travels through the child's result pipe.
ChildOutcome RunInChild(const std::function<std::string()>& body,
                        int timeout_ms = 60000);

// Collects failures in a child (gtest's own failures are not seen by the
// parent).
class Checker {
 public:
  void Check(bool condition, const std::string& what);
  std::string failures() const { return failures_; }

 private:
  std::string failures_;
};

}  // namespace taskfork::tasklog_testing

#endif  // TASKFORK_TASKLOG_INTERNAL_TEST_UTIL_H_
