// The benchmark record, shared by every benchmark that times it
// (serialize/serialize_benchmark.cc, fork/process_benchmark.cc) and by
// tools/bench/serialize_pickle.py's Python twin: pyATS's pickle
// example (name, callsign, a 4-string also_known_as tuple) plus 100 int64
// values and a 10-entry map<string, double>. Testonly.
//
//   const taskfork::serialize::BenchRecord record =
//       taskfork::serialize::MakeBenchRecord();
//   std::string bytes = taskfork::serialize::Encode(record);
#ifndef TASKFORK_SERIALIZE_BENCH_RECORD_H_
#define TASKFORK_SERIALIZE_BENCH_RECORD_H_

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "serialize/serialize.h"

namespace taskfork::serialize {

// The record; serializable with //serialize. Plain value type,
// thread-compatible.
struct BenchRecord {
  std::string name;
  std::string callsign;
  std::tuple<std::string, std::string, std::string, std::string> also_known_as;
  std::vector<int64_t> values;
  std::map<std::string, double> scores;
  TASKFORK_SERIALIZE(name, callsign, also_known_as, values, scores);

  friend bool operator==(const BenchRecord& a, const BenchRecord& b) {
    return a.name == b.name && a.callsign == b.callsign &&
           a.also_known_as == b.also_known_as && a.values == b.values &&
           a.scores == b.scores;
  }
};

// Returns the record with its fixed contents (the same every call, and the
// same as make_record() in tools/bench/serialize_pickle.py). Thread-safe.
BenchRecord MakeBenchRecord();

}  // namespace taskfork::serialize

#endif  // TASKFORK_SERIALIZE_BENCH_RECORD_H_
