// Soak test: one job of many tasks (SOAK_TASKS, 300 by default; 5000 in
// :soak_5000_test) through the real runner binary, each task using Pcall and
// ipc queues (tests/soak/soak_tasks.cc). Checks that the long-lived processes
// stay flat and that nothing is left behind:
//   - every task is Passed in results.json, and sampled once;
//   - the runner's and the reporter server's open descriptors and threads:
//     the most seen in the last quarter of the tasks is at most the most seen
//     in the first quarter plus kFdSlack / kThreadSlack (a leak of one
//     descriptor per task shows as +N/2);
//   - their RSS: the median of the last quarter is at most the median of the
//     first quarter plus kRssSlackKb and a per-task allowance for each task in
//     between: kRunnerRssPerTaskKb (the runner allocates its tasks up front
//     and measured flat) and kReporterRssPerTaskKb (the reporter keeps each
//     finished task's report nodes until it writes results.json: about
//     2.5 KiB per task of this job, measured); a leaked buffer per task, or
//     a leak of more than the allowance, fails;
//   - /dev/shm: never more than max_parallel of the tasks' named queue
//     segments at once, none after the run;
//   - after the run: no process left (this test is a child subreaper, so
//     anything the run left behind is our child), no reporter socket.
// Samples are taken by the tasks at their start, so they follow progress
// through the job, never time; timing is printed, never checked.
#include <dirent.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/sanitizers.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;
using ::taskfork::testing::IsOk;

constexpr int kMaxParallel = 2;
// Tolerances (see the file comment and README.md).
constexpr int kFdSlack = 2;
constexpr int kThreadSlack = 1;
constexpr int64_t kRssSlackKb = 4096;
constexpr int64_t kRunnerRssPerTaskKb = 1;
constexpr int64_t kReporterRssPerTaskKb = 4;

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/taskfork/", path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  int parsed = 0;
  return value != nullptr && absl::SimpleAtoi(value, &parsed) && parsed > 0
             ? parsed
             : fallback;
}

// One line of the samples file (see soak_tasks.cc).
struct Sample {
  int64_t runner_rss_kb = 0;
  int runner_fds = 0;
  int runner_threads = 0;
  int64_t reporter_rss_kb = 0;
  int reporter_fds = 0;
  int shm_segments = 0;
  std::string task_id;
};

std::vector<Sample> ReadSamples(const std::string& path) {
  std::vector<Sample> samples;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Sample s;
    fields >> s.runner_rss_kb >> s.runner_fds >> s.runner_threads >>
        s.reporter_rss_kb >> s.reporter_fds >> s.shm_segments >> s.task_id;
    EXPECT_FALSE(fields.fail()) << "bad sample line: " << line;
    samples.push_back(s);
  }
  return samples;
}

template <typename T>
T Max(const std::vector<Sample>& samples, T Sample::*field) {
  T most = samples.front().*field;
  for (const Sample& s : samples) most = std::max(most, s.*field);
  return most;
}

template <typename T>
T Median(const std::vector<Sample>& samples, T Sample::*field) {
  std::vector<T> values;
  for (const Sample& s : samples) values.push_back(s.*field);
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Entries of /dev/shm whose name starts with `prefix`.
std::vector<std::string> Segments(const std::string& prefix) {
  std::vector<std::string> found;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return found;
  while (const dirent* entry = ::readdir(dir)) {
    if (absl::StartsWith(entry->d_name, prefix)) found.push_back(entry->d_name);
  }
  ::closedir(dir);
  return found;
}

// Reaps what the run left behind (we are a child subreaper); returns the
// pids of descendants that were still running, after killing them.
std::vector<pid_t> LeftoverProcesses() {
  std::vector<pid_t> alive;
  for (;;) {
    int status;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0) continue;  // a zombie: it ended, nothing is left of it
    if (pid < 0) break;     // ECHILD: no child at all
    // Children exist but none has ended: find and kill them.
    DIR* proc = ::opendir("/proc");
    while (const dirent* entry = ::readdir(proc)) {
      pid_t candidate;
      if (!absl::SimpleAtoi(entry->d_name, &candidate)) continue;
      const std::string stat = ReadFile(absl::StrCat("/proc/", candidate, "/stat"));
      const size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      const std::vector<std::string> fields =
          absl::StrSplit(stat.substr(close + 2), ' ');
      pid_t ppid;
      if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) &&
          ppid == ::getpid()) {
        alive.push_back(candidate);
        ::kill(candidate, SIGKILL);
      }
    }
    ::closedir(proc);
    if (alive.empty()) break;
    while (::waitpid(-1, &status, 0) > 0) {
    }
    break;
  }
  return alive;
}

