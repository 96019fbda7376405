// ReportClient: a task process's connection to the ReporterServer.
//
//   ReportClientOptions options;  options.socket_path = path;  options.task_id = "t1";
//   TASKFORK_ASSIGN_OR_RETURN(ReportClient client, ReportClient::Connect(options));
//   { ScopedSection tc = client.Section("check links");  tc.SetResult(Result::kFailed, "eth0 down"); }
//   TASKFORK_RETURN_IF_ERROR(client.Flush());
//
// - The server's address is its Unix socket path (or "unix:PATH"), or
//   "tcp:HOST:PORT" with the run's secret file (ReporterServer::tcp_address()
//   and secret_file()) for a process on another host. TCP is not encrypted.
// - Connect retries with doubling backoff, a bounded number of times.
// - Fork-aware: after fork(), the child's first call reconnects by itself
//   (an at-fork handler from //fork:at_fork drops the inherited connection
//   and buffered bytes in the child). A ScopedSection opened before the fork
//   can be used in the child to nest steps under it. The parent's connection
//   is untouched.
// - Buffered: events are queued and sent when the buffer passes
//   `buffer_bytes`, on Flush(), Sync(), Close(), before a fork (so a child
//   never repeats them), by the destructor, and when a forked child ends
//   through //fork (a Process or Pcall child, the runner's task process:
//   the client's child-exit handler, fork/at_fork.h), which runs no
//   destructors. That last send waits at most `io_timeout` and is skipped
//   after a failure (sticky, below). A process that crashes, is killed or
//   calls _exit() itself loses what it had not sent: Flush() first where
//   that matters.
// - Never hangs: every socket wait is bounded by `io_timeout`. When the server
//   is gone, the call that finds out returns kUnavailable and every later call
//   returns the same status at once (sticky) -- until a fork, after which the
//   child tries to connect again.
// Thread-safe: any thread may call any method.
#ifndef TASKFORK_REPORTER_CLIENT_H_
#define TASKFORK_REPORTER_CLIENT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "reporter/frame.h"
#include "reporter/report.pb.h"
#include "reporter/result.h"

namespace taskfork::reporter {

// Where the task's log file is now (for pyATS `logs {file, begin, size}`).
struct LogPosition {
  std::string file;
  uint64_t offset = 0;
};

struct ReportClientOptions {
  // The server's address (address.h): its socket path
  // (ReporterServer::socket_path()), "unix:PATH", or "tcp:HOST:PORT"
  // (ReporterServer::tcp_address()). Required.
  std::string socket_path;
  // The run's secret file (ReporterServer::secret_file()), read once by
  // Connect() and sent in the hello. Needed over TCP (the server refuses a
  // TCP client without it: "no secret"); ignored on a Unix socket.
  std::string secret_file;
  // The task this process reports for. Required.
  std::string task_id;
  // Connection attempts (ENOENT / ECONNREFUSED are retried; over TCP also
  // ETIMEDOUT / EHOSTUNREACH / ENETUNREACH, each attempt bounded by
  // io_timeout) and the backoff
  // between them: initial_backoff, doubling, at most max_backoff.
  int connect_attempts = 8;
  absl::Duration initial_backoff = absl::Milliseconds(10);
  absl::Duration max_backoff = absl::Milliseconds(500);
  // Longest wait for the server to take bytes or answer (Sync, handshake).
  absl::Duration io_timeout = absl::Seconds(10);
  // Queued bytes that trigger a send.
  size_t buffer_bytes = 64 * 1024;
  // Largest event sent; larger ones fail locally with kInvalidArgument (and
  // the connection stays up). Keep <= the server's max_frame_size.
  uint32_t max_frame_size = kDefaultMaxFrameSize;
  // If set, asked at section start and stop for the log file position.
  std::function<std::optional<LogPosition>()> log_position;
};

// What a section is; everything but `name` is optional.
struct SectionOptions {
  std::string type = "Section";  // pyATS type: "Testcase", "CommonSetup", ...
  std::string description;
  uint64_t parent_id = 0;  // 0: a top-level section of the task
};

class ReportClient;

// A section (or step) that stops when it goes out of scope, with the
// roll-up of every result set on it (Passed when none was set, or the
// children's). Move-only. Thread-compatible. Created by
// ReportClient::Section() or ScopedSection::Step(). A section that failed to
// start (server gone) is inert: Stop() returns that error.
// The ReportClient must outlive its sections and stay where it is (not be
// moved) while they exist.
// Fork: in a process other than the one that started it, the destructor does
// nothing and Stop() returns kFailedPrecondition; Step() works there (the
// child's steps nest under the parent's section).
class ScopedSection {
 public:
  ScopedSection() = default;
  ScopedSection(ScopedSection&& other) noexcept;
  ScopedSection& operator=(ScopedSection&& other) noexcept;
  ScopedSection(const ScopedSection&) = delete;
  ScopedSection& operator=(const ScopedSection&) = delete;
  // Stops the section if it is still running in this process; an error is
  // logged (call Stop() to see it).
  ~ScopedSection();

