// The Slurm executor's pilot worker and its wire protocol (runner-internal).
// A worker is the runner binary started with --taskfork_worker=HOST:PORT (by
// srun, one per node): it connects back to the runner's SlurmExecutor,
// authenticates with the run's token, and runs each task it is sent through
// a LocalExecutor on its node, sending back how each ended.
//
//   int main(int argc, char** argv) {
//     if (auto code = MaybeRunSlurmWorker(argc, argv)) return *code;
//     ...                                        // the runner itself
//
// Protocol (both directions over one TCP connection):
//   stream  := frame*
//   frame   := length:uint32-little-endian payload:byte[length]  (<= 16 MiB)
//   payload := serialize::Encode of
//     worker -> runner: WorkerHello (first, once), then WorkerTaskEnd*
//     runner -> worker: WorkerCommand*
// A payload of another type, an oversize or truncated frame, or a hello with
// a wrong token ends the connection. The runner closing the connection makes
// the worker SIGKILL its tasks' process groups and exit.
#ifndef TASKFORK_RUNNER_SLURM_WORKER_H_
#define TASKFORK_RUNNER_SLURM_WORKER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "reporter/frame.h"
#include "runner/executor.h"
#include "runner/task_body.h"
#include "serialize/serialize.h"

namespace taskfork::runner {

// The worker flags (the runner binary's worker mode).
inline constexpr char kWorkerFlag[] = "--taskfork_worker";
inline constexpr char kWorkerRunInfoFlag[] = "--taskfork_worker_runinfo";
// The token file in the runinfo directory (0600, read by each worker).
inline constexpr char kWorkerTokenFile[] = "slurm_worker.token";
// Largest frame payload either side accepts.
inline constexpr uint32_t kMaxWorkerFrameSize = 16u << 20;

// The worker's first message.
struct WorkerHello {
  std::string token;
  std::string node;          // SLURMD_NODENAME, else the host name
  int64_t pid = 0;
  std::string slurm_job_id;  // SLURM_JOB_ID ("" outside Slurm)
  std::string slurm_step_id; // SLURM_STEP_ID
  // Why the worker cannot run tasks ("node n1 cannot write /runs/x: ...");
  // the worker exits after sending it.
  std::string error;
  TASKFORK_SERIALIZE(token, node, pid, slurm_job_id, slurm_step_id, error);
};

// A task as the worker rebuilds its TaskDefinition and TaskLaunch.
struct WorkerTask {
  std::string id;
  std::string function_name;  // a function task: its TaskRegistry name
  std::vector<std::string> args;
  std::vector<std::string> argv;  // a command task
  std::vector<std::pair<std::string, std::string>> env;
  std::string working_directory;
  bool gtest = false;
  std::string gtest_filter;
  std::optional<std::pair<int, int>> shard;  // index, total
  std::string log_path;
  std::string runinfo_dir;
  std::string reporter_socket;       // the reporter's address
  std::string reporter_secret_file;  // for a tcp: address
  TASKFORK_SERIALIZE(id, function_name, args, argv, env, working_directory,
                     gtest, gtest_filter, shard, log_path, runinfo_dir,
                     reporter_socket, reporter_secret_file);
};

struct WorkerCommand {
  enum Kind { kStart = 0, kStop = 1, kKill = 2 };
  int kind = kStart;
  uint64_t run = 0;
  WorkerTask task;                        // kStart
  absl::Duration grace = absl::ZeroDuration();  // kStop
  TASKFORK_SERIALIZE(kind, run, task, grace);
};

// How a task's process ended (ExitStatus on the wire).
struct WorkerExit {
  int64_t pid = 0;
  int exit_code = -1;
  int signal = 0;
  bool core_dumped = false;
  absl::Duration user_cpu;
  absl::Duration system_cpu;
  int64_t max_rss_bytes = 0;
  std::string uncaught_exception;
  TASKFORK_SERIALIZE(pid, exit_code, signal, core_dumped, user_cpu,
                     system_cpu, max_rss_bytes, uncaught_exception);
};

struct WorkerTaskEnd {
  uint64_t run = 0;
  absl::StatusOr<TaskOutcome> outcome = absl::UnknownError("no outcome");
  std::optional<WorkerExit> exit;
  TASKFORK_SERIALIZE(run, outcome, exit);
};

// TaskEnd <-> WorkerTaskEnd. FromWire: kInvalidArgument for a result value
// that names no reporter::Result.
WorkerTaskEnd ToWire(Executor::RunId run, const TaskEnd& end);
absl::StatusOr<TaskEnd> FromWire(const WorkerTaskEnd& end);

// One end of a worker connection: framed, typed messages over a socket.
// Send() blocks until written (MSG_NOSIGNAL: no SIGPIPE); Read() reads what
// is available once (call it when the socket is readable). Thread-compatible.
class WorkerChannel {
 public:
  explicit WorkerChannel(OwnedFd fd)
      : fd_(std::move(fd)), decoder_(kMaxWorkerFrameSize) {}
  WorkerChannel(WorkerChannel&&) = default;
  WorkerChannel& operator=(WorkerChannel&&) = default;

  int fd() const { return fd_.get(); }

  // Writes one frame holding `payload`. Errors: send(2)'s (EPIPE: the peer
  // closed), kInvalidArgument for a payload over kMaxWorkerFrameSize.
  absl::Status SendPayload(absl::string_view payload);
  template <typename T>
  absl::Status Send(const T& message) {
    return SendPayload(serialize::Encode(message));
  }

  // One read(2). Returns false at end of stream (kDataLoss if it cut a
  // frame). Errors: read(2)'s.
  absl::StatusOr<bool> Read();
  // The next complete message, std::nullopt when more bytes are needed.
  // Errors: kResourceExhausted (oversize frame), Decode's (another type,
  // corrupt bytes).
  template <typename T>
  absl::StatusOr<std::optional<T>> Next() {
    absl::StatusOr<std::optional<absl::string_view>> payload =
        decoder_.NextPayload();
    if (!payload.ok()) return payload.status();
    if (!payload->has_value()) return std::optional<T>();
    absl::StatusOr<T> message = serialize::Decode<T>(**payload);
    if (!message.ok()) return message.status();
    return std::optional<T>(*std::move(message));
  }

 private:
  OwnedFd fd_;
  reporter::FrameDecoder decoder_;
};

// Connects to "HOST:PORT" (IPv4 literal or a name). Errors: kInvalidArgument
// for a malformed address, getaddrinfo's or connect(2)'s otherwise.
absl::StatusOr<OwnedFd> ConnectTcp(absl::string_view address);

// The worker's configuration (from its flags).
struct WorkerConfig {
  std::string address;      // HOST:PORT of the runner
  std::string runinfo_dir;  // holds the token file; the worker must write it
};

// Runs the worker until the runner closes the connection. Returns the
// process's exit code: 0 after the runner closed it, 3 when it cannot start
// (token unreadable, runinfo not writable, no connection: said on stderr
// and, when connected, in the hello), 4 on a protocol error from the runner.
int RunSlurmWorker(const WorkerConfig& config);

// When argv holds --taskfork_worker=HOST:PORT (and
// --taskfork_worker_runinfo=DIR): runs the worker and returns its exit code
// (2 for a missing or malformed flag). std::nullopt otherwise: not a worker.
std::optional<int> MaybeRunSlurmWorker(int argc, char** argv);

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_SLURM_WORKER_H_
