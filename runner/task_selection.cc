#include "runner/task_selection.h"

#include <algorithm>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace taskfork::runner {

absl::StatusOr<std::vector<bool>> SelectTaskIds(
    const std::string& pattern, absl::Span<const std::string> ids) {
  std::regex regex;
  try {
    regex.assign(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", pattern, "\" is not a valid regular expression: ", e.what()));
  }
  std::vector<bool> selected;
  selected.reserve(ids.size());
  for (const std::string& id : ids) {
    selected.push_back(std::regex_match(id, regex));
  }
  if (std::find(selected.begin(), selected.end(), true) == selected.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", pattern, "\" matches no task id (the regular "
                     "expression must match a whole id); the tasks are: ",
                     absl::StrJoin(ids, ", ")));
  }
  return selected;
}

}  // namespace taskfork::runner
