// The soak test's task function (tests/soak/soak_test.cc), linked into
// //tests/soak:soak_runner.
//
// soak_work(shm_prefix, samples_path, job_name) does two things:
//   1. Samples the processes that live through the whole job, as seen from
//      this task at its start: the runner (this process's parent) and the
//      reporter server (its pid is in JobLog.<job_name>): VmRSS, thread count
//      and open descriptors of each, and how many /dev/shm segments named
//      "taskfork-<shm_prefix>-*" exist. It appends one line to samples_path
//      (one write() with O_APPEND: lines of parallel tasks never interleave):
//        runner_rss_kb runner_fds runner_threads reporter_rss_kb reporter_fds
//        shm_segments task_id
//      Sampling at each task's start paces the samples by progress through
//      the job, not by time.
//   2. Real work through the libraries a task uses: a report section, an
//      anonymous ipc::Queue of work items and a named one (a /dev/shm
//      segment) for results, and a Pcall whose two forked children (each
//      logging into the task's log) drain the work queue and answer through
//      the named queue. The task checks every result arrived exactly once.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "fork/pcall.h"
#include "glog/logging.h"
#include "ipc/queue.h"
#include "ipc/typed.h"
#include "ipc/shared_memory.h"
#include "reporter/client.h"
#include "runner/task_function.h"

namespace taskfork::tests {
namespace {

using runner::TaskContext;

// Work items per task, squared by the Pcall children.
constexpr int kItems = 64;

struct ProcessSample {
  int64_t rss_kb = -1;
  int fds = -1;
  int threads = -1;
};

absl::StatusOr<ProcessSample> SampleProcess(pid_t pid) {
  ProcessSample sample;
  const std::string status_path = absl::StrCat("/proc/", pid, "/status");
  std::ifstream status(status_path);
  if (!status) return ErrnoError(errno != 0 ? errno : ENOENT, "open", status_path);
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest(line);
    int64_t value = 0;
    if (absl::ConsumePrefix(&rest, "VmRSS:") &&
        absl::SimpleAtoi(absl::StripSuffix(absl::StripAsciiWhitespace(rest), " kB"),
                         &value)) {
      sample.rss_kb = value;
    } else if (absl::ConsumePrefix(&rest, "Threads:") &&
               absl::SimpleAtoi(absl::StripAsciiWhitespace(rest), &value)) {
      sample.threads = static_cast<int>(value);
    }
  }
  const std::string fd_path = absl::StrCat("/proc/", pid, "/fd");
  DIR* dir = ::opendir(fd_path.c_str());
  if (dir == nullptr) return ErrnoError(errno, "opendir", fd_path);
  sample.fds = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++sample.fds;
  }
  ::closedir(dir);
  if (sample.rss_kb < 0 || sample.threads < 0) {
    return absl::InternalError(absl::StrCat("no VmRSS/Threads in ", status_path));
  }
  return sample;
}

// Segments in /dev/shm whose name starts with `prefix`.
absl::StatusOr<int> CountSegments(const std::string& prefix) {
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return ErrnoError(errno, "opendir", "/dev/shm");
  int count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (absl::StartsWith(entry->d_name, prefix)) ++count;
  }
  ::closedir(dir);
  return count;
}

// The reporter server's pid, from the line the runner logs at its start.
absl::StatusOr<pid_t> ReporterPid(const std::string& joblog) {
  std::ifstream in(joblog, std::ios::binary);
  if (!in) return ErrnoError(errno != 0 ? errno : ENOENT, "open", joblog);
  std::string head(64 * 1024, '\0');  // the line is near the top
  in.read(head.data(), head.size());
  head.resize(in.gcount());
  const std::string kMarker = "reporter server pid ";
  const size_t at = head.find(kMarker);
  if (at == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("no \"", kMarker, "\" in ", joblog));
  }
  const size_t start = at + kMarker.size();
  const size_t end = head.find_first_not_of("0123456789", start);
  pid_t pid = 0;
  if (!absl::SimpleAtoi(head.substr(start, end - start), &pid)) {
    return absl::DataLossError(absl::StrCat("bad reporter pid in ", joblog));
  }
  return pid;
}

absl::Status AppendLine(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "open", path);
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int error = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size())) {
    return ErrnoError(n < 0 ? error : EIO, "write", path);
  }
  return absl::OkStatus();
}

