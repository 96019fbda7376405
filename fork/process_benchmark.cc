// Benchmarks for //fork against the physical floor, in one binary: raw
// fork + _exit + waitpid, and 100 raw forks reaped together. Ratios are
// printed after the table; tools/bench/fork_multiprocessing.py times Python's
// multiprocessing (fork context) on the same machine.
//
//   tools/bazel run -c opt //fork:process_benchmark
//
// Every benchmark measures wall-clock time (UseRealTime): the work happens in
// the children, so the parent's CPU time would say little.
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "fork/pcall.h"
#include "fork/process.h"
#include "fork/process_with_result.h"
#include "serialize/bench_record.h"
#include "serialize/serialize.h"

namespace taskfork {
namespace {

// The //serialize benchmark record (serialize/bench_record.h): a name, a
// callsign, a 4-string tuple, 100 int64 values and 10 map entries.
using serialize::BenchRecord;

// Page faults (mostly copy-on-write after fork) of the parent and of the
// reaped children so far.
struct Faults {
  static Faults Now() {
    rusage self, children;
    ::getrusage(RUSAGE_SELF, &self);
    ::getrusage(RUSAGE_CHILDREN, &children);
    return {self.ru_minflt, children.ru_minflt};
  }
  long parent;
  long children;
};

// The children's CPU time per operation, as a counter (the parent's is the
// CPU column), and page faults per operation: where the time goes.
void CountChildCpu(benchmark::State& state, absl::Duration total,
                   const Faults& before) {
  const Faults after = Faults::Now();
  state.counters["child_cpu_us"] = benchmark::Counter(
      absl::ToDoubleMicroseconds(total), benchmark::Counter::kAvgIterations);
  state.counters["parent_faults"] = benchmark::Counter(
      static_cast<double>(after.parent - before.parent),
      benchmark::Counter::kAvgIterations);
  state.counters["child_faults"] = benchmark::Counter(
      static_cast<double>(after.children - before.children),
      benchmark::Counter::kAvgIterations);
}

void BM_RawFork_ExitWait(benchmark::State& state) {
  absl::Duration child_cpu;
  const Faults faults = Faults::Now();
  for (auto _ : state) {
    const pid_t pid = ::fork();
    if (pid == 0) ::_exit(0);
    if (pid < 0) {
      state.SkipWithError("fork failed");
      break;
    }
    int status;
    rusage usage;
    ::wait4(pid, &status, 0, &usage);
    child_cpu += absl::DurationFromTimeval(usage.ru_utime) +
                 absl::DurationFromTimeval(usage.ru_stime);
  }
  CountChildCpu(state, child_cpu, faults);
}
BENCHMARK(BM_RawFork_ExitWait)->UseRealTime();

void BM_Process_StartJoin(benchmark::State& state) {
  absl::Duration child_cpu;
  const Faults faults = Faults::Now();
  for (auto _ : state) {
    absl::StatusOr<Process> p = Process::Start({}, [] { return 0; });
    if (!p.ok()) {
      state.SkipWithError(p.status().ToString().c_str());
      break;
    }
    absl::StatusOr<ExitStatus> status = p->Join();
    if (!status.ok() || !status->success()) {
      state.SkipWithError("join failed");
      break;
    }
    child_cpu += status->user_cpu + status->system_cpu;
  }
  CountChildCpu(state, child_cpu, faults);
}
BENCHMARK(BM_Process_StartJoin)->UseRealTime();

void BM_Process_StartJoin_Result(benchmark::State& state) {
  const BenchRecord record = serialize::MakeBenchRecord();
  absl::Duration child_cpu;
  const Faults faults = Faults::Now();
  for (auto _ : state) {
    auto p = ProcessWithResult<BenchRecord>::Start({}, [&record] { return record; });
    if (!p.ok()) {
      state.SkipWithError(p.status().ToString().c_str());
      break;
    }
    absl::StatusOr<BenchRecord> result = p->Join();
    if (!result.ok() || result->values.size() != 100) {
      state.SkipWithError("join failed");
      break;
    }
    benchmark::DoNotOptimize(*result);
    child_cpu += p->exit_status()->user_cpu + p->exit_status()->system_cpu;
  }
  CountChildCpu(state, child_cpu, faults);
}
BENCHMARK(BM_Process_StartJoin_Result)->UseRealTime();

constexpr int kCalls = 100;

void BM_RawFork_100(benchmark::State& state) {
  std::vector<pid_t> pids(kCalls);
  absl::Duration child_cpu;
  const Faults faults = Faults::Now();
  for (auto _ : state) {
    for (int i = 0; i < kCalls; ++i) {
      pids[i] = ::fork();
      if (pids[i] == 0) ::_exit(0);
    }
    for (pid_t pid : pids) {
      int status;
      rusage usage;
      if (pid > 0 && ::wait4(pid, &status, 0, &usage) == pid) {
        child_cpu += absl::DurationFromTimeval(usage.ru_utime) +
                     absl::DurationFromTimeval(usage.ru_stime);
      }
    }
  }
  state.SetItemsProcessed(state.iterations() * kCalls);
  CountChildCpu(state, child_cpu, faults);
}
BENCHMARK(BM_RawFork_100)->UseRealTime()->Unit(benchmark::kMicrosecond);

void BM_Pcall_100(benchmark::State& state) {
  std::vector<int> args(kCalls);
  for (int i = 0; i < kCalls; ++i) args[i] = i;
  absl::Duration child_cpu;
  const Faults faults = Faults::Now();
  for (auto _ : state) {
    // PcallDetailed costs what Pcall does and also has each child's rusage.
    PcallResults<int> results = PcallDetailed([](int i) { return i; }, args);
    if (!results.status.ok() || results.calls.size() != kCalls) {
      state.SkipWithError(results.status.ToString().c_str());
      break;
    }
    for (const PcallOutcome<int>& call : results.calls) {
      child_cpu += call.exit_status->user_cpu + call.exit_status->system_cpu;
    }
    benchmark::DoNotOptimize(results);
  }
  state.SetItemsProcessed(state.iterations() * kCalls);
  CountChildCpu(state, child_cpu, faults);
}
BENCHMARK(BM_Pcall_100)->UseRealTime()->Unit(benchmark::kMicrosecond);

// Prints the ratios the issue sets targets for, after the usual table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      const double to_ns = run.time_unit == benchmark::kMicrosecond ? 1e3 : 1;
      const std::string& name = run.run_name.function_name;
      real_ns_[name] = run.GetAdjustedRealTime() * to_ns;
      // Parent CPU + the children's CPU (the child_cpu_us counter).
      double child_ns = 0;
      auto it = run.counters.find("child_cpu_us");
      if (it != run.counters.end()) child_ns = it->second.value * 1e3;
      cpu_ns_[name] = run.GetAdjustedCPUTime() * to_ns + child_ns;
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf(
        "\nRatios: real time, and CPU time of parent + children (steadier "
        "than real time on a shared machine):\n");
    Ratio("Process start+join / raw fork+_exit+waitpid (target <= 1.3)",
          "BM_Process_StartJoin", "BM_RawFork_ExitWait");
    Ratio("Process start+join with the record / raw fork+_exit+waitpid",
          "BM_Process_StartJoin_Result", "BM_RawFork_ExitWait");
    Ratio("Pcall of 100 / 100 raw forks (target <= 1.5)", "BM_Pcall_100",
          "BM_RawFork_100");
    std::printf(
        "(Python multiprocessing: python3 tools/bench/fork_multiprocessing.py "
        "--benchmark_binary=<this binary>)\n");
  }

 private:
  void Ratio(const char* what, const char* ours, const char* theirs) {
    if (real_ns_.count(ours) == 0 || real_ns_.count(theirs) == 0) return;
    std::printf(
        "  %s\n    real %.1f us / %.1f us = %.2f; cpu %.1f us / %.1f us = %.2f\n",
        what, real_ns_[ours] / 1e3, real_ns_[theirs] / 1e3,
        real_ns_[ours] / real_ns_[theirs], cpu_ns_[ours] / 1e3,
        cpu_ns_[theirs] / 1e3, cpu_ns_[ours] / cpu_ns_[theirs]);
  }
  std::map<std::string, double> real_ns_;
  std::map<std::string, double> cpu_ns_;
};

}  // namespace
}  // namespace taskfork

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  taskfork::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
