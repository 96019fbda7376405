// The value types serialize_fuzzer decodes, shared with the seed generator
// (make_fuzz_seeds.cc). Testonly; not part of the library.
//
//   FuzzOne(data, size);   // decodes data as one of kFuzzTypeCount types
//   std::string seed = FuzzSeed(3);   // a valid input for type 3
#ifndef TASKFORK_SERIALIZE_FUZZ_TYPES_H_
#define TASKFORK_SERIALIZE_FUZZ_TYPES_H_

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "serialize/bench_record.pb.h"
#include "serialize/protobuf.h"
#include "serialize/serialize.h"

namespace taskfork::serialize::fuzz {

enum class Color : int16_t { kRed = -1, kGreen = 7 };

struct Record {
  std::string name;
  std::tuple<std::string, std::string> also_known_as;
  std::vector<int64_t> values;
  std::map<std::string, double> scores;
  std::optional<std::variant<int32_t, std::string, std::monostate>> extra;
  std::vector<std::shared_ptr<std::string>> shared;
  absl::Duration timeout;
  absl::Time started;
  absl::Status status;
  std::array<uint16_t, 3> triple;
  long double precise = 0;
  Color color = Color::kRed;
  std::unique_ptr<Record> child;
  TASKFORK_SERIALIZE(name, also_known_as, values, scores, extra, shared,
                     timeout, started, status, triple, precise, color, child);
};

struct GraphNode {
  int32_t value = 0;
  std::vector<std::shared_ptr<GraphNode>> out;
  std::weak_ptr<GraphNode> parent;
  TASKFORK_SERIALIZE(value, out, parent);
};
using Graph = std::vector<std::shared_ptr<GraphNode>>;

struct Hooked {
  int32_t port = 0;
  TASKFORK_SERIALIZE(port);
  absl::Status AfterDecode() {
    return port < 0 ? absl::FailedPreconditionError("negative port")
                    : absl::OkStatus();
  }
};

[[noreturn]] inline void Die(const char* what, int type) {
  std::fprintf(stderr, "serialize_fuzzer: %s (type %d)\n", what, type);
  std::abort();
}

inline void CheckRejection(const absl::Status& status, int type) {
  const absl::StatusCode code = status.code();
  if (code != absl::StatusCode::kDataLoss &&
      code != absl::StatusCode::kInvalidArgument &&
      code != absl::StatusCode::kFailedPrecondition) {  // Hooked's hook
    Die("unexpected status code", type);
  }
  if (code != absl::StatusCode::kFailedPrecondition &&
      status.message().find("byte offset") == absl::string_view::npos) {
    Die("error without a byte offset", type);
  }
}

enum class Compare { kBytes, kEqual, kNone };

// Decodes `bytes` as T; if that works, re-encodes, decodes again and checks
// that the second round trip is stable.
template <typename T, Compare kCompare = Compare::kBytes>
void Check(absl::string_view bytes, int type) {
  absl::StatusOr<T> first = Decode<T>(bytes);
  if (!first.ok()) {
    CheckRejection(first.status(), type);
    return;
  }
  const std::string once = Encode(*first);
  absl::StatusOr<T> second = Decode<T>(once);
  if (!second.ok()) Die("re-encoded value does not decode", type);
  if constexpr (kCompare == Compare::kBytes) {
    if (Encode(*second) != once) Die("round trip is not stable", type);
  } else if constexpr (kCompare == Compare::kEqual) {
    if (!(*first == *second)) Die("round trip changed the value", type);
  }
}

inline constexpr int kFuzzTypeCount = 16;

template <typename T, Compare kCompare>
void Run(int type, bool raw, absl::string_view body) {
  if (raw) {
    Check<T, kCompare>(body, type);
  } else {
    std::string bytes = serialize_internal::GetTypeInfo<T>().header;
    bytes.append(body.data(), body.size());
    Check<T, kCompare>(bytes, type);
  }
}

using Map6 = std::unordered_map<int32_t, std::string>;
using Multimap8 = std::multimap<int8_t, std::u16string>;
using Tuple14 = std::tuple<bool, char, float, Color, std::optional<Hooked>>;
using Variant15 = std::variant<absl::Status, absl::Duration, std::pair<int, int>>;

// data[0] % 16 picks the type; bit 4 of data[0] says the rest is a whole
// encoding (header included) rather than a value body after the right header.
inline void FuzzOne(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const int type = data[0] % kFuzzTypeCount;
  const bool raw = (data[0] & 0x10) != 0;
  const absl::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  constexpr Compare kBytes = Compare::kBytes;
  constexpr Compare kEqual = Compare::kEqual;
  switch (type) {
    case 0: return Run<int32_t, kBytes>(type, raw, body);
    case 1: return Run<double, kBytes>(type, raw, body);
    case 2: return Run<std::string, kEqual>(type, raw, body);
    case 3: return Run<std::vector<int64_t>, kEqual>(type, raw, body);
    case 4: return Run<std::vector<bool>, kEqual>(type, raw, body);
    case 5: return Run<Record, kBytes>(type, raw, body);
    case 6: return Run<Map6, kEqual>(type, raw, body);
    case 7: return Run<std::set<std::string>, kEqual>(type, raw, body);
    case 8: return Run<Multimap8, kEqual>(type, raw, body);
    case 9: return Run<std::deque<std::list<uint16_t>>, kEqual>(type, raw, body);
    case 10: return Run<Graph, kBytes>(type, raw, body);
    case 11: return Run<absl::StatusOr<std::vector<std::string>>, kEqual>(type, raw, body);
    case 12: return Run<bench::Record, Compare::kNone>(type, raw, body);
    case 13: return Run<std::unordered_set<std::string>, kEqual>(type, raw, body);
    case 14: return Run<Tuple14, kBytes>(type, raw, body);
    case 15: return Run<Variant15, kEqual>(type, raw, body);
  }
}

// One valid value per type, as the seed corpus: {type byte + value body,
// type byte | 0x10 + whole encoding}.
template <typename T>
void AddSeeds(int type, const T& value, std::vector<std::string>* seeds) {
  const std::string bytes = Encode(value);
  const size_t header = serialize_internal::GetTypeInfo<T>().header.size();
  seeds->push_back(std::string(1, static_cast<char>(type)) + bytes.substr(header));
  seeds->push_back(std::string(1, static_cast<char>(type | 0x10)) + bytes);
}

inline std::vector<std::string> FuzzSeeds() {
  std::vector<std::string> seeds;
  AddSeeds(0, int32_t{-42}, &seeds);
  AddSeeds(1, 3.5, &seeds);
  AddSeeds(2, std::string("tony stark"), &seeds);
  AddSeeds(3, std::vector<int64_t>{1, -2, 1 << 20}, &seeds);
  AddSeeds(4, std::vector<bool>{true, false, true}, &seeds);
  Record r;
  r.name = "ironman";
  r.also_known_as = {"genius", "playboy"};
  r.values = {1, 2, 3};
  r.scores = {{"a", 1.0}, {"b", -0.5}};
  r.extra.emplace(std::string("x"));
  auto shared = std::make_shared<std::string>("memo");
  r.shared = {shared, shared, nullptr};
  r.timeout = absl::Milliseconds(1500);
  r.started = absl::FromUnixSeconds(1700000000);
  r.status = absl::NotFoundError("task t1");
  r.triple = {1, 2, 3};
  r.precise = 1.25L;
  r.color = Color::kGreen;
  r.child = std::make_unique<Record>();
  r.child->name = "child";
  AddSeeds(5, r, &seeds);
  AddSeeds(6, Map6{{1, "one"}, {2, "two"}}, &seeds);
  AddSeeds(7, std::set<std::string>{"p", "q"}, &seeds);
  AddSeeds(8, Multimap8{{1, u"a"}, {1, u"b"}}, &seeds);
  AddSeeds(9, std::deque<std::list<uint16_t>>{{1, 2}, {}}, &seeds);
  Graph g{std::make_shared<GraphNode>(), std::make_shared<GraphNode>()};
  g[0]->value = 1;
  g[1]->value = 2;
  g[0]->out = {g[1], g[1]};
  g[1]->parent = g[0];
  g[0]->parent = g[0];
  AddSeeds(10, g, &seeds);
  AddSeeds(11, absl::StatusOr<std::vector<std::string>>(std::vector<std::string>{"ok"}),
           &seeds);
  AddSeeds(11, absl::StatusOr<std::vector<std::string>>(absl::AbortedError("x")), &seeds);
  bench::Record p;
  p.set_name("tony stark");
  p.add_also_known_as("genius");
  p.add_values(12345);
  (*p.mutable_scores())["k"] = 0.5;
  AddSeeds(12, p, &seeds);
  AddSeeds(13, std::unordered_set<std::string>{"x", "yy"}, &seeds);
  AddSeeds(14, Tuple14{true, 'c', 1.5f, Color::kGreen, Hooked{22}}, &seeds);
  AddSeeds(15, Variant15(absl::Seconds(-3)), &seeds);
  AddSeeds(15, Variant15(absl::DataLossError("frame")), &seeds);
  return seeds;
}

}  // namespace taskfork::serialize::fuzz

#endif  // TASKFORK_SERIALIZE_FUZZ_TYPES_H_
