// ReporterServer: the job's report server, in its own forked process.
//
//   ReporterServerOptions options;  options.runinfo_dir = dir;  options.job_name = "nightly";
//   TASKFORK_ASSIGN_OR_RETURN(ReporterServer server, ReporterServer::Start(options));
//   ... tasks connect ReportClients to server.socket_path() (or, with
//   options.tcp_listen, to server.tcp_address() with server.secret_file()) ...
//   TASKFORK_ASSIGN_OR_RETURN(FinalizeResult done, server.Finalize());
//
// The parent (the runner) creates the listening socket, then forks the server
// process, which runs one epoll loop for every connection:
// - clients (ReportClient, one per task process) send events, applied to a
//   ReportBuilder in arrival order per connection;
// - subscribers (ReportSubscriber) receive every applied event live;
// - the runner talks over a private socketpair (RegisterTask,
//   RecordTaskResult, Finalize), so only it can finalize.
// Security: the socket is mode 0600 and every peer's uid is checked with
// SO_PEERCRED; other users get a Refusal frame and are disconnected.
// Optionally (tcp_listen) the server also listens on TCP, for task processes
// on other hosts: there the peer's uid is unknown, so a TCP peer must send
// the run's secret (secret.h; the file reporter.secret, mode 0600, in the
// runinfo directory) in its hello, or it gets a Refusal ("no secret" /
// "wrong secret"), the refusal is logged with the peer's address, and the
// connection closes before it can add anything to the report. TCP is not
// encrypted: the secret keeps other users and hosts out, not an eavesdropper
// on the network.
// Robustness: a malformed, oversize or out-of-order frame closes only that
// connection: the reason is logged, the task is marked Errored, and the
// connection's open sections are stopped as Errored with the reason
// "reporter client of task <id> (pid <pid>) disconnected: <why>". A client
// that disconnects with sections open gets them stopped as Errored with the
// reason "reporter client of task <id> (pid <pid>) disconnected".
// If the runner dies (the control socket closes), the server writes the report
// as it is and exits. Paths longer than sun_path allows: the socket is bound
// in a fresh 0700 directory under `short_socket_dir` and `socket_path` is a
// symlink to it (ReportClient follows it).
//
// Life cycle: | running | Finalize() -> finalized (server exited) |
//             | running | destructor  -> server killed (no report) |
//             | running | server dies -> calls return kUnavailable |
#ifndef TASKFORK_REPORTER_SERVER_H_
#define TASKFORK_REPORTER_SERVER_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <map>
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
#include "reporter/writers.h"

namespace taskfork::reporter {

// The server process's name (/proc/<pid>/comm, ps, top), set as it starts.
inline constexpr char kServerProcessName[] = "reporter";

struct ReporterServerOptions {
  // Directory results.json and xunit.xml are written to. Must exist.
  std::string runinfo_dir;
  // Where clients connect. Empty: <runinfo_dir>/reporter.sock. Must not
  // exist yet.
  std::string socket_path;
  // JobReport name and id (id defaults to the name). Name required.
  std::string job_name;
  std::string job_id;
  // JobReport.extra (e.g. "cli", "jobfile"): written into results.json.
  std::map<std::string, std::string> extra;
  // Largest frame accepted from a client; larger ones close the connection.
  uint32_t max_frame_size = kDefaultMaxFrameSize;
  // Bytes queued for one slow subscriber before it is disconnected.
  size_t max_subscriber_backlog = 64u << 20;
  // Parent directory of the fallback socket for paths too long for sun_path.
  std::string short_socket_dir = "/tmp";
  // How long RegisterTask() / RecordTaskResult() wait for the server.
  absl::Duration control_timeout = absl::Seconds(30);
  // Also listen on TCP at "HOST:PORT" ("0.0.0.0:0": every interface, an
  // ephemeral port; see tcp_address()). Empty: the Unix socket only.
  std::string tcp_listen;
  // With tcp_listen: the secret file to create (never overwritten). Empty:
  // <runinfo_dir>/reporter.secret.
  std::string secret_file;
  // Refuse a client whose hello names a task that was not registered with
  // RegisterTask() (Refusal frame, logged, connection closed), so a foreign
  // or confused program cannot add tasks to the report. The runner sets it;
  // false (the default) lets clients report tasks nobody registered.
  bool registered_tasks_only = false;
};

struct FinalizeResult {
  ReportPaths paths;
  JobReport report;  // what the files hold
};

// Handle to the server process, held by the process that started it.
// Move-only. Thread-compatible (one thread at a time). Fork: in a forked
// child the handle is inert (an at-fork handler closes the child's copy of the
// control socket, so the server still sees the runner die); calls there
// CHECK-fail and the destructor does nothing.
class ReporterServer {
 public:
  // Validates `options`, creates and binds the socket (mode 0600), forks the
  // server process and returns once clients can connect (connections queue
  // in the listen backlog until the loop runs). Errors: kInvalidArgument
  // (empty job name or runinfo_dir, runinfo_dir not a directory, a malformed
  // tcp_listen), kNotFound (runinfo_dir missing, a tcp_listen host that does
  // not resolve), kAlreadyExists (the socket path or the secret file exists),
  // the errno's code for socket/bind/listen/fork failures, naming the path
  // or address.
  static absl::StatusOr<ReporterServer> Start(ReporterServerOptions options);

