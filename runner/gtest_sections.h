// GoogleTest results as report sections: one section per test, read from the
// JSON a GoogleTest binary writes with --gtest_output=json:FILE.
//
//   TASKFORK_ASSIGN_OR_RETURN(std::vector<GTestSection> tests,
//                             ReadGTestJson(runinfo + "/t1.gtest.json"));
//   for (const GTestSection& t : tests) report t.name with t.result ...
#ifndef TASKFORK_RUNNER_GTEST_SECTIONS_H_
#define TASKFORK_RUNNER_GTEST_SECTIONS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "reporter/result.h"

namespace taskfork::runner {

// The longest failure message kept in a reason (longer ones are cut, "...").
inline constexpr size_t kMaxGTestReason = 2000;

struct GTestSection {
  std::string name;  // "Suite.Test"
  reporter::Result result = reporter::Result::kPassed;
  // Failed: the first failure message (and how many more); Skipped: why.
  std::string reason;
  absl::Duration time;
  std::string file;
  int line = 0;
};

// Where the runner has the GoogleTest command of task `task_id` write its
// JSON: <runinfo_dir>/<task_id>.gtest.json, or for shard k of a sharded
// task <runinfo_dir>/<task_id>.shard-<k>.gtest.json.
std::string GTestJsonPath(absl::string_view runinfo_dir,
                          absl::string_view task_id,
                          std::optional<int> shard = std::nullopt);

// Parses GoogleTest's JSON output. A test with failures is Failed; a skipped
// (GTEST_SKIP) or disabled one is Skipped; any other that ran is Passed.
// GoogleTest's JSON writes every byte >= 0x80 of a string as its own
// "\u00XX" escape, so a JSON parser reads UTF-8 "\u00C3\u00A4" as the two
// code points U+00C3 U+00A4 ("Ã¤") instead of "ä". Returns `json` with each
// run of such escapes that spells a valid UTF-8 sequence replaced by those
// bytes (raw UTF-8 is valid in a JSON string); escapes that are not part of
// a valid sequence (Latin-1 text, a cut or overlong sequence, a surrogate)
// stay as they are, so the result is never invalid UTF-8 where `json` was
// not. "\\u00C3" (an escaped backslash, then "u00C3") is not an escape.
std::string RepairGTestJsonUtf8(absl::string_view json);

// Parses GoogleTest's JSON output (after RepairGTestJsonUtf8). A test with
// failures is Failed; a skipped (GTEST_SKIP) or disabled one is Skipped; any
// other that ran is Passed.
// Errors: kDataLoss naming `display_path` when `json` is not GoogleTest's JSON.
absl::StatusOr<std::vector<GTestSection>> ParseGTestJson(
    absl::string_view json, absl::string_view display_path);

// Reads and parses the file; kNotFound (etc.) naming the path if unreadable
// (a GoogleTest binary that crashed before writing it).
absl::StatusOr<std::vector<GTestSection>> ReadGTestJson(
    const std::string& path);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_GTEST_SECTIONS_H_
