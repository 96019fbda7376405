#include "reporter/result.h"

#include "glog/logging.h"

namespace taskfork::reporter {

absl::string_view ResultName(Result r) {
  switch (r) {
    case Result::kSkipped:
      return "skipped";
    case Result::kPassed:
      return "passed";
    case Result::kPassx:
      return "passx";
    case Result::kBlocked:
      return "blocked";
    case Result::kFailed:
      return "failed";
    case Result::kErrored:
      return "errored";
    case Result::kAborted:
      return "aborted";
  }
  LOG(FATAL) << "invalid Result " << static_cast<int>(r);
  return "";
}

std::optional<Result> ParseResult(absl::string_view name) {
  for (Result r : kAllResults) {
    if (ResultName(r) == name) return r;
  }
  return std::nullopt;
}

}  // namespace taskfork::reporter
