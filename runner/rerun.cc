#include "runner/rerun.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/status_macros.h"
#include "reporter/report.pb.h"
#include "reporter/result.h"
#include "reporter/results_json_reader.h"

namespace taskfork::runner {
namespace {

using reporter::ResultCode;

// "YYYYmmdd-HHMMSS.ffffff", optionally "-n": what RunInfo appends.
bool IsRunTime(absl::string_view s) {
  constexpr absl::string_view kShape = "dddddddd-dddddd.dddddd";
  if (s.size() < kShape.size()) return false;
  for (size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = std::isdigit(static_cast<unsigned char>(s[i])) != 0;
    if (kShape[i] == 'd' ? !digit : s[i] != kShape[i]) return false;
  }
  const absl::string_view rest = s.substr(kShape.size());
  if (rest.empty()) return true;
  if (rest.size() < 2 || rest[0] != '-') return false;
  return std::all_of(rest.begin() + 1, rest.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

bool Succeeded(const reporter::ResultInfo& result) {
  const auto r = reporter::ResultFromCode(result.value());
  return r.has_value() && reporter::IsSuccess(*r);
}

}  // namespace

absl::StatusOr<RerunPlan> PlanRerun(const std::string& runinfo_root,
                                    absl::string_view job_name) {
  const std::string prefix = absl::StrCat(job_name, ".");
  std::vector<std::string> runs;
  DIR* dir = ::opendir(runinfo_root.c_str());
  if (dir == nullptr) {
    if (errno != ENOENT) return ErrnoError(errno, "opendir", runinfo_root);
  } else {
    while (const dirent* entry = ::readdir(dir)) {
      const std::string name = entry->d_name;
      if (absl::StartsWith(name, prefix) &&
          IsRunTime(absl::string_view(name).substr(prefix.size()))) {
        runs.push_back(name);
      }
    }
    ::closedir(dir);
  }
  std::sort(runs.begin(), runs.end());  // the time in the name sorts
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    const std::string run_dir = absl::StrCat(runinfo_root, "/", *it);
    const std::string path = absl::StrCat(run_dir, "/results.json");
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) continue;  // killed before its report
    TASKFORK_ASSIGN_OR_RETURN(reporter::JobReport report,
                              reporter::ReadResultsJson(path));
    if (report.name() != job_name) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is a report of job \"", report.name(),
                       "\", not \"", job_name, "\""));
    }
    RerunPlan plan;
    plan.previous_dir = run_dir;
    plan.previous_uid = report.id().empty() ? *it : report.id();
    for (const reporter::TaskReport& task : report.tasks()) {
      RerunPlan::TaskPlan& entry = plan.tasks[task.id()];
      if (Succeeded(task.result())) {
        entry.skip_reason = absl::StrCat(
            reporter::ResultName(*reporter::ResultFromCode(task.result().value())),
            " in run ", plan.previous_uid);
        continue;
      }
      entry.rerun = true;
      ++plan.rerun_count;
      ResultCode worst_section = reporter::RESULT_UNSPECIFIED;
      for (const reporter::Section& section : task.sections()) {
        worst_section = std::max(worst_section, section.result().value());
        if (!Succeeded(section.result())) {
          entry.failed_tests.push_back(section.name());
        }
      }
      // Only failed tests and nothing else: those tests. A crash, a timeout
      // or a failure outside the tests (the tests after a crash never ran):
      // all of it again.
      if (task.result().value() != reporter::RESULT_FAILED ||
          worst_section != reporter::RESULT_FAILED) {
        entry.failed_tests.clear();
      }
    }
    return plan;
  }
  return absl::NotFoundError(absl::StrCat(
      "no finished run of job \"", job_name, "\" in ", runinfo_root,
      " (a directory ", prefix, "<time> with results.json): run the job "
      "once without --rerun_failed"));
}

}  // namespace taskfork::runner
