// The cost of report.html next to results.json for the same report:
// BM_WriteHtml/N against BM_WriteResultsJson/N (its baseline) for a job of N
// GoogleTest cases (ManyCasesReport). The figure that matters is the ratio of
// their times.
#include "benchmark/benchmark.h"
#include "reporter/html_report.h"
#include "reporter/test_util.h"
#include "reporter/writers.h"

namespace taskfork::reporter {
namespace {

void BM_WriteResultsJson(benchmark::State& state) {
  const JobReport report = ManyCasesReport(static_cast<int>(state.range(0)));
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string json = ResultsJson(report);
    bytes = json.size();
    benchmark::DoNotOptimize(json.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_WriteResultsJson)->Arg(20000)->Unit(benchmark::kMillisecond);

void BM_WriteHtml(benchmark::State& state) {
  const JobReport report = ManyCasesReport(static_cast<int>(state.range(0)));
  const HtmlReportOptions options{.log_files = {"TaskLog.gtest"}};
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string html = HtmlReport(report, options);
    bytes = html.size();
    benchmark::DoNotOptimize(html.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_WriteHtml)->Arg(20000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace taskfork::reporter

BENCHMARK_MAIN();
