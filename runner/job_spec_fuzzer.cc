// libFuzzer target for the job spec path the runner takes before anything
// runs: arbitrary bytes -> ParseJobSpec (protobuf text format, then every
// check: names, ids, durations, functions, commands resolved on this
// machine's file system, read-only). What it checks besides "no crash, no
// leak, no UB":
//   - a rejected spec is kInvalidArgument and its message starts with the
//     spec's name ("<path>: ..." or "<path>:<line>:<column>: ...");
//   - an accepted spec is what the runtime relies on: at least one task,
//     unique valid ids, max_parallel >= 1, positive timeouts, a finite
//     positive termination grace, known functions, commands whose argv[0]
//     is an absolute path;
//   - parsing is deterministic (the same bytes give the same answer).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "runner/job_spec.h"
#include "runner/runinfo.h"

namespace {

using ::taskfork::runner::Job;
using ::taskfork::runner::JobSpecContext;
using ::taskfork::runner::JobTask;
using ::taskfork::runner::ParseJobSpec;

constexpr char kDisplayPath[] = "fuzz/job.textpb";

// Prints `what` and aborts, so libFuzzer records the input as a crash.
[[noreturn]] void Fail(absl::string_view what, absl::string_view detail) {
  std::cerr << "job_spec_fuzzer: " << what << "\n" << detail << "\n";
  std::abort();
}

const JobSpecContext& Context() {
  static const JobSpecContext* const context = [] {
    auto* c = new JobSpecContext;
    c->known_functions = {"hello", "pcall_squares", "queue_pipeline",
                         "always_fails", "sleeps"};
    c->path_env = "/usr/bin:/bin";
    c->cpu_count = 2;
    return c;
  }();
  return *context;
}

void CheckRejected(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kInvalidArgument) {
    Fail("a rejected spec is not kInvalidArgument", status.ToString());
  }
  if (status.message().empty()) Fail("empty error message", "");
  // Only the first line is checked: values quoted from the spec (ids, names)
  // may themselves contain newlines.
  if (!absl::StartsWith(status.message(), std::string(kDisplayPath) + ":")) {
    Fail("the error does not name the spec", status.ToString());
  }
}

void CheckAccepted(const Job& job) {
  if (job.tasks.empty()) Fail("accepted a job without tasks", job.spec_text);
  if (job.max_parallel < 1) Fail("max_parallel < 1", job.spec_text);
  if (!taskfork::runner::IsValidRunInfoName(job.name)) {
    Fail("accepted an invalid job name", job.name);
  }
  if (job.termination_grace <= absl::ZeroDuration() ||
      job.termination_grace == absl::InfiniteDuration()) {
    Fail("termination_grace not finite and positive", job.spec_text);
  }
  const auto& known = Context().known_functions;
  absl::flat_hash_set<std::string> ids;
  for (const JobTask& task : job.tasks) {
    if (!taskfork::runner::IsValidRunInfoName(task.id)) {
      Fail("accepted an invalid task id", task.id);
    }
    if (!ids.insert(task.id).second) Fail("duplicate task id", task.id);
    if (task.timeout <= absl::ZeroDuration()) {
      Fail("task timeout not positive", task.id);
    }
    if (task.shards < 1 || task.shards > taskfork::runner::kMaxShards) {
      Fail("shards out of range", task.id);
    }
    if (task.shards > 1 && !task.gtest) Fail("shards without gtest", task.id);
    switch (task.kind) {
      case JobTask::Kind::kFunction: {
        bool found = false;
        for (const std::string& name : known) found = found || name == task.function;
        if (!found) Fail("accepted an unknown function", task.function);
        if (!task.argv.empty()) Fail("a function task has argv", task.id);
        break;
      }
      case JobTask::Kind::kCommand:
        if (task.argv.empty() || task.argv[0].empty() || task.argv[0][0] != '/') {
          Fail("a command's argv[0] is not an absolute path", task.id);
        }
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<Job> job = ParseJobSpec(text, kDisplayPath, Context());
  if (!job.ok()) {
    CheckRejected(job.status());
  } else {
    if (job->spec_text != text) Fail("spec_text is not the input", "");
    CheckAccepted(*job);
  }
  const absl::StatusOr<Job> again = ParseJobSpec(text, kDisplayPath, Context());
  if (again.ok() != job.ok() ||
      (!job.ok() && again.status() != job.status()) ||
      (job.ok() && again->tasks.size() != job->tasks.size())) {
    Fail("parsing the same bytes twice gave different answers", "");
  }
  return 0;
}
