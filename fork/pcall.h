// Pcall (pyATS's pcall): call a function once per argument tuple, each call in
// its own forked child, and get the results back in argument order.
//
//   auto pings = Pcall([&](const std::string& host, int count) {
//     return Ping(testbed, host, count); },           // common args: captures
//     std::vector<std::tuple<std::string, int>>{{"r1", 5}, {"r2", 5}});
//   // absl::StatusOr<std::vector<PingResult>>, in argument order
//
// Semantics (pyATS's pcall, with C++ types):
// - One forked child per call (Process::StartWithResultInto), all started at
//   once unless PcallOptions::max_parallel limits them. Each child runs
//   `f(args...)` on its copy of the parent's memory (arguments are not copied
//   or serialized on the way in), and sends the result back through
//   //serialize: the result type must satisfy serialize::kIsSerializable.
//   Before that the child runs the child-exit handlers (fork/at_fork.h), so
//   what f left queued in inherited objects (report events) is not lost.
// - An element of `args` that is a std::tuple is unpacked into f's
//   parameters; any other element is passed as the single argument.
// - Results come back in argument order, whatever order the children end in.
//   The parent drains every result pipe while it waits, so results of any size
//   never deadlock (pyATS once hung on results over 64 KiB).
// - Timeout: PcallOptions::timeout bounds the whole call. On expiry every
//   running child's process group gets SIGTERM, then SIGKILL after
//   `terminate_grace`; all are reaped and the call returns kDeadlineExceeded.
// - A failed call (exception: kUnknown with type and what(); crash: kAborted
//   with the signal name; ...) fails Pcall() with that call's code and a
//   message naming its index and pid. PcallDetailed() returns every call's
//   outcome instead (which calls failed, and why).
// - No child outlives the call: every child is reaped before Pcall returns,
//   including on timeout and failure.
// - Join hooks: after reaping, the parent runs every hook registered with
//   RegisterPcallJoinHook with the pids of the started children in argument
//   order (//tasklog uses this to merge the children's log files).
//
// Thread safety: Pcall is thread-safe (independent calls may run in parallel
// threads). The child is made with ::fork(): at-fork handlers run (see
// fork/at_fork.h), and f must be fork-safe in the usual sense.
#ifndef TASKFORK_FORK_PCALL_H_
#define TASKFORK_FORK_PCALL_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "fork/process.h"
#include "fork/process_with_result.h"
#include "serialize/serialize.h"

namespace taskfork {

struct PcallOptions {
  // Bound on the whole call, from its start. On expiry: SIGTERM to every
  // running child, SIGKILL after terminate_grace, kDeadlineExceeded.
  absl::Duration timeout = absl::InfiniteDuration();
  // How long children get between SIGTERM and SIGKILL on timeout.
  absl::Duration terminate_grace = absl::Seconds(1);
  // Children running at once; 0 (the default, as pyATS): all calls at once.
  int max_parallel = 0;
  // Options of every child (name, process group, stdin, env, ...).
  ProcessOptions process_options;
};

// How one call ended.
template <typename T>
struct PcallOutcome {
  // The call's value, or why there is none: kUnknown (threw), kAborted
  // (crashed / exited early), kDeadlineExceeded (still running at the
  // timeout; terminated), kCancelled (not started before the timeout),
  // kDataLoss (undecodable result), or the error starting the child.
  absl::StatusOr<T> result;
  // The child's pid; 0 if it was never started.
  pid_t pid = 0;
  // How the child ended; empty if it was never started.
  std::optional<ExitStatus> exit_status;
};

template <typename T>
struct PcallResults {
  // OK iff every call returned a value. Otherwise kDeadlineExceeded when the
  // timeout expired, else the status of the first failed call (in argument
  // order) with "pcall call #<index> (pid <pid>): " before its message.
  absl::Status status;
  // One per call, in argument order.
  std::vector<PcallOutcome<T>> calls;
};

namespace fork_internal {

// One started (or not started) child of the byte-level Pcall.
struct RawPcallOutcome {
  absl::StatusOr<std::string> bytes = absl::CancelledError("not started");
  pid_t pid = 0;
  std::optional<ExitStatus> exit_status;
};

// Runs `count` children, child i sending the bytes `body(i, &out)` writes
// into `out`; see the semantics above. Returns the outcomes in order and
// the timeout status (OK or kDeadlineExceeded). Runs the join hooks.
absl::Status RunPcall(size_t count,
                      const std::function<void(size_t, std::string*)>& body,
                      const PcallOptions& options,
                      std::vector<RawPcallOutcome>* outcomes);

template <typename T>
struct IsTuple : std::false_type {};
template <typename... Ts>
struct IsTuple<std::tuple<Ts...>> : std::true_type {};

template <typename F, typename Arg>
decltype(auto) CallWith(F& f, const Arg& arg) {
  if constexpr (IsTuple<Arg>::value) {
    return std::apply(f, arg);
  } else {
    return f(arg);
  }
}

}  // namespace fork_internal

// ---------------------------------------------------------------- detailed

// Calls `targets[i]()` in child i; returns every outcome and the overall
// status (see PcallResults). Never fails as a whole: errors are per call.
template <typename T>
PcallResults<T> PcallTargetsDetailed(std::vector<absl::AnyInvocable<T()>> targets,
                                     const PcallOptions& options = {}) {
  static_assert(!std::is_void_v<T> && serialize::kIsSerializable<T>,
                "Pcall results must be serializable (serialize/serialize.h); "
                "return e.g. bool or int from a call that has no result");
  std::vector<fork_internal::RawPcallOutcome> raw;
  const absl::Status timeout = fork_internal::RunPcall(
      targets.size(),
      [&targets](size_t i, std::string* out) {
        serialize::EncodeTo(targets[i](), out);
      },
      options, &raw);
  PcallResults<T> results;
  results.calls.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); ++i) {
    PcallOutcome<T> outcome{
        fork_internal::DecodeResult<T>(raw[i].pid, std::move(raw[i].bytes)),
        raw[i].pid, std::move(raw[i].exit_status)};
    if (results.status.ok() && !outcome.result.ok()) {
      results.status = absl::Status(
          outcome.result.status().code(),
          absl::StrCat("pcall call #", i, " (pid ", outcome.pid,
                       "): ", outcome.result.status().message()));
    }
    results.calls.push_back(std::move(outcome));
  }
  if (!timeout.ok()) results.status = timeout;
  return results;
}

