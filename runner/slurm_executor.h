// SlurmExecutor: runs a job's tasks on a Slurm cluster through pilot
// workers. On the first Start it launches one worker per node (`srun
// --nodes=N --ntasks-per-node=1 <this binary> --taskfork_worker=HOST:PORT`,
// see runner/slurm_worker.h), accepts their connections on a TCP socket
// (each authenticates with a random per-run token from a 0600 file in the
// runinfo directory), and sends each Start/Stop/Kill to a worker, which
// forks the task on its node exactly as the LocalExecutor does here.
//
//   TASKFORK_ASSIGN_OR_RETURN(auto executor, SlurmExecutor::Create(
//       {.job_name = "nightly", .run_uid = uid, .runinfo_dir = dir, .nodes = 2}));
//   TASKFORK_ASSIGN_OR_RETURN(pid_t pid, executor->Start(run, launch));  // 0
//
// The runinfo directory must be on storage every node sees (task logs,
// reports and the token are there); a worker that cannot write it says so
// ("node n1 cannot write /runs/x: ...") and Start fails with that message.
#ifndef TASKFORK_RUNNER_SLURM_EXECUTOR_H_
#define TASKFORK_RUNNER_SLURM_EXECUTOR_H_

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "base/fd.h"
#include "fork/process.h"
#include "fork/process_set.h"
#include "runner/executor.h"
#include "runner/slurm_worker.h"

namespace taskfork::runner {

struct SlurmExecutorOptions {
  // Name the Slurm job taskfork-<job_name>-<run_uid> (scancel and squeue
  // find it by that name).
  std::string job_name;
  std::string run_uid;
  // The run's directory: the token file goes there. Must exist.
  std::string runinfo_dir;
  // Workers (nodes, one worker each). >= 1.
  int nodes = 1;
  // Extra srun arguments (--partition=..., --time=...), before the binary.
  std::vector<std::string> srun_args;
  // The worker binary; empty: this process's own (/proc/self/exe), which
  // must then be on storage the nodes see.
  std::string worker_binary;
  // Arguments of the worker binary before the worker flags.
  std::vector<std::string> worker_args;
  // The address the workers connect to (the listener binds it, port 0).
  std::string listen_host = "127.0.0.1";
  // false: start the `nodes` workers as local child processes instead of
  // through srun (the tests of the protocol without a cluster).
  bool use_srun = true;
  // How long the first Start waits for every worker to connect (a queued
  // allocation waits in Start).
  absl::Duration connect_timeout = absl::Minutes(2);
  // How long a connection may take to send its hello.
  absl::Duration hello_timeout = absl::Seconds(10);
};

// Thread-compatible (the runner's thread). Destroying it closes the worker
// connections (each worker SIGKILLs its tasks' groups and exits), waits for
// srun (bounded), scancels the job by name and waits (bounded, 20 s) until
// squeue no longer lists it, and removes the token file.
class SlurmExecutor : public Executor {
 public:
  // Writes the token file and listens. Errors: kInvalidArgument for bad
  // options, kNotFound when srun/scancel/squeue are not on PATH, the
  // file's and socket's errno errors.
  static absl::StatusOr<std::unique_ptr<SlurmExecutor>> Create(
      SlurmExecutorOptions options);
  SlurmExecutor(const SlurmExecutor&) = delete;
  SlurmExecutor& operator=(const SlurmExecutor&) = delete;
  ~SlurmExecutor() override;

  // Returns 0 (no local pid). Errors: kFailedPrecondition for a function
  // task without function_name (a lambda cannot run on a worker) or for
  // stdin other than /dev/null; kUnavailable when no worker is (or is any
  // longer) connected, naming why (srun's exit, a worker's error, a lost
  // worker); kDeadlineExceeded when the workers did not connect in time.
  absl::StatusOr<pid_t> Start(RunId run, const TaskLaunch& launch) override;
  void Stop(RunId run, absl::Duration grace) override;
  void Kill(RunId run) override;
  // A run of a worker whose connection closes (node, step or worker lost)
  // ends with outcome kUnavailable "slurm job 12 step 0 on node n1 lost:
  // connection closed".
  absl::Status Wait(absl::Time deadline, absl::Span<const int> fds,
                    Events* events) override;

  // The Slurm job name (taskfork-<job>-<uid>).
  const std::string& slurm_job_name() const { return slurm_job_name_; }
  // HOST:PORT the workers connect to.
  const std::string& address() const { return address_; }
  // The connected workers' pids (on their nodes).
  std::vector<pid_t> worker_pids() const;

 private:
  struct Worker {
    std::optional<WorkerChannel> channel;
    bool authenticated = false;
    absl::Time hello_deadline;
    WorkerHello hello;
    std::set<RunId> runs;
  };
  explicit SlurmExecutor(SlurmExecutorOptions options);
  absl::Status Launch();
  // One round of waiting: accepts, reads workers, reaps launchers; caller fds
  // that are ready are appended to `ready_fds`.
  absl::Status Pump(absl::Time deadline, absl::Span<const int> fds,
                    std::vector<int>* ready_fds);
  void Accept();
  void ReadWorker(Worker& worker);
  void LoseWorker(Worker& worker, const std::string& why);
  void SendOrLose(Worker& worker, const WorkerCommand& command);
  std::string Describe(const Worker& worker) const;
  int Authenticated() const;
  void CleanUpSlurmJob();

  SlurmExecutorOptions options_;
  std::string slurm_job_name_;
  std::string token_;
  std::string token_path_;
  std::string address_;
  std::string srun_, scancel_, squeue_;
  OwnedFd listener_;
  bool launched_ = false;
  std::vector<std::unique_ptr<Process>> launchers_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::map<RunId, Worker*> runs_;
  std::vector<std::pair<RunId, TaskEnd>> ended_;
  // Why workers are missing (launcher exits, refused or lost workers).
  std::vector<std::string> problems_;
  ProcessSet waiting_;
};

}  // namespace taskfork::runner

#endif  // TASKFORK_RUNNER_SLURM_EXECUTOR_H_
