// The demo job's task functions (runner/examples/demo.textpb). Each is a
// TASKFORK_TASK: it runs in its own forked task process, logs with glog into
// TaskLog.<task id>, and reports sections through the task's report client.
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "glog/logging.h"
#include "reporter/client.h"
#include "runner/task_function.h"

namespace taskfork::runner::examples {
namespace {

using reporter::Result;

reporter::SectionOptions Testcase() {
  reporter::SectionOptions options;
  options.type = "Testcase";
  return options;
}

// Greets each argument in a section of its own, with two steps each.
TASKFORK_TASK(hello)(TaskContext& context) {
  for (const std::string& name : context.args()) {
    LOG(INFO) << "hello, " << name;
    if (context.reporter() == nullptr) continue;
    reporter::ScopedSection section =
        context.reporter()->Section(absl::StrCat("greet ", name), Testcase());
    {
      reporter::ScopedSection step = section.Step("say hello");
      LOG(INFO) << "saying hello to " << name;
    }
    reporter::ScopedSection step = section.Step("check the reply");
    step.SetResult(Result::kPassed);
  }
  return absl::OkStatus();
}

// Fails on purpose: a section whose check does not hold.
TASKFORK_TASK(always_fails)(TaskContext& context) {
  if (context.reporter() != nullptr) {
    reporter::ScopedSection section =
        context.reporter()->Section("link check", Testcase());
    section.SetResult(Result::kFailed, "eth0 is down (on purpose)");
  }
  LOG(ERROR) << "link eth0 is down";
  return absl::FailedPreconditionError("eth0 is down (a demo failure)");
}

// Sleeps for args[0] seconds (default 3600): the demo's timeout victim.
TASKFORK_TASK(sleeps)(TaskContext& context) {
  double seconds = 3600;
  if (!context.args().empty() &&
      !absl::SimpleAtod(context.args()[0], &seconds)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sleeps: not a number of seconds: ", context.args()[0]));
  }
  LOG(INFO) << "sleeping " << seconds << "s";
  absl::SleepFor(absl::Seconds(seconds));
  return absl::OkStatus();
}

}  // namespace
}  // namespace taskfork::runner::examples