// Calls f(args[i]...) in child i (a std::tuple element is unpacked); returns
// every outcome. R is f's result type.
template <typename F, typename Arg,
          typename R = std::decay_t<decltype(fork_internal::CallWith(
              std::declval<F&>(), std::declval<const Arg&>()))>>
PcallResults<R> PcallDetailed(F&& f, const std::vector<Arg>& args,
                              const PcallOptions& options = {}) {
  std::vector<absl::AnyInvocable<R()>> targets;
  targets.reserve(args.size());
  // References are fine: each child runs on its copy of this memory.
  for (const Arg& arg : args) {
    targets.emplace_back([&f, &arg]() -> R { return fork_internal::CallWith(f, arg); });
  }
  return PcallTargetsDetailed<R>(std::move(targets), options);
}

// ---------------------------------------------------------------- values

// The values of every call in argument order, or PcallResults::status (the
// first failed call's status with its index and pid, or kDeadlineExceeded).
template <typename T>
absl::StatusOr<std::vector<T>> PcallTargets(
    std::vector<absl::AnyInvocable<T()>> targets,
    const PcallOptions& options = {}) {
  PcallResults<T> results = PcallTargetsDetailed<T>(std::move(targets), options);
  if (!results.status.ok()) return results.status;
  std::vector<T> values;
  values.reserve(results.calls.size());
  for (PcallOutcome<T>& call : results.calls) {
    values.push_back(*std::move(call.result));
  }
  return values;
}

// f(args[i]...) in child i for every i; the values in argument order, or the
// status of the first failed call / kDeadlineExceeded (see PcallResults).
template <typename F, typename Arg,
          typename R = std::decay_t<decltype(fork_internal::CallWith(
              std::declval<F&>(), std::declval<const Arg&>()))>>
absl::StatusOr<std::vector<R>> Pcall(F&& f, const std::vector<Arg>& args,
                                     const PcallOptions& options = {}) {
  PcallResults<R> results = PcallDetailed(f, args, options);
  if (!results.status.ok()) return results.status;
  std::vector<R> values;
  values.reserve(results.calls.size());
  for (PcallOutcome<R>& call : results.calls) {
    values.push_back(*std::move(call.result));
  }
  return values;
}

// ---------------------------------------------------------------- join hooks

// A hook run in the parent after every Pcall (also a failed or timed-out
// one) that started at least one child, once all its children were reaped,
// with their pids in argument order (calls never started are left out).
// For example //tasklog appends each child's log file to the task's log.
using PcallJoinHook = std::function<void(absl::Span<const pid_t>)>;

// A registered PcallJoinHook. Move-only RAII handle: the destructor (or
// Reset()) unregisters, waiting for running invocations of the hook to end,
// so that the hook never runs after it returns. Thread-compatible.
class PcallJoinHookRegistration {
 public:
  PcallJoinHookRegistration() = default;
  PcallJoinHookRegistration(PcallJoinHookRegistration&& other) noexcept
      : id_(std::exchange(other.id_, 0)) {}
  PcallJoinHookRegistration& operator=(PcallJoinHookRegistration&& other) noexcept {
    if (this != &other) {
      Reset();
      id_ = std::exchange(other.id_, 0);
    }
    return *this;
  }
  PcallJoinHookRegistration(const PcallJoinHookRegistration&) = delete;
  PcallJoinHookRegistration& operator=(const PcallJoinHookRegistration&) = delete;
  ~PcallJoinHookRegistration() { Reset(); }

  // Unregisters now; no-op when empty. Waits until no Pcall is running join
  // hooks (in any thread), so the hook is not running when it returns. Must
  // not be called from a hook.
  void Reset();
  bool registered() const { return id_ != 0; }

 private:
  friend PcallJoinHookRegistration RegisterPcallJoinHook(PcallJoinHook hook);
  explicit PcallJoinHookRegistration(uint64_t id) : id_(id) {}
  uint64_t id_ = 0;
};

// Registers `hook` (non-empty) until the returned handle is destroyed. Hooks
// run in registration order, in the thread that called Pcall, without a lock
// held: a hook may run concurrently with itself for Pcalls in several threads,
// and may fork or Pcall, but must not Reset() a registration (it would wait
// for its own run to end). A hook
// registered in a child (after fork) runs only in that process. Thread-safe.
[[nodiscard]] PcallJoinHookRegistration RegisterPcallJoinHook(PcallJoinHook hook);

}  // namespace taskfork

#endif  // TASKFORK_FORK_PCALL_H_
