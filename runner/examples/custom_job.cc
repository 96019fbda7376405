// A job program written with the C++ job API instead of a job spec (pyATS's
// job file with `main(runtime)` and `Task`): it builds its own Runtime, starts
// tasks in code, decides from one task's result what runs next, and finishes
// the report.
//
//   tools/bazel run //runner/examples:custom_job                       # runs/custom.<time>/
//   tools/bazel run //runner/examples:custom_job -- --runinfo_dir=/tmp/runs --break_prepare
//
// The job: "prepare" writes a data file into the runinfo directory. Only if
// it passed, "sum" and "count" run in parallel over that file, each bounded
// by a max_runtime (Task::Wait terminates a task that overruns it);
// otherwise they never start and the report shows them Blocked. The exit
// code is the runner's (runner/README.md): 0 when every task passed.
//
// Ctrl-C while it waits: Task::Wait handles it as Runtime::RunAll does (the
// running tasks are aborted, those not started are Blocked, and the report
// is still written).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "reporter/result.h"
#include "runner/runtime.h"
#include "runner/task_function.h"

namespace taskfork::runner::examples {
namespace {

constexpr int kNumbers = 1000;
constexpr char kDataFile[] = "numbers.txt";

// Reads the numbers "prepare" wrote.
absl::Status ReadNumbers(const TaskContext& context,
                         std::vector<int64_t>* numbers) {
  const std::string path = absl::StrCat(context.runinfo_dir(), "/", kDataFile);
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  for (int64_t n; in >> n;) numbers->push_back(n);
  return absl::OkStatus();
}

// The first task: writes 1..kNumbers, one a line (or, with the "break" arg,
// fails as if the data source were down).
absl::Status Prepare(TaskContext& context) {
  if (!context.args().empty() && context.args()[0] == "break") {
    return absl::UnavailableError("the data source is down (on purpose)");
  }
  const std::string path = absl::StrCat(context.runinfo_dir(), "/", kDataFile);
  std::ofstream out(path);
  for (int i = 1; i <= kNumbers; ++i) out << i << "\n";
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  LOG(INFO) << "wrote " << kNumbers << " numbers to " << path;
  return absl::OkStatus();
}

// Checks the sum of the numbers in a reported section.
absl::Status Sum(TaskContext& context) {
  std::vector<int64_t> numbers;
  if (absl::Status read = ReadNumbers(context, &numbers); !read.ok()) {
    return read;
  }
  int64_t sum = 0;
  for (int64_t n : numbers) sum += n;
  const int64_t expected = int64_t{kNumbers} * (kNumbers + 1) / 2;
  LOG(INFO) << "sum " << sum << ", expected " << expected;
  if (context.reporter() != nullptr) {
    reporter::ScopedSection section = context.reporter()->Section("sum");
    if (sum != expected) {
      section.SetResult(reporter::Result::kFailed,
                        absl::StrCat("sum ", sum, " != ", expected));
    }
  }
  if (sum != expected) {
    return absl::FailedPreconditionError(
        absl::StrCat("sum ", sum, ", expected ", expected));
  }
  return absl::OkStatus();
}

absl::Status Count(TaskContext& context) {
  std::vector<int64_t> numbers;
  if (absl::Status read = ReadNumbers(context, &numbers); !read.ok()) {
    return read;
  }
  LOG(INFO) << numbers.size() << " numbers";
  if (numbers.size() != kNumbers) {
    return absl::FailedPreconditionError(
        absl::StrCat(numbers.size(), " numbers, expected ", kNumbers));
  }
  return absl::OkStatus();
}

std::string DefaultRunInfoRoot() {
  const char* bazel = std::getenv("BUILD_WORKING_DIRECTORY");
  return bazel != nullptr && *bazel != '\0' ? absl::StrCat(bazel, "/runs")
                                            : "runs";
}

int Main(int argc, char** argv) {
  RuntimeOptions options;
  options.job_name = "custom";
  options.runinfo_root = DefaultRunInfoRoot();
  bool break_prepare = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (absl::StartsWith(arg, "--runinfo_dir=")) {
      options.runinfo_root = arg.substr(arg.find('=') + 1);
    } else if (arg == "--break_prepare") {
      break_prepare = true;
    } else {
      std::fprintf(stderr,
                   "usage: custom_job [--runinfo_dir=DIR] [--break_prepare]\n");
      return kExitBadInput;
    }
  }
  options.argv.assign(argv, argv + argc);
  options.console_fd = STDOUT_FILENO;
  options.console_is_tty = ::isatty(STDOUT_FILENO);

  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<std::unique_ptr<Runtime>> runtime =
      Runtime::Create(std::move(options));
  if (!runtime.ok()) {
    std::fprintf(stderr, "custom_job: %s\n",
                 runtime.status().ToString().c_str());
    return kExitInfrastructure;
  }
  // Declared up front, so the report lists all three even if some never run.
  TaskDefinition prepare_definition;
  prepare_definition.id = "prepare";
  prepare_definition.description = "writes the numbers the others read";
  prepare_definition.body = Prepare;
  if (break_prepare) prepare_definition.args = {"break"};
  absl::StatusOr<Task*> prepare =
      (*runtime)->AddTask(std::move(prepare_definition));
  absl::StatusOr<Task*> sum = (*runtime)->AddTask(
      {.id = "sum", .description = "checks the sum", .body = Sum});
  absl::StatusOr<Task*> count = (*runtime)->AddTask(
      {.id = "count", .description = "checks the count", .body = Count});
  for (const auto* added : {&prepare, &sum, &count}) {
    if (!added->ok()) {
      std::fprintf(stderr, "custom_job: %s\n",
                   added->status().ToString().c_str());
      return kExitOther;
    }
  }

  // One task, waited for with a bound; then its result decides.
  const absl::Duration max_runtime = absl::Minutes(1);
  if (absl::Status started = (*prepare)->Start(); !started.ok()) {
    LOG(ERROR) << "prepare: " << started;  // the task is Errored
  } else if (absl::Status waited = (*prepare)->Wait(max_runtime);
             !waited.ok()) {
    LOG(ERROR) << "prepare: " << waited;  // terminated: Aborted
  }
  const std::optional<TaskResult>& prepared = (*prepare)->result();
  if (prepared.has_value() && prepared->result == reporter::Result::kPassed &&
      !(*runtime)->interrupted()) {
    // Two at once; each is bounded by its own max_runtime.
    for (Task* task : {*sum, *count}) {
      if (absl::Status started = task->Start(); !started.ok()) {
        LOG(ERROR) << task->id() << ": " << started;
      }
    }
    for (Task* task : {*sum, *count}) {
      if (absl::Status waited = task->Wait(max_runtime); !waited.ok()) {
        LOG(ERROR) << task->id() << ": " << waited;
      }
      if (task->result().has_value()) {
        LOG(INFO) << task->id() << " (pid " << task->pid().value_or(-1)
                  << "): " << reporter::ResultName(task->result()->result);
      }
    }
  } else {
    LOG(WARNING) << "prepare did not pass ("
                 << (prepared.has_value() ? prepared->reason : "no result")
                 << "): sum and count are not started";
  }
  return (*runtime)->Finish();
}

}  // namespace
}  // namespace taskfork::runner::examples

int main(int argc, char** argv) {
  return taskfork::runner::examples::Main(argc, argv);
}
