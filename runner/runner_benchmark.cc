// Per-task overhead of a whole job, end to end, against the floor and the
// peer, in one binary:
//   BM_RawFork_Tasks              the floor: N raw forks (fork + _exit(0) +
//                                 waitpid), 2 at a time and 1 at a time; the
//                                 cheaper is the floor (see below)
//   BM_Runtime_Tasks              taskfork: Runtime (runinfo, JobLog, reporter
//                                 server, TaskLog and report client per task,
//                                 results.json + xunit.xml) with N no-op tasks,
//                                 max_parallel 2
//   BM_PythonMultiprocessing_Tasks  tools/bench/runner_multiprocessing.py: a
//                                 fork Process per task, one log file each,
//                                 results through a Queue, 2 at once
// Each runs --tasks=N tasks (default 1000) once per iteration and reports
// `us_per_task` (wall clock); the ratios are printed at the end. CPU time
// and page faults per task (rusage of this process and of its reaped
// children) are counters, steadier than wall clock on a shared machine.
//
// The floor is honest, not inflated:
// - Its forks run in a process forked from main() before any benchmark ran
//   (the same binary and mappings, a heap as small as at start), so none of
//   taskfork's at-fork handlers (TaskLog's, the registry's, ... which stay
//   registered once a Runtime ran) runs for them: that cost is taskfork's.
//   The counter `at_fork_registrations` (0) shows it.
// - "At most 2 at a time" may also be done 1 at a time, and on this VM that
//   is cheaper per fork (two vCPUs forking and exiting at once pay
//   cross-CPU TLB shootdowns and page zeroing; runner/README.md): the floor
//   is the cheaper of the two, both are counters.
//
//   tools/bazel run -c opt //runner:runner_benchmark
//   tools/bazel run -c opt //runner:runner_benchmark -- --tasks=200
//
// The runs (runinfo directories, the Python peer's logs) go to a new
// directory under $TMPDIR (default /tmp), removed at the end unless
// RUNNER_BENCHMARK_KEEP is set; TMPDIR=/dev/shm takes the disk out of the
// figures (runner/README.md, Benchmark).
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "fork/at_fork.h"
#include "glog/logging.h"
#include "runner/runtime.h"

