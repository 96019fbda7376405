// The demo job's task functions (runner/examples/demo.textpb). Each is a
// TASKFORK_TASK: it runs in its own forked task process, logs with glog into
// TaskLog.<task id>, and reports sections through the task's report client.
#include <unistd.h>

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fork/pcall.h"
#include "glog/logging.h"
#include "ipc/queue.h"
#include "ipc/typed.h"
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

// pyATS pcall inside a task: each argument is squared in its own forked child
// (whose log becomes TaskLog.pcall:pid-<pid>, merged back into this task's
// log after the call); results come back typed, in argument order.
TASKFORK_TASK(pcall_squares)(TaskContext& context) {
  std::vector<int64_t> numbers;
  for (const std::string& arg : context.args()) {
    int64_t n;
    if (!absl::SimpleAtoi(arg, &n)) {
      return absl::InvalidArgumentError(absl::StrCat("not a number: ", arg));
    }
    numbers.push_back(n);
  }
  absl::StatusOr<std::vector<int64_t>> squares = Pcall(
      [](int64_t n) {
        LOG(INFO) << "child " << ::getpid() << " squares " << n;
        return n * n;
      },
      numbers);
  if (!squares.ok()) return squares.status();
  for (size_t i = 0; i < numbers.size(); ++i) {
    LOG(INFO) << numbers[i] << "^2 = " << (*squares)[i];
    if ((*squares)[i] != numbers[i] * numbers[i]) {
      return absl::InternalError("wrong square");
    }
  }
  return absl::OkStatus();
}

// Moves data between forked children through a shared-memory ipc::Queue:
// args[0] producers each put args[1] records; this task consumes them all.
TASKFORK_TASK(queue_pipeline)(TaskContext& context) {
  int producers = 2, per_producer = 1000;
  if (context.args().size() >= 2 &&
      (!absl::SimpleAtoi(context.args()[0], &producers) ||
       !absl::SimpleAtoi(context.args()[1], &per_producer))) {
    return absl::InvalidArgumentError("args: producers records_each");
  }
  absl::StatusOr<ipc::Queue> queue = ipc::Queue::Create({.capacity_bytes = 1 << 16});
  if (!queue.ok()) return queue.status();
  std::vector<int> ids(producers);
  for (int i = 0; i < producers; ++i) ids[i] = i;
  // The producers run in forked children (Pcall) while this process consumes.
  int64_t sum = 0;
  absl::Status consumed;
  std::thread consumer([&] {
    for (int n = 0; n < producers * per_producer; ++n) {
      absl::StatusOr<std::pair<int, int>> item =
          ipc::GetValue<std::pair<int, int>>(*queue, absl::Seconds(30));
      if (!item.ok()) {
        consumed = item.status();
        return;
      }
      sum += item->second;
    }
  });
  absl::StatusOr<std::vector<int>> sent = Pcall(
      [&](int producer) {
        for (int k = 0; k < per_producer; ++k) {
          if (!ipc::PutValue(*queue, std::make_pair(producer, k)).ok()) return k;
        }
        return per_producer;
      },
      ids);
  consumer.join();
  if (!sent.ok()) return sent.status();
  if (!consumed.ok()) return consumed;
  const int64_t expected =
      static_cast<int64_t>(producers) * per_producer * (per_producer - 1) / 2;
  LOG(INFO) << producers << " producers sent " << producers * per_producer
            << " records through the queue; sum " << sum;
  return sum == expected ? absl::OkStatus()
                         : absl::DataLossError(absl::StrCat(
                               "sum ", sum, ", expected ", expected));
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
