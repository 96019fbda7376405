// Per-task overhead of a whole job, end to end, against the floor and the
// peer, in one binary:
//   BM_RawFork_Tasks              the floor: fork + _exit + waitpid, 2 at once
//   BM_Runtime_Tasks              taskfork: Runtime (runinfo, JobLog, reporter
//                                 server, TaskLog and report client per task,
//                                 results.json + xunit.xml) with N no-op tasks,
//                                 max_parallel 2
//   BM_PythonMultiprocessing_Tasks  tools/bench/runner_multiprocessing.py: a
//                                 fork Process per task, one log file each,
//                                 results through a Queue, 2 at once
// Each runs --tasks=N tasks (default 1000) once per iteration and reports
// `us_per_task`; the ratios are printed at the end.
//
//   tools/bazel run -c opt //runner:runner_benchmark
//   tools/bazel run -c opt //runner:runner_benchmark -- --tasks=200
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "runner/runtime.h"

namespace taskfork::runner {
namespace {

int g_tasks = 1000;
std::string g_python_script;
std::string g_work_dir;
// Seconds per task measured by each benchmark (last run), for the ratios.
double g_floor = 0, g_taskfork = 0, g_python = 0;

void BM_RawFork_Tasks(benchmark::State& state) {
  for (auto _ : state) {
    const absl::Time start = absl::Now();
    int started = 0, running = 0;
    while (started < g_tasks || running > 0) {
      while (started < g_tasks && running < 2) {
        const pid_t pid = ::fork();
        if (pid == 0) ::_exit(0);
        if (pid < 0) {
          state.SkipWithError("fork failed");
          return;
        }
        ++started;
        ++running;
      }
      int status;
      if (::waitpid(-1, &status, 0) > 0) --running;
    }
    g_floor = absl::ToDoubleSeconds(absl::Now() - start) / g_tasks;
  }
  state.counters["us_per_task"] = g_floor * 1e6;
}
BENCHMARK(BM_RawFork_Tasks)->Iterations(1)->Unit(benchmark::kMillisecond);

void BM_Runtime_Tasks(benchmark::State& state) {
  int run = 0;
  for (auto _ : state) {
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
    g_taskfork = absl::ToDoubleSeconds(absl::Now() - start) / g_tasks;
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
  char work[] = "/tmp/runner_benchmark.XXXXXX";
  if (::mkdtemp(work) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  g_work_dir = work;

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf("\n%d tasks, max_parallel 2, per task: raw fork %.1f us, "
              "taskfork %.1f us, Python multiprocessing %.1f us\n",
              g_tasks, g_floor * 1e6, g_taskfork * 1e6, g_python * 1e6);
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
