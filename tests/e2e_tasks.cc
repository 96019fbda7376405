// Task functions for the end-to-end tests (tests/runner_e2e_test.cc), linked
// into //tests:e2e_runner. They synchronise with the test through FIFOs named
// in their arguments (never by sleeping): a task writes "<pid>\n" to a FIFO
// the test is reading, and waits on another FIFO the test writes to.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "runner/task_function.h"

namespace taskfork::tests {
namespace {

using runner::TaskContext;

// Writes "<pid>\n" to the FIFO at `path` (blocks until the test reads it).
absl::Status Announce(const std::string& path, pid_t pid) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  const std::string line = absl::StrCat(pid, "\n");
  const ssize_t n = ::write(fd, line.data(), line.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return ErrnoError(errno != 0 ? errno : EIO, "write", path);
  }
  return absl::OkStatus();
}

// Blocks until the test writes to (or closes) the FIFO at `path`.
absl::Status AwaitGo(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "open", path);
  char byte;
  while (::read(fd, &byte, 1) < 0 && errno == EINTR) {
  }
  ::close(fd);
  return absl::OkStatus();
}

[[noreturn]] void PauseForever() {
  while (true) ::pause();
}

TASKFORK_TASK(e2e_ok)(TaskContext& context) {
  if (context.reporter() != nullptr) {
    reporter::ScopedSection section = context.reporter()->Section("only");
    section.Step("step one");
  }
  return absl::OkStatus();
}

// Returns OK, but one of its sections failed: the task's result is the
// roll-up, Failed, in results.json and in the runner's summary and exit code.
TASKFORK_TASK(e2e_section_fails)(TaskContext& context) {
  if (context.reporter() == nullptr) {
    return absl::FailedPreconditionError("no reporter client");
  }
  reporter::ScopedSection section = context.reporter()->Section("links");
  section.SetResult(reporter::Result::kFailed, "eth0 down");
  return absl::OkStatus();
}

TASKFORK_TASK(e2e_fail)(TaskContext&) {
  return absl::FailedPreconditionError("expected 1, got 2");
}

TASKFORK_TASK(e2e_crash)(TaskContext&) {
  LOG(INFO) << "about to crash";
  ::raise(SIGSEGV);
  return absl::OkStatus();
}

// args: announce_fifo, mode ("hang" | "ignore_term" | "go" <go_fifo>)
TASKFORK_TASK(e2e_announce)(TaskContext& context) {
  const auto& args = context.args();
  if (args.size() < 2) return absl::InvalidArgumentError("args: fifo mode");
  if (args[1] == "ignore_term") ::signal(SIGTERM, SIG_IGN);
  absl::Status announced = Announce(args[0], ::getpid());
  if (!announced.ok()) return announced;
  if (args[1] == "go" && args.size() > 2) return AwaitGo(args[2]);
  PauseForever();
}

// args: announce_fifo. Forks a grandchild that ignores SIGTERM and announces
// itself; the task then hangs until it is stopped.
TASKFORK_TASK(e2e_grandchild)(TaskContext& context) {
  const std::string fifo = context.args().at(0);
  const pid_t child = ::fork();
  if (child < 0) return ErrnoError(errno, "fork");
  if (child == 0) {
    ::signal(SIGTERM, SIG_IGN);
    (void)Announce(fifo, ::getpid());
    PauseForever();
  }
  PauseForever();
}

// args: announce_fifo. Leaves a daemon behind: a double fork into a new
// session that ignores SIGTERM and announces itself; the task then passes.
TASKFORK_TASK(e2e_daemon)(TaskContext& context) {
  const std::string fifo = context.args().at(0);
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe2");
  const pid_t child = ::fork();
  if (child < 0) return ErrnoError(errno, "fork");
  if (child == 0) {
    ::setsid();
    if (::fork() == 0) {
      ::signal(SIGTERM, SIG_IGN);
      (void)Announce(fifo, ::getpid());
      (void)!::write(ready[1], "x", 1);  // Now the task may end.
      PauseForever();
    }
    ::_exit(0);
  }
  ::close(ready[1]);
  int status;
  ::waitpid(child, &status, 0);
  char byte;
  while (::read(ready[0], &byte, 1) < 0 && errno == EINTR) {
  }
  ::close(ready[0]);
  return absl::OkStatus();
}

// args: expected. Prints the prompt "e2e_prompt: answer? " to stdout, reads
// one line from stdin (the terminal under --interactive) and passes if it is
// `expected`; fails on another answer or on end of input.
TASKFORK_TASK(e2e_prompt)(TaskContext& context) {
  const std::string expected = context.args().at(0);
  std::fputs("e2e_prompt: answer? ", stdout);
  std::fflush(stdout);
  std::string line;
  char buffer[256];
  while (line.find('\n') == std::string::npos) {
    if (std::fgets(buffer, sizeof(buffer), stdin) == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("no answer: end of input after \"", line, "\""));
    }
    line += buffer;
  }
  line = std::string(absl::StripTrailingAsciiWhitespace(line));
  LOG(INFO) << "answer: " << line;
  if (line != expected) {
    return absl::FailedPreconditionError(
        absl::StrCat("expected answer \"", expected, "\", got \"", line, "\""));
  }
  std::printf("e2e_prompt: thanks\n");
  std::fflush(stdout);
  return absl::OkStatus();
}

// args: seconds, directory. Records "<start_us> <end_us>" in
// <directory>/<task id> around sleeping `seconds` (the work being timed).
TASKFORK_TASK(e2e_interval)(TaskContext& context) {
  double seconds = 0;
  if (!absl::SimpleAtod(context.args().at(0), &seconds)) {
    return absl::InvalidArgumentError("seconds");
  }
  const int64_t start = absl::ToUnixMicros(absl::Now());
  absl::SleepFor(absl::Seconds(seconds));
  const int64_t end = absl::ToUnixMicros(absl::Now());
  const std::string path =
      absl::StrCat(context.args().at(1), "/", context.id());
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return ErrnoError(errno, "fopen", path);
  std::fprintf(file, "%lld %lld\n", static_cast<long long>(start),
               static_cast<long long>(end));
  std::fclose(file);
  return absl::OkStatus();
}

}  // namespace
}  // namespace taskfork::tests
