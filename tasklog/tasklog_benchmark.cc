// TaskLog against glog's own file logging, the same LOG(INFO) message in the
// same binary. Run with -c opt:
//   tools/bazel run -c opt //tasklog:tasklog_benchmark --
//     --benchmark_repetitions=10 --benchmark_enable_random_interleaving=true
//     --benchmark_min_time=0.3 --benchmark_report_aggregates_only=true
// (interleaving keeps the load drift of a shared machine out of the ratio)
// A summary with the throughput ratio (target >= 0.9) is printed at the end.
//
// BM_Glog_FileLogging: glog as a program uses it without TaskLog: its file
//   destination for INFO (default flags: prefix on, INFO buffered in stdio and
//   flushed every 30 s or by WARNING and above).
// BM_TaskLog_Logging: TaskLog installed (stdio capture and failure handler
//   off, so the benchmark's own output stays on the terminal): one write(2)
//   per line, nothing buffered in the process.
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "glog/logging.h"
#include "tasklog/tasklog.h"

namespace taskfork::tasklog {
namespace {

const std::string& BenchDir() {
  static const std::string* const dir = [] {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr ? base : "/tmp", "/tasklog_bench.XXXXXX");
    CHECK(::mkdtemp(pattern.data()) != nullptr) << "mkdtemp " << pattern;
    return new std::string(pattern);
  }();
  return *dir;
}

// A typical log line: some text and two numbers.
#define TASKFORK_BENCH_LOG_LINE(i)                                      \
  LOG(INFO) << "section setup step " << (i) << " connected to device r" \
            << ((i) % 16) << " in 0.25 s, state=ok"

void BM_Glog_FileLogging(benchmark::State& state) {
  if (state.thread_index() == 0) {
    if (TaskLog::Current() != nullptr) CHECK(TaskLog::Uninstall().ok());
    // Uninstall() leaves glog's files off; point INFO at a file again.
    google::SetLogDestination(google::GLOG_INFO,
                              absl::StrCat(BenchDir(), "/glog.INFO.").c_str());
  }
  int64_t i = 0;
  for (auto _ : state) {
    TASKFORK_BENCH_LOG_LINE(i);
    ++i;
  }
  if (state.thread_index() == 0) google::FlushLogFiles(google::GLOG_INFO);
  state.SetItemsProcessed(state.iterations());
}

void BM_TaskLog_Logging(benchmark::State& state) {
  if (state.thread_index() == 0 && TaskLog::Current() == nullptr) {
    TaskLogOptions options;
    options.capture_stdio = false;
    options.install_failure_handler = false;
    options.truncate = true;
    CHECK(TaskLog::Install(BenchDir() + "/TaskLog.bench", options).ok());
  }
  int64_t i = 0;
  for (auto _ : state) {
    TASKFORK_BENCH_LOG_LINE(i);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

// With one and with four threads logging at once. Thread 0 configures glog
// before its loop; the other threads wait at the loop's start barrier.
BENCHMARK(BM_Glog_FileLogging)->UseRealTime();
BENCHMARK(BM_TaskLog_Logging)->UseRealTime();
BENCHMARK(BM_Glog_FileLogging)->Threads(4)->UseRealTime();
BENCHMARK(BM_TaskLog_Logging)->Threads(4)->UseRealTime();

// The cost the time gate (internal/time_gate.h) adds to each of the three
// time conversions glog makes per message, in both benchmarks above:
// localtime_r through the gate against glibc's directly.
void BM_TimeGate_LocaltimeR(benchmark::State& state) {
  const time_t now = ::time(nullptr);
  struct tm broken_down;
  for (auto _ : state) {
    benchmark::DoNotOptimize(::localtime_r(&now, &broken_down));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_Glibc_LocaltimeR(benchmark::State& state) {
  using LocaltimeR = struct tm* (*)(const time_t*, struct tm*);
  // The definition after the gate's: glibc's (or a sanitizer's).
  const auto direct =
      reinterpret_cast<LocaltimeR>(::dlsym(RTLD_NEXT, "localtime_r"));
  CHECK(direct != nullptr);
  const time_t now = ::time(nullptr);
  struct tm broken_down;
  for (auto _ : state) {
    benchmark::DoNotOptimize(direct(&now, &broken_down));
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_TimeGate_LocaltimeR);
BENCHMARK(BM_Glibc_LocaltimeR);

// Console output plus the ratio docs/BENCHMARKS.md tracks.
class SummaryReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With repetitions, the median aggregate wins over single runs.
      const bool median =
          run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      auto items = run.counters.find("items_per_second");
      if (items == run.counters.end()) continue;
      std::string name = run.run_name.str();
      if (median || medians_.count(name) == 0)
        items_[name] = items->second.value;
      if (median) medians_[name] = true;
    }
  }

  void PrintSummary() {
    std::printf(
        "\nSummary (TaskLog / glog file logging, lines per second; "
        "target >= 0.9):\n");
    auto gated = items_.find("BM_TimeGate_LocaltimeR");
    auto direct = items_.find("BM_Glibc_LocaltimeR");
    if (gated != items_.end() && direct != items_.end() && gated->second > 0 &&
        direct->second > 0) {
      std::printf(
          "  time gate cost per localtime_r: %.1f ns (x3 per message, "
          "paid by both)\n",
          1e9 / gated->second - 1e9 / direct->second);
    }
    for (const auto& [name, glog] : items_) {
      if (name.rfind("BM_Glog_FileLogging", 0) != 0) continue;
      const std::string suffix =
          name.substr(std::string("BM_Glog_FileLogging").size());
      auto tasklog = items_.find("BM_TaskLog_Logging" + suffix);
      if (tasklog == items_.end() || glog == 0) continue;
      std::printf(
          "  BM_TaskLog_Logging%s / BM_Glog_FileLogging%s: %.2f "
          "(%.0f vs %.0f lines/s)\n",
          suffix.c_str(), suffix.c_str(), tasklog->second / glog,
          tasklog->second, glog);
    }
  }

 private:
  std::map<std::string, double> items_;
  std::map<std::string, bool> medians_;
};

}  // namespace
}  // namespace taskfork::tasklog

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  google::InitGoogleLogging(argv[0]);
  // glog's other severities would create their own files in /tmp.
  for (int severity = google::GLOG_WARNING; severity < google::NUM_SEVERITIES;
       ++severity) {
    google::SetLogDestination(severity, "");
  }
  taskfork::tasklog::SummaryReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  reporter.PrintSummary();
  if (taskfork::tasklog::TaskLog::Current() != nullptr) {
    CHECK(taskfork::tasklog::TaskLog::Uninstall().ok());
  }
  // The log files are scratch; remove them (they can be large).
  std::filesystem::remove_all(taskfork::tasklog::BenchDir());
  benchmark::Shutdown();
  return 0;
}
