// Task selection: which task ids a pattern (the runner's --task=REGEX)
// selects, as an ECMAScript regular expression matching the whole id.
//
//   TASKFORK_ASSIGN_OR_RETURN(std::vector<bool> selected,
//                             SelectTaskIds("unit_.*", {"unit_a", "e2e"}));
//   // selected == {true, false}
#ifndef TASKFORK_RUNNER_TASK_SELECTION_H_
#define TASKFORK_RUNNER_TASK_SELECTION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace taskfork::runner {

// For each of `ids`, whether `pattern` (std::regex ECMAScript) matches all
// of it. Errors, both kInvalidArgument: `pattern` is not a valid regular
// expression (the message quotes it and says why); it matches none of
// `ids` (the message lists them). Thread-safe.
absl::StatusOr<std::vector<bool>> SelectTaskIds(
    const std::string& pattern, absl::Span<const std::string> ids);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_TASK_SELECTION_H_
