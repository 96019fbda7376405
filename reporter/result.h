// Result: the seven pyATS results and their roll-up.
//
//   Result r = Result::kPassed;
//   r = RollUp(r, Result::kFailed);            // Failed
//   std::string s = ResultName(r);             // "failed"
#ifndef TASKFORK_REPORTER_RESULT_H_
#define TASKFORK_REPORTER_RESULT_H_

#include <initializer_list>
#include <optional>

#include "absl/strings/string_view.h"

namespace taskfork::reporter {

// A section's, task's or job's result. Numeric order is the roll-up order
// (docs/DESIGN.md "Results"; pyATS's documented 7x7 roll-up table):
//   Skipped < Passed < Passx < Blocked < Failed < Errored < Aborted
// The values equal report.proto's ResultCode values (RESULT_SKIPPED = 1 ...).
enum class Result {
  kSkipped = 1,  // skipped on purpose
  kPassed = 2,   // ran, met its expectation
  kPassx = 3,    // passed with an exception
  kBlocked = 4,  // not run: a dependency was not met
  kFailed = 5,   // ran, expectation not met
  kErrored = 6,  // unexpected error (exception, crash, lost reporter client)
  kAborted = 7,  // started, did not finish (timeout, Ctrl-C)
};

// Every result, in roll-up order.
inline constexpr Result kAllResults[] = {
    Result::kSkipped, Result::kPassed,  Result::kPassx,  Result::kBlocked,
    Result::kFailed,  Result::kErrored, Result::kAborted};

// The roll-up of two results: the larger in roll-up order. pyATS's `a + b`
// table equals this cell by cell. Commutative, associative, idempotent.
// Thread-safe, async-signal-safe.
constexpr Result RollUp(Result a, Result b) {
  return static_cast<int>(a) >= static_cast<int>(b) ? a : b;
}

// The roll-up of `results`; `std::nullopt` when empty (nothing ran).
constexpr std::optional<Result> RollUp(std::initializer_list<Result> results) {
  std::optional<Result> out;
  for (Result r : results) out = out ? RollUp(*out, r) : r;
  return out;
}

// True for the results that count as success in pyATS's success rate and
// exit code: Passed, Passx, Skipped.
constexpr bool IsSuccess(Result r) {
  return r == Result::kPassed || r == Result::kPassx || r == Result::kSkipped;
}

// pyATS's lowercase name: "skipped", "passed", "passx", "blocked", "failed",
// "errored", "aborted". Returns a static string.
absl::string_view ResultName(Result r);

// Parses a lowercase name ResultName returns; std::nullopt for anything else.
std::optional<Result> ParseResult(absl::string_view name);

// The Result for a report.proto ResultCode value (1..7); std::nullopt for
// RESULT_UNSPECIFIED (0) and values out of range.
constexpr std::optional<Result> ResultFromCode(int code) {
  if (code < static_cast<int>(Result::kSkipped) ||
      code > static_cast<int>(Result::kAborted)) {
    return std::nullopt;
  }
  return static_cast<Result>(code);
}

// The report.proto ResultCode value of `r` (1..7).
constexpr int ResultCodeOf(Result r) { return static_cast<int>(r); }

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_RESULT_H_