absl::Status Sample(TaskContext& context, const std::string& shm_prefix,
                    const std::string& samples, const std::string& job) {
  const pid_t runner_pid = ::getppid();
  std::string comm;
  std::getline(std::ifstream(absl::StrCat("/proc/", runner_pid, "/comm")), comm);
  if (comm != "soak_runner") {
    return absl::FailedPreconditionError(absl::StrCat(
        "the task's parent (pid ", runner_pid, ") is \"", comm,
        "\", not the runner soak_runner: the sample would measure the wrong "
        "process"));
  }
  TASKFORK_ASSIGN_OR_RETURN(const ProcessSample runner, SampleProcess(runner_pid));
  TASKFORK_ASSIGN_OR_RETURN(
      const pid_t reporter_pid,
      ReporterPid(absl::StrCat(context.runinfo_dir(), "/JobLog.", job)));
  TASKFORK_ASSIGN_OR_RETURN(const ProcessSample reporter,
                            SampleProcess(reporter_pid));
  TASKFORK_ASSIGN_OR_RETURN(const int segments,
                            CountSegments(absl::StrCat("taskfork-", shm_prefix, "-")));
  return AppendLine(samples, absl::StrCat(runner.rss_kb, " ", runner.fds, " ",
                                          runner.threads, " ", reporter.rss_kb,
                                          " ", reporter.fds, " ", segments, " ",
                                          context.id(), "\n"));
}

// A Pcall child: squares work items until the work queue is closed and
// drained, answering through the results queue; returns how many it did.
int64_t Square(ipc::Queue& work, ipc::Queue& results, int child) {
  int64_t done = 0;
  for (;;) {
    absl::StatusOr<int64_t> item = ipc::GetValue<int64_t>(work, absl::Seconds(60));
    if (!item.ok()) break;  // kOutOfRange: closed and drained
    if (!ipc::PutValue(results, *item * *item, absl::Seconds(60)).ok()) return -1;
    ++done;
  }
  LOG(INFO) << "soak child " << child << " squared " << done << " items";
  return done;
}

TASKFORK_TASK(soak_work)(TaskContext& context) {
  if (context.args().size() != 3) {
    return absl::InvalidArgumentError("args: shm_prefix samples_path job_name");
  }
  const std::string& shm_prefix = context.args()[0];
  TASKFORK_RETURN_IF_ERROR(
      Sample(context, shm_prefix, context.args()[1], context.args()[2]));

  std::optional<reporter::ScopedSection> section;
  if (context.reporter() != nullptr) section.emplace(context.reporter()->Section("squares"));

  TASKFORK_ASSIGN_OR_RETURN(ipc::Queue work,
                            ipc::Queue::Create({.capacity_bytes = 16 << 10}));
  TASKFORK_ASSIGN_OR_RETURN(
      ipc::Queue results,
      ipc::Queue::Create({.capacity_bytes = 16 << 10,
                          .name = ipc::SharedMemory::UniqueName(shm_prefix)}));
  int64_t expected = 0;
  for (int64_t i = 1; i <= kItems; ++i) {
    TASKFORK_RETURN_IF_ERROR(ipc::PutValue(work, i));
    expected += i * i;
  }
  work.Close();
  TASKFORK_ASSIGN_OR_RETURN(
      const std::vector<int64_t> done,
      Pcall([&](int child) { return Square(work, results, child); },
            std::vector<int>{0, 1}, {.timeout = absl::Seconds(120)}));
  int64_t sum = 0;
  int received = 0;
  for (;;) {
    absl::StatusOr<std::string> message = results.TryGet();
    if (!message.ok()) break;  // kUnavailable: empty
    TASKFORK_ASSIGN_OR_RETURN(const int64_t square,
                              serialize::Decode<int64_t>(*message));
    sum += square;
    ++received;
  }
  if (done[0] < 0 || done[1] < 0 || done[0] + done[1] != kItems ||
      received != kItems || sum != expected) {
    return absl::DataLossError(absl::StrCat(
        "children did ", done[0], " + ", done[1], " items; received ", received,
        " results summing to ", sum, ", expected ", kItems, " summing to ",
        expected));
  }
  if (section.has_value()) section->Step("all squares arrived once");
  return absl::OkStatus();
}

}  // namespace
}  // namespace taskfork::tests
