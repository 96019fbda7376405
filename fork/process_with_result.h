// ProcessWithResult<T>: run a callable returning T in a forked child; the
// parent gets absl::StatusOr<T> (pyATS's Task.result), carried by
// //serialize through the child's result pipe.
//
//   TASKFORK_ASSIGN_OR_RETURN(auto p, ProcessWithResult<Report>::Start({}, [&] {
//     return RunChecks(testbed); }));
//   TASKFORK_ASSIGN_OR_RETURN(Report report, p.Join(absl::Minutes(5)));
//
// or in one call: `absl::StatusOr<Report> r = RunInChild<Report>({}, body);`
//
// T is any type taskfork::serialize supports (serialize::kIsSerializable<T>;
// scalars, strings, std containers, tuples, optional, variant, absl::Status,
// absl::StatusOr<U>, TASKFORK_SERIALIZE classes, ...). The child encodes the
// value after the body returns and writes it to a CLOEXEC pipe; the parent
// drains the pipe while it waits, so large results (100 MiB and more) do not
// deadlock. Fork, process group, stdin, timeouts, Terminate() and destruction
// behave as for Process (fork/process.h), which process() exposes.
#ifndef TASKFORK_FORK_PROCESS_WITH_RESULT_H_
#define TASKFORK_FORK_PROCESS_WITH_RESULT_H_

#include <string>
#include <type_traits>
#include <utility>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "fork/process.h"
#include "serialize/serialize.h"

namespace taskfork {

namespace fork_internal {

// Turns the bytes of a reaped result child into a T: decode errors become
// kDataLoss naming the pid; child errors pass through (see
// Process::TakeResultBytes()).
template <typename T>
absl::StatusOr<T> DecodeResult(pid_t pid, absl::StatusOr<std::string> bytes) {
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<T> value = serialize::Decode<T>(*bytes);
  if (!value.ok()) {
    return absl::DataLossError(absl::StrCat("decoding the result of pid ", pid,
                                            ": ", value.status().ToString()));
  }
  return value;
}

}  // namespace fork_internal

// A forked child whose body returns a T. Move-only; thread-compatible.
template <typename T>
class ProcessWithResult {
  static_assert(!std::is_void_v<T>,
                "a body without a result: use Process::Start (fork/process.h)");
  static_assert(serialize::kIsSerializable<T>,
                "T must be serializable by taskfork::serialize (see "
                "serialize/serialize.h; add TASKFORK_SERIALIZE to a class)");

 public:
  // Forks a child that runs `body` and sends its value back. Errors as
  // Process::Start (kInvalidArgument for bad options, errno codes for
  // fork/pipe/pidfd failures).
  static absl::StatusOr<ProcessWithResult> Start(ProcessOptions options,
                                                 absl::AnyInvocable<T()> body) {
    TASKFORK_ASSIGN_OR_RETURN(
        Process process,
        Process::StartWithResultInto(
            std::move(options),
            [body = std::move(body)](std::string* out) mutable {
              serialize::EncodeTo(body(), out);
            }));
    return ProcessWithResult(std::move(process));
  }

  // Waits up to `timeout`, reaps the child and returns its value (moved out:
  // a second call returns kFailedPrecondition). Errors:
  // - kDeadlineExceeded: still running after `timeout` (Join again or
  //   Terminate through process());
  // - kUnknown: the body threw; "threw <type>: <what()>" in the message;
  // - kAborted: the child ended without a value: killed by a signal (its
  //   name is in the message, e.g. SIGSEGV) or exited early;
  // - kDataLoss: the bytes did not decode as a T;
  // - the child's setup error (kFailedPrecondition without a controlling
  //   terminal for StdinPolicy::kControllingTerminal, ...).
  // How the child ended is in exit_status() after the child was reaped.
  absl::StatusOr<T> Join(absl::Duration timeout = absl::InfiniteDuration()) {
    TASKFORK_RETURN_IF_ERROR(process_.Join(timeout).status());
    return fork_internal::DecodeResult<T>(process_.pid(),
                                          process_.TakeResultBytes());
  }

  // How the child ended; nullptr until reaped.
  const ExitStatus* exit_status() const { return process_.exit_status(); }

  pid_t pid() const { return process_.pid(); }
  // The underlying Process: pidfd(), result_fd() + DrainResult() to poll many
  // at once, Terminate(), Kill(), Signal(), is_alive().
  Process& process() { return process_; }
  const Process& process() const { return process_; }

 private:
  explicit ProcessWithResult(Process process) : process_(std::move(process)) {}
  Process process_;
};

// Start() + Join(): runs `body` in a forked child and returns its value.
// Errors as ProcessWithResult<T>::Start and Join; on kDeadlineExceeded the
// child is terminated (SIGTERM to its group, SIGKILL after 1 s) and reaped.
template <typename T>
absl::StatusOr<T> RunInChild(ProcessOptions options,
                             absl::AnyInvocable<T()> body,
                             absl::Duration timeout = absl::InfiniteDuration()) {
  TASKFORK_ASSIGN_OR_RETURN(
      ProcessWithResult<T> process,
      ProcessWithResult<T>::Start(std::move(options), std::move(body)));
  absl::StatusOr<T> result = process.Join(timeout);
  if (absl::IsDeadlineExceeded(result.status()) && !process.process().reaped()) {
    process.process().Terminate(absl::Seconds(1)).IgnoreError();
  }
  return result;
}

}  // namespace taskfork

#endif  // TASKFORK_FORK_PROCESS_WITH_RESULT_H_
