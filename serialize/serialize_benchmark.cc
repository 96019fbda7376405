// Benchmarks for taskfork::serialize against its peers, in one binary:
// protobuf on the same record, memcpy on a 1 MiB blob, and the floor for
// decoding the record (building it by hand). Ratios are printed after the
// table; tools/bench/serialize_pickle.py adds Python pickle.
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

// The record encoded into a reused buffer that once held a 1 MiB blob:
// what a loop reusing one string for values of mixed sizes pays.
void BM_Encode_Record_LargeBuffer(benchmark::State& state) {
  const BenchRecord record = MakeBenchRecord();
  std::string out;
  out.reserve(size_t{1} << 20);
  for (auto _ : state) {
    out.clear();
    EncodeTo(record, &out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(out.size());
}
BENCHMARK(BM_Encode_Record_LargeBuffer);

void BM_Decode_Record(benchmark::State& state) {
  const std::string bytes = Encode(MakeBenchRecord());
  for (auto _ : state) {
    absl::StatusOr<BenchRecord> r = Decode<BenchRecord>(bytes);
    if (!r.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Decode_Record);

// The floor for decoding the record: building the same value by hand from
// bytes already laid out for it (no parsing, no checks), the cheapest way
// the standard containers allow (strings from pointer and length, the
// vector from a range, each map node placed at the front in descending key
// order, as Decode does), then destroying it. What Decode cannot avoid:
// one allocation per map node and for the vector, and the matching frees.
struct RecordParts {
  std::vector<std::string> strings;  // name, callsign, the 4 aliases
  std::vector<int64_t> values;
  std::vector<std::pair<std::string, double>> scores;  // descending keys
};

RecordParts SplitRecord(const BenchRecord& r) {
  RecordParts parts;
  parts.strings = {r.name, r.callsign};
  std::apply([&parts](const auto&... s) { (parts.strings.push_back(s), ...); },
             r.also_known_as);
  parts.values = r.values;
  for (auto it = r.scores.rbegin(); it != r.scores.rend(); ++it) {
    parts.scores.emplace_back(it->first, it->second);
  }
  return parts;
}

BenchRecord BuildRecord(const RecordParts& parts) {
  const std::vector<std::string>& s = parts.strings;
  BenchRecord r;
  r.name.assign(s[0].data(), s[0].size());
  r.callsign.assign(s[1].data(), s[1].size());
  std::get<0>(r.also_known_as).assign(s[2].data(), s[2].size());
  std::get<1>(r.also_known_as).assign(s[3].data(), s[3].size());
  std::get<2>(r.also_known_as).assign(s[4].data(), s[4].size());
  std::get<3>(r.also_known_as).assign(s[5].data(), s[5].size());
  r.values.assign(parts.values.begin(), parts.values.end());
  for (const auto& [key, value] : parts.scores) {
    r.scores.emplace_hint(r.scores.begin(), std::piecewise_construct,
                          std::forward_as_tuple(key.data(), key.size()),
                          std::forward_as_tuple(value));
  }
  return r;
}

void BM_Build_Record(benchmark::State& state) {
  RecordParts parts = SplitRecord(MakeBenchRecord());
  if (!(BuildRecord(parts) == MakeBenchRecord())) {
    return state.SkipWithError("BuildRecord does not build the record");
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize(parts);  // rebuilt from memory every time
    BenchRecord r = BuildRecord(parts);
    benchmark::DoNotOptimize(r);
  }
}
BENCHMARK(BM_Build_Record);

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

// Prints the ratios of taskfork::serialize to its baselines (pickle-like
// cases to protobuf and memcpy), after the usual table.
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
    Ratio("serialize decode / building the record by hand (the floor)",
          {"BM_Decode_Record"}, {"BM_Build_Record"});
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