  // Rolls `result` into the section's result; the reason of the largest
  // result set so far is kept.
  void SetResult(Result result, absl::string_view reason = {});
  // A child section of type "Step".
  ScopedSection Step(std::string name, const char* file = __builtin_FILE(),
                     int line = __builtin_LINE());
  // Stops it now. Errors: the start error; kFailedPrecondition if stopped
  // already or in another process; those of ReportClient::StopSection.
  absl::Status Stop();

  uint64_t id() const { return id_; }
  // OK if the section started.
  const absl::Status& status() const { return status_; }

 private:
  friend class ReportClient;
  ReportClient* client_ = nullptr;
  uint64_t id_ = 0;
  pid_t owner_pid_ = 0;
  bool active_ = false;
  std::optional<Result> result_;
  std::string reason_;
  absl::Status status_;
};

class ReportClient {
 public:
  // Connects (with retries) and does the hello handshake. Errors:
  // kInvalidArgument (empty socket path or task id, a malformed address
  // naming it, path too long and not a symlink, a secret file without a
  // secret), kNotFound (a TCP host that does not resolve, a missing secret
  // file), kPermissionDenied (the socket or secret file is not ours, or the
  // server refused us: our uid, "no secret", "wrong secret"; the message has
  // its reason), kUnavailable (no server after every attempt; names the
  // address, attempts and errno), kDeadlineExceeded (no answer to hello
  // within io_timeout).
  static absl::StatusOr<ReportClient> Connect(ReportClientOptions options);

  ReportClient(ReportClient&& other) noexcept;
  ReportClient& operator=(ReportClient&& other) noexcept;
  ReportClient(const ReportClient&) = delete;
  ReportClient& operator=(const ReportClient&) = delete;
  // Flushes (bounded by io_timeout, errors ignored) and closes.
  ~ReportClient();

  // Task events. `start.time` / stop time default to now.
  absl::Status StartTask(TaskStart start = {});
  absl::Status StopTask(Result result, absl::string_view reason = {});

  // Starts a section and returns its id (unique in the task, also across
  // forked processes). Errors: kInvalidArgument (empty name, event larger
  // than max_frame_size), kUnavailable / kDeadlineExceeded (server gone or
  // stuck; sticky), kFailedPrecondition after Close().
  absl::StatusOr<uint64_t> StartSection(absl::string_view name,
                                        const SectionOptions& options = {},
                                        const char* file = __builtin_FILE(),
                                        int line = __builtin_LINE());
  // Stops section `id` with `result` (std::nullopt: Passed, or its
  // children's roll-up). `data` is pyATS result data. Errors as StartSection.
  absl::Status StopSection(
      uint64_t id, std::optional<Result> result = std::nullopt,
      absl::string_view reason = {},
      const google::protobuf::Map<std::string, std::string>* data = nullptr);

  // RAII form of StartSection/StopSection.
  ScopedSection Section(std::string name, SectionOptions options = {},
                        const char* file = __builtin_FILE(),
                        int line = __builtin_LINE());

  // Sends every queued event. Errors: kUnavailable (server gone),
  // kDeadlineExceeded (the server did not take the bytes within io_timeout),
  // kFailedPrecondition after Close().
  absl::Status Flush();
  // Flush() and wait until the server has applied every event sent so far.
  // Errors as Flush().
  absl::Status Sync();
  // Flushes and closes; later calls return kFailedPrecondition. Returns the
  // flush error, if any.
  absl::Status Close();

  const std::string& task_id() const;
  // The connection's state: OK, or the sticky error.
  absl::Status status() const;

 private:
  class Impl;
  explicit ReportClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Receives every event the server applies, live (the runner's progress
// display). Move-only. Thread-compatible.
class ReportSubscriber {
 public:
  // Connects to `socket_path` (an address, as ReportClientOptions) and
  // subscribes; over TCP it sends the secret from `secret_file`. Errors as
  // ReportClient::Connect.
  static absl::StatusOr<ReportSubscriber> Connect(
      const std::string& socket_path,
      absl::Duration timeout = absl::Seconds(10),
      const std::string& secret_file = "");

  // The next event, waiting up to `timeout`. Errors: kDeadlineExceeded (no
  // event yet; call again), kOutOfRange (the server closed the stream: it
  // finalized, dropped a slow subscriber, or died), kDataLoss (corrupt
  // frame).
  absl::StatusOr<Event> Next(absl::Duration timeout);

  // The socket, readable when an event (or the end) arrived, for poll().
  int fd() const;

 private:
  ReportSubscriber() = default;
  std::string path_;
  std::unique_ptr<FrameDecoder> decoder_;
  OwnedFd fd_;
};

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_CLIENT_H_