TEST(Soak, ManyTasksWithPcallAndQueuesStayFlat) {
  const int tasks = EnvInt("SOAK_TASKS", 300);
  ASSERT_GE(tasks, 8) << "SOAK_TASKS: at least 8 tasks (two per quarter)";
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);

  const std::string dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/soak");
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string samples_path = dir + "/samples";
  const std::string shm_prefix = absl::StrCat("soak", ::getpid());
  std::string spec = absl::StrCat("name: \"soak\"\nmax_parallel: ", kMaxParallel,
                                  "\ndefault_timeout: \"300s\"\n"
                                  "termination_grace: \"2s\"\n");
  for (int i = 1; i <= tasks; ++i) {
    absl::StrAppend(&spec, absl::StrFormat("task { id: \"s%05d\" ", i),
                    "function { name: \"soak_work\" args: \"", shm_prefix,
                    "\" args: \"", samples_path, "\" args: \"soak\" } }\n");
  }
  const std::string spec_path = dir + "/soak.textpb";
  std::ofstream(spec_path) << spec;

  const std::string runner = Runfile("tests/soak/soak_runner");
  const std::string out = dir + "/stdout";
  const std::string err = dir + "/stderr";
  const std::string runs = dir + "/runs";
  if (kAddressSanitizer) {
    // ASan keeps freed memory in a quarantine (256 MiB by default) before it
    // reuses it, so RSS grows by design; without it the RSS checks below
    // still see real growth (and LeakSanitizer sees leaks).
    const char* options = std::getenv("ASAN_OPTIONS");
    const std::string with = absl::StrCat(options == nullptr ? "" : options,
                                          options == nullptr ? "" : ":",
                                          "quarantine_size_mb=0");
    ASSERT_EQ(::setenv("ASAN_OPTIONS", with.c_str(), 1), 0);
  }
  const absl::Time start = absl::Now();
  auto process = Process::Start({}, [&]() -> int {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0 || err_fd < 0) return 120;
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    const std::string runinfo = "--runinfo_dir=" + runs;
    ::execl(runner.c_str(), runner.c_str(), "--no_progress", runinfo.c_str(),
            spec_path.c_str(), static_cast<char*>(nullptr));
    return 121;
  });
  ASSERT_THAT(process, IsOk());
  const auto exit = process->Join(absl::Minutes(30));
  ASSERT_THAT(exit, IsOk());
  const absl::Duration elapsed = absl::Now() - start;
  EXPECT_FALSE(exit->signaled()) << "runner killed by signal " << exit->signal;
  EXPECT_EQ(exit->exit_code, 0) << "stdout:\n"
                                << ReadFile(out).substr(0, 20000)
                                << "\nstderr:\n"
                                << ReadFile(err).substr(0, 20000);

  // Nothing left behind.
  EXPECT_THAT(LeftoverProcesses(), ::testing::IsEmpty())
      << "processes of the run were still running after the runner ended";
  EXPECT_THAT(Segments(absl::StrCat("taskfork-", shm_prefix, "-")),
              ::testing::IsEmpty());
  struct stat st;
  EXPECT_NE(::lstat((runs + "/latest/reporter.sock").c_str(), &st), 0)
      << "the reporter socket outlived the run";

  // Every task is in results.json, Passed.
  Struct results;
  const std::string json = ReadFile(runs + "/latest/results.json");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(json, &results).ok())
      << json.substr(0, 2000);
  const auto& reported = results.fields().at("report").struct_value().fields()
                             .at("tasks").list_value().values();
  EXPECT_EQ(reported.size(), tasks);
  int passed = 0;
  for (const Value& task : reported) {
    const auto& fields = task.struct_value().fields();
    const std::string result =
        fields.at("result").struct_value().fields().at("value").string_value();
    if (result == "passed") {
      ++passed;
    } else {
      ADD_FAILURE() << "task " << fields.at("id").string_value() << ": "
                    << result << " "
                    << ReadFile(absl::StrCat(runs, "/latest/TaskLog.",
                                             fields.at("id").string_value()))
                           .substr(0, 4000);
    }
  }
  EXPECT_EQ(passed, tasks);

  // Flat: first quarter against last quarter of the samples.
  const std::vector<Sample> samples = ReadSamples(samples_path);
  ASSERT_EQ(samples.size(), tasks) << "every task samples once";
  const size_t quarter = samples.size() / 4;
  const std::vector<Sample> first(samples.begin(), samples.begin() + quarter);
  const std::vector<Sample> last(samples.end() - quarter, samples.end());
  const int64_t tasks_between = samples.size() - quarter;

  const int runner_fds_first = Max(first, &Sample::runner_fds);
  const int runner_fds_last = Max(last, &Sample::runner_fds);
  const int reporter_fds_first = Max(first, &Sample::reporter_fds);
  const int reporter_fds_last = Max(last, &Sample::reporter_fds);
  const int64_t runner_rss_first = Median(first, &Sample::runner_rss_kb);
  const int64_t runner_rss_last = Median(last, &Sample::runner_rss_kb);
  const int64_t reporter_rss_first = Median(first, &Sample::reporter_rss_kb);
  const int64_t reporter_rss_last = Median(last, &Sample::reporter_rss_kb);
  EXPECT_LE(runner_fds_last, runner_fds_first + kFdSlack) << "runner fd leak";
  EXPECT_LE(reporter_fds_last, reporter_fds_first + kFdSlack)
      << "reporter server fd leak";
  EXPECT_LE(Max(last, &Sample::runner_threads),
            Max(first, &Sample::runner_threads) + kThreadSlack);
  EXPECT_LE(runner_rss_last, runner_rss_first + kRssSlackKb +
                                 kRunnerRssPerTaskKb * tasks_between)
      << "runner memory grows";
  EXPECT_LE(reporter_rss_last, reporter_rss_first + kRssSlackKb +
                                   kReporterRssPerTaskKb * tasks_between)
      << "reporter server memory grows";
  EXPECT_LE(Max(samples, &Sample::shm_segments), kMaxParallel);

  std::printf(
      "soak: %d tasks (max_parallel %d) in %.1f s\n"
      "  runner:   RSS median %lld kB (first quarter) -> %lld kB (last), "
      "fds max %d -> %d, threads max %d -> %d\n"
      "  reporter: RSS median %lld kB -> %lld kB, fds max %d -> %d\n"
      "  /dev/shm: at most %d of the tasks' segments at once, %zu left\n",
      tasks, kMaxParallel, absl::ToDoubleSeconds(elapsed),
      static_cast<long long>(runner_rss_first),
      static_cast<long long>(runner_rss_last), runner_fds_first,
      runner_fds_last, Max(first, &Sample::runner_threads),
      Max(last, &Sample::runner_threads),
      static_cast<long long>(reporter_rss_first),
      static_cast<long long>(reporter_rss_last), reporter_fds_first,
      reporter_fds_last, Max(samples, &Sample::shm_segments),
      Segments(absl::StrCat("taskfork-", shm_prefix, "-")).size());
}

}  // namespace
}  // namespace taskfork