  ReporterServer(ReporterServer&& other) noexcept;
  ReporterServer& operator=(ReporterServer&& other) noexcept;
  ReporterServer(const ReporterServer&) = delete;
  ReporterServer& operator=(const ReporterServer&) = delete;
  // If not finalized: SIGKILLs and reaps the server process and removes the
  // socket files and the secret file; no report is written (use a ReportBuilder to write one).
  ~ReporterServer();

  // The server process. Do not reap it yourself: a runner that calls
  // waitpid(-1, ...) must skip this pid (or CheckAlive() can only say that
  // it ended, not how).
  pid_t pid() const;
  // What clients connect to (give it to tasks, e.g. in
  // TASKFORK_REPORTER_SOCKET).
  const std::string& socket_path() const;
  // With tcp_listen: "tcp:HOST:PORT" for clients (ReportClientOptions::
  // socket_path), with the bound port; HOST is this host's name
  // (gethostname) when listening on every interface. Empty without TCP.
  const std::string& tcp_address() const;
  // With tcp_listen: the secret file clients read (ReportClientOptions::
  // secret_file); it stays after Finalize(). Empty without TCP.
  const std::string& secret_file() const;
  // Where the socket is bound: socket_path(), or the short fallback path.
  const std::string& bound_path() const;
  // The runner's end of the control socket: readable with end-of-file once
  // the server process has died (between calls), so a runner can poll it.
  // -1 after Finalize().
  int control_fd() const;

  // Declares a task before it runs (it appears in the report, Blocked if it
  // never runs). Errors: kAlreadyExists / kInvalidArgument from
  // ReportBuilder::RegisterTask; kUnavailable when the server died;
  // kDeadlineExceeded after control_timeout; kFailedPrecondition after
  // Finalize().
  absl::Status RegisterTask(const TaskInfo& task);

  // Records a task's result as the runner saw it (Task.result: crash,
  // timeout, exit code); rolled up with what the task reported. Errors as
  // RegisterTask (kInvalidArgument for an empty id, never kAlreadyExists).
  absl::Status RecordTaskResult(absl::string_view task_id,
                                const ResultInfo& result);

  // Posted requests: queued and sent without waiting for the server (it
  // sends no reply), so a runner's loop never blocks on the reporter per
  // task. They are sent by FlushPosted() (call it before the runner blocks,
  // e.g. in poll()), by the next RegisterTask(), RecordTaskResult() or
  // Finalize() (first, in order), or once 64 KiB are queued; the server
  // applies them in order, all before a later Finalize(). Errors: those of
  // sending (kUnavailable when the server died, kDeadlineExceeded after
  // control_timeout), kFailedPrecondition after Finalize(); an error applying
  // one (a duplicate task id, say) is logged by the server. Posted requests
  // not yet sent when the handle is destroyed are dropped (the server is
  // killed then anyway).
  //
  // RegisterTask() without waiting.
  absl::Status PostRegisterTask(const TaskInfo& task);
  // A task process `pid` started (as the task's client's StartTask would
  // report it; `start.time` empty: the server's now).
  absl::Status PostTaskStarted(absl::string_view task_id, pid_t pid,
                               const TaskStart& start);
  // A task ended with `result` (RecordTaskResult) at `time`; with pid != 0
  // also its stop (unless the task's client stopped the task itself).
  absl::Status PostTaskEnded(absl::string_view task_id, pid_t pid,
                             const ResultInfo& result, absl::Time time);
  // Task `task_id` runs again (a retry): what its ended processes reported
  // becomes its previous attempt (ReportBuilder::BeginAttempt) after the
  // server read their connections to the end; `logfile` is the new
  // attempt's TaskLog.
  absl::Status PostBeginAttempt(absl::string_view task_id,
                                absl::string_view logfile);
  // Sends every posted request now. Errors as above.
  absl::Status FlushPosted();
  // Sends them and waits until the server applied them (one round trip):
  // e.g. posted registrations before a task's client says hello, which
  // arrives on another socket (registered_tasks_only refuses an unknown
  // task). Errors as above.
  absl::Status SyncPosted();

  // Stops accepting connections, applies every frame clients already sent,
  // builds the report, writes results.json and xunit.xml atomically into
  // runinfo_dir, tells subscribers, and waits for the server process to exit.
  // Errors: kUnavailable (the server died; build the report in-process),
  // kDeadlineExceeded (no answer within `timeout`; the server is killed),
  // the write error (e.g. kPermissionDenied naming the file),
  // kFailedPrecondition when called twice.
  absl::StatusOr<FinalizeResult> Finalize(
      absl::Duration timeout = absl::Seconds(60));

  // OK while the server process runs (or after a clean Finalize()).
  // kUnavailable naming how it ended ("killed by SIGKILL", "exited with code
  // 3") once it died; the process is reaped then. Never blocks.
  absl::Status CheckAlive();

 private:
  struct Impl;
  explicit ReporterServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_SERVER_H_
