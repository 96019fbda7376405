#include "tasklog/internal/test_util.h"

#include "fork/testing/run_in_child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "glog/logging.h"

namespace taskfork::tasklog_testing {

pid_t Gettid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// A fresh directory under TEST_TMPDIR.
std::string MakeTempDir() {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string pattern =
      absl::StrCat(base != nullptr ? base : "/tmp", "/tasklog.XXXXXX");
  CHECK(::mkdtemp(pattern.data()) != nullptr) << "mkdtemp " << pattern;
  return pattern;
}

std::string ReadFile(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<cannot open " + path + ">";
  char buffer[65536];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) text.append(buffer, n);
  ::close(fd);
  return text;
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  return lines;
}

// Parses "YYYY-MM-DDTHH:MM:SS.uuuuuuZ S PID TID FILE:LINE] MESSAGE" strictly.
bool ParseLine(absl::string_view text, Line* out) {
  static constexpr absl::string_view kTimeShape =
      "dddd-dd-ddTdd:dd:dd.ddddddZ ";
  if (text.size() < kTimeShape.size()) return false;
  for (size_t i = 0; i < kTimeShape.size(); ++i) {
    const char want = kTimeShape[i];
    if (want == 'd' ? !absl::ascii_isdigit(text[i]) : text[i] != want)
      return false;
  }
  text.remove_prefix(kTimeShape.size());
  if (text.size() < 2 || std::strchr("IWEF", text[0]) == nullptr ||
      text[1] != ' ') {
    return false;
  }
  out->severity = text[0];
  text.remove_prefix(2);
  auto take_number = [&text](char end, int* value) {
    const size_t stop = text.find(end);
    if (stop == absl::string_view::npos || stop == 0) return false;
    for (size_t i = 0; i < stop; ++i) {
      if (!absl::ascii_isdigit(text[i])) return false;
    }
    if (!absl::SimpleAtoi(text.substr(0, stop), value)) return false;
    text.remove_prefix(stop + 1);
    return true;
  };
  int pid, tid;
  if (!take_number(' ', &pid) || !take_number(' ', &tid)) return false;
  out->pid = pid;
  out->tid = tid;
  const size_t bracket = text.find("] ");
  if (bracket == absl::string_view::npos) return false;
  const absl::string_view location = text.substr(0, bracket);
  const size_t colon = location.rfind(':');
  if (colon == absl::string_view::npos || colon == 0 ||
      location.substr(0, colon).find_first_of(" :") !=
          absl::string_view::npos ||
      !absl::SimpleAtoi(location.substr(colon + 1), &out->line)) {
    return false;
  }
  out->file = std::string(location.substr(0, colon));
  out->message = std::string(text.substr(bracket + 2));
  return true;
}

// The parsed lines of `path` whose message is `message`.
std::vector<Line> FindLines(const std::string& path,
                            const std::string& message) {
  std::vector<Line> found;
  for (const std::string& text : Lines(ReadFile(path))) {
    Line line;
    if (ParseLine(text, &line) && line.message == message)
      found.push_back(line);
  }
  return found;
}

// Waits up to `timeout_ms` for `pid`; kills it if it does not exit (a hang,
// for example a deadlock in the child). Returns the wait status, or -1 when
// it had to be killed.
int WaitWithTimeout(pid_t pid, int timeout_ms) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  CHECK_GE(pidfd, 0) << "pidfd_open: " << std::strerror(errno);
  pollfd p{pidfd, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&p, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  ::close(pidfd);
  if (ready == 0) ::kill(pid, SIGKILL);
  int status = 0;
  CHECK_EQ(::waitpid(pid, &status, 0), pid);
  return ready == 0 ? -1 : status;
}

bool ExitedWith(int status, int code) {
  return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code;
}

ChildOutcome RunInChild(const std::function<std::string()>& body,
                        int timeout_ms) {
  // The report comes back as the message of a kUnknown status.
  const absl::Status status = testing::RunInChild(
      [&body]() -> absl::Status {
        const std::string report = body();
        return report.empty() ? absl::OkStatus() : absl::UnknownError(report);
      },
      absl::Milliseconds(timeout_ms));
  ChildOutcome outcome;
  if (absl::IsUnknown(status) &&
      !absl::StartsWith(status.message(), "child pid ")) {
    outcome.report = std::string(status.message());
  } else {
    outcome.child = status;
  }
  return outcome;
}

void Checker::Check(bool condition, const std::string& what) {
  if (!condition) absl::StrAppend(&failures_, what, "\n");
}

std::vector<std::string> MergedChildPaths(const std::string& text) {
  static constexpr absl::string_view kBegin = ">>>> Begin child log ";
  std::vector<std::string> paths;
  for (const std::string& line : Lines(text)) {
    if (absl::StartsWith(line, kBegin))
      paths.push_back(line.substr(kBegin.size()));
  }
  return paths;
}

}  // namespace taskfork::tasklog_testing
