// What a repository that depends on taskfork might do with four of its
// targets: //serialize, //fork:pcall, //ipc:queue and //reporter:client.
//
//   absl::StatusOr<std::vector<int64_t>> squares = SquaresInChildren({1, 2, 3});
//   absl::StatusOr<int64_t> sum = SumThroughQueue(/*producers=*/2, /*per_producer=*/5);
//   absl::StatusOr<ReportSummary> report = ReportFromChild(dir);
#ifndef TASKFORK_CONSUMER_DEMO_LIB_H_
#define TASKFORK_CONSUMER_DEMO_LIB_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "serialize/serialize.h"

namespace consumer {

// A user type that crosses process boundaries through taskfork::serialize.
struct Hero {
  std::string name;
  std::vector<int64_t> scores;
  TASKFORK_SERIALIZE(name, scores);
};

// Each value squared in its own forked child (taskfork::Pcall), in argument
// order. Errors: those of Pcall (a failed child names its index).
absl::StatusOr<std::vector<int64_t>> SquaresInChildren(
    const std::vector<int64_t>& values);

// `producers` forked children (one Pcall) each put `per_producer` Heros
// into a shared-memory taskfork::ipc::Queue; the parent gets them all and
// returns the sum of every score. Errors: Queue::Create's, Pcall's, a Get
// that times out after 30 s (kDeadlineExceeded), a Hero that fails to decode.
absl::StatusOr<int64_t> SumThroughQueue(int producers, int per_producer);

// What ReportFromChild's report says.
struct ReportSummary {
  std::string results_json;  // path of the written results.json
  int sections = 0;          // sections of task "child"
  std::string task_result;   // e.g. "RESULT_PASSED"
  std::string section_result;
};

// Starts a taskfork::reporter::ReporterServer writing into `dir` (must exist),
// forks a child (taskfork::Process via Pcall) that reports task "child" with
// one failed section through a ReportClient, then finalizes the report.
// Errors: the server's and the client's (the child's error comes back through
// Pcall with its message).
absl::StatusOr<ReportSummary> ReportFromChild(const std::string& dir);

}  // namespace consumer

#endif  // TASKFORK_CONSUMER_DEMO_LIB_H_
