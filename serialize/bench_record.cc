#include "serialize/bench_record.h"

#include <string>

namespace taskfork::serialize {

BenchRecord MakeBenchRecord() {
  BenchRecord r;
  r.name = "tony stark";
  r.callsign = "ironman";
  r.also_known_as = {"genius", "billionaire", "playboy", "philanthropist"};
  for (int64_t i = 0; i < 100; ++i) r.values.push_back(i * 12345);
  for (int i = 0; i < 10; ++i) r.scores["key" + std::to_string(i)] = i * 0.5;
  return r;
}

}  // namespace taskfork::serialize