namespace taskfork::runner {
namespace {

int g_tasks = 1000;
std::string g_python_script;
std::string g_work_dir;
// Seconds per task measured by each benchmark (last run), for the ratios.
double g_floor = 0, g_floor_2 = 0, g_floor_1 = 0, g_taskfork = 0, g_python = 0;

// CPU time and minor page faults of this process and of its reaped children.
struct Usage {
  static Usage Now() {
    rusage self, children;
    ::getrusage(RUSAGE_SELF, &self);
    ::getrusage(RUSAGE_CHILDREN, &children);
    auto cpu = [](const rusage& r) {
      return absl::ToDoubleSeconds(absl::DurationFromTimeval(r.ru_utime) +
                                   absl::DurationFromTimeval(r.ru_stime));
    };
    return {cpu(self), cpu(children), static_cast<double>(self.ru_minflt),
            static_cast<double>(children.ru_minflt)};
  }
  Usage Since(const Usage& before) const {
    return {self_cpu - before.self_cpu, children_cpu - before.children_cpu,
            self_faults - before.self_faults,
            children_faults - before.children_faults};
  }
  double self_cpu, children_cpu;  // seconds
  double self_faults, children_faults;
};

// One run of the floor, as measured in the floor process (totals).
struct FloorRun {
  double seconds = 0;
  Usage usage{};
  int at_fork_registrations = 0;
};

// `tasks` raw forks, at most `parallel` at once, in this process.
FloorRun RawForks(int tasks, int parallel) {
  const Usage before = Usage::Now();
  const absl::Time start = absl::Now();
  int started = 0, running = 0;
  while (started < tasks || running > 0) {
    while (started < tasks && running < parallel) {
      const pid_t pid = ::fork();
      if (pid == 0) ::_exit(0);
      if (pid < 0) return {};
      ++started;
      ++running;
    }
    int status;
    if (::waitpid(-1, &status, 0) > 0) --running;
  }
  FloorRun run;
  run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  run.usage = Usage::Now().Since(before);
  run.at_fork_registrations = AtForkRegistrationCount();
  return run;
}

// The process the floor's forks run in: forked from main() before any
// benchmark, it reads {tasks, parallel} requests from a pipe and answers
// with a FloorRun; it exits when the pipe closes. Not our child (a double
// fork): a Runtime's Supervisor would end any child no Process owns.
class FloorProcess {
 public:
  bool Start() {
    int request[2], reply[2];
    if (::pipe2(request, O_CLOEXEC) != 0 || ::pipe2(reply, O_CLOEXEC) != 0) {
      return false;
    }
    const pid_t middle = ::fork();
    if (middle < 0) return false;
    if (middle == 0) {
      if (::fork() != 0) ::_exit(0);  // the floor process is re-parented
      ::close(request[1]);
      ::close(reply[0]);
      int ask[2];
      while (ReadAll(request[0], ask, sizeof(ask))) {
        const FloorRun run = RawForks(ask[0], ask[1]);
        if (!WriteAll(reply[1], &run, sizeof(run))) break;
      }
      ::_exit(0);
    }
    ::waitpid(middle, nullptr, 0);
    ::close(request[0]);
    ::close(reply[1]);
    request_fd_ = request[1];
    reply_fd_ = reply[0];
    return true;
  }
  // Closes the request pipe and waits for the floor process to end (its end
  // of the reply pipe closes as it exits).
  ~FloorProcess() {
    if (request_fd_ < 0) return;
    ::close(request_fd_);
    char byte;
    for (;;) {
      const ssize_t n = ::read(reply_fd_, &byte, 1);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
    ::close(reply_fd_);
  }
  std::optional<FloorRun> Run(int tasks, int parallel) {
    if (request_fd_ < 0) return std::nullopt;
    const int ask[2] = {tasks, parallel};
    FloorRun run;
    if (!WriteAll(request_fd_, ask, sizeof(ask)) ||
        !ReadAll(reply_fd_, &run, sizeof(run)) || run.seconds <= 0) {
      return std::nullopt;
    }
    return run;
  }

 private:
  static bool ReadAll(int fd, void* data, size_t size) {
    char* p = static_cast<char*>(data);
    while (size > 0) {
      const ssize_t n = ::read(fd, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  static bool WriteAll(int fd, const void* data, size_t size) {
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
      const ssize_t n = ::write(fd, p, size);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
  int request_fd_ = -1;
  int reply_fd_ = -1;
};

FloorProcess* g_floor_process = nullptr;

void SetPerTaskCounters(benchmark::State& state, const Usage& usage) {
  state.counters["parent_cpu_us_per_task"] = usage.self_cpu / g_tasks * 1e6;
  state.counters["child_cpu_us_per_task"] = usage.children_cpu / g_tasks * 1e6;
  state.counters["cpu_us_per_task"] =
      (usage.self_cpu + usage.children_cpu) / g_tasks * 1e6;
  state.counters["parent_faults_per_task"] = usage.self_faults / g_tasks;
  state.counters["child_faults_per_task"] = usage.children_faults / g_tasks;
}

void BM_RawFork_Tasks(benchmark::State& state) {
  for (auto _ : state) {
    const std::optional<FloorRun> two = g_floor_process->Run(g_tasks, 2);
    const std::optional<FloorRun> one = g_floor_process->Run(g_tasks, 1);
    if (!two.has_value() || !one.has_value()) {
      state.SkipWithError("the floor process failed (fork, pipe)");
      return;
    }
    g_floor_2 = two->seconds / g_tasks;
    g_floor_1 = one->seconds / g_tasks;
    const FloorRun& cheaper = g_floor_1 < g_floor_2 ? *one : *two;
    g_floor = std::min(g_floor_1, g_floor_2);
    SetPerTaskCounters(state, cheaper.usage);
    state.counters["at_fork_registrations"] = cheaper.at_fork_registrations;
  }
  state.counters["us_per_task"] = g_floor * 1e6;
  state.counters["us_per_task_2_at_once"] = g_floor_2 * 1e6;
  state.counters["us_per_task_1_at_once"] = g_floor_1 * 1e6;
}
BENCHMARK(BM_RawFork_Tasks)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Runtime_Tasks(benchmark::State& state) {
  int run = 0;
  for (auto _ : state) {
    const Usage before = Usage::Now();
    const absl::Time start = absl::Now();
    RuntimeOptions options;
    options.job_name = absl::StrCat("bench", run++);
    options.runinfo_root = g_work_dir + "/runs";
    options.console_fd = -1;
    options.screen_log_severity = std::nullopt;
    auto runtime = Runtime::Create(std::move(options));
    if (!runtime.ok()) {
      state.SkipWithError(runtime.status().ToString().c_str());
      return;
    }
    for (int i = 0; i < g_tasks; ++i) {
      TaskDefinition task;
      task.id = absl::StrCat("t", i);
      task.body = [](TaskContext&) { return absl::OkStatus(); };
      if (!(*runtime)->AddTask(std::move(task)).ok()) {
        state.SkipWithError("AddTask failed");
        return;
      }
    }
    (*runtime)->RunAll(2);
    const int code = (*runtime)->Finish();
    runtime->reset();
    g_taskfork = absl::ToDoubleSeconds(absl::Now() - start) / g_tasks;
    SetPerTaskCounters(state, Usage::Now().Since(before));
    if (code != kExitAllSucceeded) {
      state.SkipWithError(absl::StrCat("job exit code ", code).c_str());
      return;
    }
  }
  state.counters["us_per_task"] = g_taskfork * 1e6;
}
BENCHMARK(BM_Runtime_Tasks)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_PythonMultiprocessing_Tasks(benchmark::State& state) {
  for (auto _ : state) {
    const std::string command =
        absl::StrCat("python3 ", g_python_script, " --tasks ", g_tasks,
                     " --parallel 2 --dir ", g_work_dir);
    FILE* pipe = ::popen(command.c_str(), "r");
    if (pipe == nullptr) {
      state.SkipWithError("cannot run python3");
      return;
    }
    char line[512] = {};
    const bool read = std::fgets(line, sizeof(line), pipe) != nullptr;
    const int status = ::pclose(pipe);
    // {"tasks": N, "seconds": S, "seconds_per_task": X}
    const char* key = std::strstr(line, "\"seconds_per_task\": ");
    double per_task = 0;
    if (!read || status != 0 || key == nullptr ||
        std::sscanf(key, "\"seconds_per_task\": %lf", &per_task) != 1) {
      state.SkipWithError(
          absl::StrCat("python peer failed: ", command, " -> ", line).c_str());
      return;
    }
    g_python = per_task;
  }
  state.counters["us_per_task"] = g_python * 1e6;
}
BENCHMARK(BM_PythonMultiprocessing_Tasks)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace taskfork::runner

int main(int argc, char** argv) {
  using namespace taskfork::runner;  // NOLINT
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--tasks=", 8) == 0) {
      if (!absl::SimpleAtoi(argv[i] + 8, &g_tasks) || g_tasks < 1) {
        std::fprintf(stderr, "--tasks wants a positive number\n");
        return 2;
      }
    } else {
      rest.push_back(argv[i]);
    }
  }
  int rest_argc = static_cast<int>(rest.size());
  // The floor's process first: nothing of taskfork has run in it.
  FloorProcess floor;
  if (!floor.Start()) {
    std::perror("starting the floor process");
    return 1;
  }
  g_floor_process = &floor;
  google::InitGoogleLogging(argv[0]);
  benchmark::Initialize(&rest_argc, rest.data());

  // The peer script: beside this binary in the runfiles, or in the source tree.
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* runfiles = std::getenv("RUNFILES_DIR");
  g_python_script = absl::StrCat(
      srcdir != nullptr ? srcdir
                        : runfiles != nullptr
                              ? runfiles
                              : absl::StrCat(argv[0], ".runfiles").c_str(),
      "/taskfork/tools/bench/runner_multiprocessing.py");
  const char* tmpdir = std::getenv("TMPDIR");
  std::string work = absl::StrCat(
      tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp",
      "/runner_benchmark.XXXXXX");
  const std::string template_path = work;  // mkdtemp rewrites `work`
  if (::mkdtemp(work.data()) == nullptr) {
    std::perror(("mkdtemp " + template_path).c_str());
    return 1;
  }
  g_work_dir = work;

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("\n%d tasks, max_parallel 2, per task: raw fork %.1f us (2 at "
              "once %.1f us, 1 at once %.1f us), taskfork %.1f us, Python "
              "multiprocessing %.1f us\n",
              g_tasks, g_floor * 1e6, g_floor_2 * 1e6, g_floor_1 * 1e6,
              g_taskfork * 1e6, g_python * 1e6);
  if (g_floor > 0 && g_taskfork > 0) {
    std::printf("taskfork / raw fork floor: %.2fx\n", g_taskfork / g_floor);
  }
  if (g_taskfork > 0 && g_python > 0) {
    std::printf("Python multiprocessing / taskfork: %.1fx\n",
                g_python / g_taskfork);
  }
  // Leave the runs for inspection only when asked.
  if (std::getenv("RUNNER_BENCHMARK_KEEP") == nullptr) {
    std::error_code error;
    std::filesystem::remove_all(g_work_dir, error);
  }
  return 0;
}
