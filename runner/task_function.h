// Function tasks: C++ functions registered by name and run, without exec, in
// the forked task process (pyATS's testscript run by a Task).
//
//   TASKFORK_TASK(hello)(taskfork::runner::TaskContext& context) {
//     LOG(INFO) << "hello from " << context.id();   // goes to TaskLog.<id>
//     return absl::OkStatus();                      // -> Passed
//   }
//
// A job spec names it: task { id: "t1" function { name: "hello" args: "x" } }.
// The translation unit that defines tasks must be linked with alwayslink = 1
// (static registration), as in runner/examples/BUILD.
#ifndef TASKFORK_RUNNER_TASK_FUNCTION_H_
#define TASKFORK_RUNNER_TASK_FUNCTION_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "reporter/result.h"

namespace taskfork::reporter {
class ReportClient;
}  // namespace taskfork::reporter

namespace taskfork::runner {

// What a task function sees of its task. Lives in the task process; not
// thread-safe (use it from the task's thread, or synchronise).
class TaskContext {
 public:
  TaskContext(std::string id, std::vector<std::string> args,
              std::string runinfo_dir, reporter::ReportClient* reporter)
      : id_(std::move(id)),
        args_(std::move(args)),
        runinfo_dir_(std::move(runinfo_dir)),
        reporter_(reporter),
        reporter_made_(true) {}
  // With a report client made on demand: `make_reporter` runs at the first
  // reporter() call (if any) and what it returns is kept, so a task that
  // reports nothing never connects to the reporter.
  TaskContext(std::string id, std::vector<std::string> args,
              std::string runinfo_dir,
              std::function<reporter::ReportClient*()> make_reporter)
      : id_(std::move(id)),
        args_(std::move(args)),
        runinfo_dir_(std::move(runinfo_dir)),
        make_reporter_(std::move(make_reporter)) {}

  const std::string& id() const { return id_; }
  // The spec's FunctionTask.args.
  const std::vector<std::string>& args() const { return args_; }
  // The job's runinfo directory (logs and reports live there).
  const std::string& runinfo_dir() const { return runinfo_dir_; }
  // The task's report client (sections and steps), or nullptr when the
  // reporter is unavailable; the task still runs and its result still reaches
  // the runner. In a forked child it reconnects by itself.
  reporter::ReportClient* reporter() const {
    if (!reporter_made_) {
      reporter_made_ = true;
      if (make_reporter_) reporter_ = make_reporter_();
    }
    return reporter_;
  }

  // Sets the task's result explicitly (e.g. Skipped, Blocked, Passx): it
  // replaces the Passed of an OK return, and rolls up with the Failed of an
  // error return. The task's reported sections roll up with the outcome too.
  void SetResult(reporter::Result result, std::string reason) {
    result_ = result;
    reason_ = std::move(reason);
  }
  const std::optional<reporter::Result>& result() const { return result_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string id_;
  std::vector<std::string> args_;
  std::string runinfo_dir_;
  mutable reporter::ReportClient* reporter_ = nullptr;
  std::function<reporter::ReportClient*()> make_reporter_;
  mutable bool reporter_made_ = false;
  std::optional<reporter::Result> result_;
  std::string reason_;
};

// A task's body: OK -> Passed; an error -> Failed with the status as reason;
// an escaping exception -> Errored (see TaskContext::SetResult for the rest).
using TaskFunction = absl::Status (*)(TaskContext& context);

// Name -> function, filled by TASKFORK_TASK at static initialisation.
// Registration is not thread-safe (static init only); lookups are.
class TaskRegistry {
 public:
  struct Entry {
    TaskFunction function;
    const char* file;
    int line;
  };

  static TaskRegistry& Global();

  // CHECK-fails on an empty or duplicate name (a programmer error: two
  // TASKFORK_TASK with one name). Returns true, for static initialisers.
  bool Register(std::string name, TaskFunction function, const char* file,
                int line);
  // nullptr when `name` is unknown.
  const Entry* Find(absl::string_view name) const;
  // Every registered name, sorted.
  std::vector<std::string> Names() const;

 private:
  std::map<std::string, Entry, std::less<>> entries_;
};

// The outcome of running one task function in this process.
struct TaskFunctionOutcome {
  reporter::Result result = reporter::Result::kPassed;
  std::string reason;
};

// Runs `function` with `context` and turns its return, SetResult and any
// exception into an outcome as TaskFunction documents.
TaskFunctionOutcome RunTaskFunction(
    absl::FunctionRef<absl::Status(TaskContext&)> function,
    TaskContext& context);

}  // namespace taskfork::runner

// Defines and registers a task function named `name` (an identifier). Follow
// it with the parameter list and body:
//   TASKFORK_TASK(name)(taskfork::runner::TaskContext& context) { ... }
#define TASKFORK_TASK(name)                                               \
  static ::absl::Status TaskforkTaskFunction_##name(                      \
      ::taskfork::runner::TaskContext&);                                  \
  [[maybe_unused]] static const bool taskfork_task_registered_##name =    \
      ::taskfork::runner::TaskRegistry::Global().Register(                \
          #name, &TaskforkTaskFunction_##name, __FILE__, __LINE__);       \
  static ::absl::Status TaskforkTaskFunction_##name

#endif  // TASKFORK_RUNNER_TASK_FUNCTION_H_
