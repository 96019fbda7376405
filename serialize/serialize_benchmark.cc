// Benchmarks for taskfork::serialize against its peers, in one binary:
// protobuf on the same record, memcpy on a 1 MiB blob. Ratios are printed
// after the table; tools/bench/serialize_pickle.py adds Python pickle.
//
//   tools/bazel run -c opt //serialize:serialize_benchmark
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "benchmark/benchmark.h"
#include "serialize/bench_record.h"
#include "serialize/bench_record.pb.h"
#include "serialize/protobuf.h"
#include "serialize/serialize.h"

namespace taskfork::serialize {
namespace {

// The same record as a protobuf message.
bench::Record MakeProtoRecord() {
  const BenchRecord r = MakeBenchRecord();
  bench::Record p;
  p.set_name(r.name);
  p.set_callsign(r.callsign);
  std::apply([&p](const auto&... s) { (p.add_also_known_as(s), ...); },
             r.also_known_as);
  for (int64_t v : r.values) p.add_values(v);
  for (const auto& [k, v] : r.scores) (*p.mutable_scores())[k] = v;
  return p;
}

constexpr size_t kBlobSize = 1 << 20;

std::vector<uint8_t> MakeBlob() {
  std::vector<uint8_t> blob(kBlobSize);
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<uint8_t>(i * 7);
  return blob;
}

void BM_Encode_Record(benchmark::State& state) {
  const BenchRecord record = MakeBenchRecord();
  std::string out;
  for (auto _ : state) {
    out.clear();  // reuses the buffer, as the protobuf baseline does
    EncodeTo(record, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_Encode_Record);

void BM_Decode_Record(benchmark::State& state) {
  const std::string bytes = Encode(MakeBenchRecord());
  for (auto _ : state) {
    absl::StatusOr<BenchRecord> r = Decode<BenchRecord>(bytes);
    if (!r.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Decode_Record);

void BM_Protobuf_Encode_Record(benchmark::State& state) {
  const bench::Record record = MakeProtoRecord();
  std::string out;
  for (auto _ : state) {
    out.clear();
    record.SerializeToString(&out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_Protobuf_Encode_Record);

void BM_Protobuf_Decode_Record(benchmark::State& state) {
  const std::string bytes = MakeProtoRecord().SerializeAsString();
  for (auto _ : state) {
    bench::Record r;  // a fresh message, as Decode returns a fresh value
    if (!r.ParseFromString(bytes)) state.SkipWithError("parse failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Protobuf_Decode_Record);

void BM_Encode_Blob1M(benchmark::State& state) {
  const std::vector<uint8_t> blob = MakeBlob();
  std::string out;
  for (auto _ : state) {
    out.clear();
    EncodeTo(blob, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(state.iterations() * kBlobSize);
}
BENCHMARK(BM_Encode_Blob1M);

void BM_Decode_Blob1M(benchmark::State& state) {
  const std::string bytes = Encode(MakeBlob());
  for (auto _ : state) {
    absl::StatusOr<std::vector<uint8_t>> blob = Decode<std::vector<uint8_t>>(bytes);
    if (!blob.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(blob->data());
  }
  state.SetBytesProcessed(state.iterations() * kBlobSize);
}
BENCHMARK(BM_Decode_Blob1M);

void BM_Memcpy_Blob1M(benchmark::State& state) {
  const std::vector<uint8_t> blob = MakeBlob();
  std::vector<uint8_t> dst(kBlobSize);
  for (auto _ : state) {
    std::memcpy(dst.data(), blob.data(), kBlobSize);
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * kBlobSize);
}
BENCHMARK(BM_Memcpy_Blob1M);

// Prints the ratios the issue sets targets for, after the usual table.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.run_type != Run::RT_Iteration) continue;
      // Every benchmark here reports in nanoseconds (the default unit).
      real_ns_[run.run_name.function_name] = run.GetAdjustedRealTime();
      cpu_ns_[run.run_name.function_name] = run.GetAdjustedCPUTime();
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nRatios, real time and CPU time (the machine may be shared):\n");
    Ratio("serialize encode+decode / protobuf encode+decode (record; target <= 1)",
          {"BM_Encode_Record", "BM_Decode_Record"},
          {"BM_Protobuf_Encode_Record", "BM_Protobuf_Decode_Record"});
    Ratio("serialize encode / protobuf encode (record)", {"BM_Encode_Record"},
          {"BM_Protobuf_Encode_Record"});
    Ratio("serialize decode / protobuf decode (record)", {"BM_Decode_Record"},
          {"BM_Protobuf_Decode_Record"});
    Ratio("encode 1 MiB blob / memcpy (target <= 2)", {"BM_Encode_Blob1M"},
          {"BM_Memcpy_Blob1M"});
    Ratio("decode 1 MiB blob / memcpy (target <= 2)", {"BM_Decode_Blob1M"},
          {"BM_Memcpy_Blob1M"});
    std::printf(
        "(Python pickle: python3 tools/bench/serialize_pickle.py "
        "--benchmark_binary=<this binary>)\n");
  }

 private:
  void Ratio(const char* what, std::initializer_list<const char*> ours,
             std::initializer_list<const char*> theirs) {
    double real[2] = {0, 0};
    double cpu[2] = {0, 0};
    int side = 0;
    for (const auto& names : {ours, theirs}) {
      for (const char* n : names) {
        if (real_ns_.count(n) == 0) return;  // filtered out
        real[side] += real_ns_[n];
        cpu[side] += cpu_ns_[n];
      }
      ++side;
    }
    std::printf("  %s\n    real %.0f ns / %.0f ns = %.2f; cpu %.0f ns / %.0f ns = %.2f\n",
                what, real[0], real[1], real[0] / real[1], cpu[0], cpu[1],
                cpu[0] / cpu[1]);
  }

  std::map<std::string, double> real_ns_;
  std::map<std::string, double> cpu_ns_;
};

}  // namespace
}  // namespace taskfork::serialize

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  // The table and ratios on the console; --benchmark_out=FILE
  // --benchmark_out_format=json writes machine-readable results as well.
  taskfork::serialize::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
