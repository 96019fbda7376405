// Process: run a callable in a forked child and wait for it with a pidfd.
//
//   TASKFORK_ASSIGN_OR_RETURN(Process p, Process::Start({}, [] { return Work(); }));
//   TASKFORK_ASSIGN_OR_RETURN(ExitStatus status, p.Join(absl::Seconds(30)));
//   if (!status.success()) LOG(ERROR) << "child " << status.ToString();
//
// The child is made with ::fork() (so every at-fork handler of //fork:at_fork
// runs, see fork/at_fork.h), sets itself up as ProcessOptions say, runs the
// body, runs the child-exit handlers (RunChildExitHooks(): e.g. a report
// client sends the events the body left queued), sends its result or
// exception and _exit()s with the body's return value: static destructors and
// atexit handlers, which belong to the parent, do not run in the child; stdout
// and stderr are flushed (the parent flushes them before forking, so nothing
// buffered is written twice). A body that calls exit()/_exit() itself or
// crashes skips the child-exit handlers.
//
// Waiting: the parent holds a pidfd (pidfd_open, Linux >= 5.3) that becomes
// readable when the child exits; Join() sleeps in ppoll() on it and on the
// child's result pipe, never in a polling loop (a plain Start() child joined
// without a timeout: in a blocking wait4(), as it has nothing to drain).
// Every descriptor is O_CLOEXEC.
//
// Life cycle of one Process (`reaped` means the zombie was collected):
//
//   | state    | event                          | next     |
//   |----------|--------------------------------|----------|
//   | running  | Join(t) before the child ends  | running  (kDeadlineExceeded)
//   | running  | child ends, Join()             | reaped   (ExitStatus cached)
//   | running  | Terminate(grace) / Kill()      | reaped
//   | running  | destructor (kKillAndReap)      | killed with SIGKILL and reaped
//   | running  | destructor (kLeaveRunning)     | let go: runs on, unowned
//   | running  | destructor in another process  | nothing (a fork child's copy)
//   | reaped   | Join() / Terminate() / Kill()  | reaped   (cached status / no-op)
//
// Process groups: with `own_process_group` (the default) the child calls
// setpgid(0, 0) (and the parent does the same for it, so there is no race), and
// Terminate() / Kill() / Signal() address the whole group, so grandchildren
// that stay in it are ended too. The group is signalled only while the child
// is not yet reaped (its zombie keeps the group id from being reused).
// Descendants that leave the group (setsid, setpgid) need a Supervisor
// (fork/supervisor.h).
#ifndef TASKFORK_FORK_PROCESS_H_
#define TASKFORK_FORK_PROCESS_H_

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/fd.h"

namespace taskfork {

struct SpawnOptions;  // fork/spawn.h
class Process;
absl::StatusOr<Process> Spawn(SpawnOptions options);

namespace fork_internal {
// What a spawned child (fork/spawn.h) execs instead of running a body; built
// in the parent, read by the child without allocating.
struct ExecTarget {
  char* const* argv;  // argv[0] is the path given to execve
  const char* working_directory;  // nullptr: unchanged
};
}  // namespace fork_internal

// What the child's standard input is.
enum class StdinPolicy {
  // /dev/null, as Python's multiprocessing does: a child cannot steal the
  // terminal's input from the parent or another child. The default.
  kDevNull,
  // The parent's descriptor 0, unchanged.
  kInherit,
  // The controlling terminal (/dev/tty) reopened as descriptor 0, so that an
  // interactive debugger or prompt works in the child (pyATS's `pdb=True`).
  // With `own_process_group` the child also makes its group the terminal's
  // foreground group (as a shell does for a job; Ctrl-C then goes to the
  // child), and the parent gives the foreground back to its own group when it
  // reaps the child. Without a controlling terminal the child does not run
  // its body and Join() returns kFailedPrecondition.
  kControllingTerminal,
};

// What a Process handle's destructor does to a child that is still running
// (not reaped yet).
enum class DestructionPolicy {
  // SIGKILL to the child (its group with own_process_group), then reap it,
  // blocking until it is gone. The default: no child outlives its handle.
  kKillAndReap,
  // Leave the child running and let go of it: the handle closes its
  // descriptors and the child is no longer owned by any Process, so a
  // Supervisor (fork/supervisor.h) sees it as an orphan and may end and reap
  // it; without one it stays this process's child (a zombie once it exits,
  // until this process reaps it or exits).
  kLeaveRunning,
};

// How to start a child. A plain struct; every field has a usable default.
struct ProcessOptions {
  // The child's name: prctl(PR_SET_NAME) (the kernel keeps the first 15
  // bytes; visible in `ps -o comm`, top, /proc/PID/comm). Empty: unchanged.
  std::string name;
  // Also write `name` over the process's command line (ps, /proc/PID/cmdline),
  // as setproctitle does. Off by default because it overwrites the argv
  // strings in the child's memory: anything that kept a pointer to argv[i]
  // (program_invocation_name, glog's program name) sees the title in the child.
  // A title longer than the original command line area is truncated.
  bool set_cmdline_title = false;
  // Put the child in a new process group (setpgid(0, 0)) so that Terminate()
  // and Kill() reach its descendants too, and terminal Ctrl-C to the parent's
  // group does not.
  bool own_process_group = true;
  // A signal (e.g. SIGKILL, SIGTERM) the child gets when its parent dies:
  // PR_SET_PDEATHSIG, set without the getppid() race (if the parent died
  // before the prctl, the child sends it to itself). 0: none (the default).
  // The kernel sends it when the *thread* that forked exits, not the process:
  // start such children from a thread that outlives them (e.g. the main
  // thread), not from a short-lived worker thread.
  int parent_death_signal = 0;
  // Standard input of the child; see StdinPolicy.
  StdinPolicy stdin_policy = StdinPolicy::kDevNull;
  // Environment variables set (added or replaced) in the child, in order.
  // Names must be non-empty and contain neither '=' nor NUL.
  std::vector<std::pair<std::string, std::string>> env;
  // Reset in the child: an empty signal mask, and the default disposition of
  // SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE and SIGCHLD (a parent that blocks
  // SIGTERM for a signalfd or ignores SIGINT must not pass that on, or
  // Terminate() would not work). False: inherit mask and dispositions.
  bool reset_signals = true;
  // What the handle's destructor does to a child that still runs. Whatever
  // the policy, a handle destroyed in any process other than the one that
  // started the child (a copy inherited by a fork child, which is not the
  // child's parent) only closes its descriptors: it never signals or waits.
  DestructionPolicy on_destruction = DestructionPolicy::kKillAndReap;
};

// How a child ended, from wait4(2).
struct ExitStatus {
  pid_t pid = 0;
  // The exit code when the child exited (0..255), else -1.
  int exit_code = -1;
  // The signal that killed it, else 0.
  int signal = 0;
  bool core_dumped = false;
  absl::Duration user_cpu;
  absl::Duration system_cpu;
  // Peak resident set size in bytes (ru_maxrss). After fork this includes the
  // pages the child shared with the parent at fork time.
  int64_t max_rss_bytes = 0;
  // When the body threw: "<demangled type>: <what()>" (or just the type when
  // it is not a std::exception), cut to 4 KiB; the exit code is then
  // kUncaughtExceptionExitCode. Empty otherwise.
  std::string uncaught_exception;

  bool exited() const { return signal == 0; }
  bool signaled() const { return signal != 0; }
  // Exited with code 0.
  bool success() const { return signal == 0 && exit_code == 0; }
  // "SIGKILL", "SIGSEGV", ... ("SIG<n>" for an unnamed one); "" when exited.
  std::string signal_name() const;
  // E.g. "pid 123 exited with code 0 (user 1.2ms, sys 0.4ms, max RSS 3.1 MiB)",
  // "pid 124 killed by SIGSEGV (core dumped) (...)",
  // "pid 125 threw std::runtime_error: boom (exit code 70) (...)".
  std::string ToString() const;

  // The one construction from wait4(2)'s results: `status` as wait4 set it
  // for `pid`, `usage` its rusage (CPU times, ru_maxrss in KiB).
  static ExitStatus FromWait(pid_t pid, int status, const struct rusage& usage);
};

// The exit code of a child whose body threw (EX_SOFTWARE).
inline constexpr int kUncaughtExceptionExitCode = 70;
// The exit code of a child that could not set itself up (EX_OSERR); Join()
// then returns the setup error instead of an ExitStatus.
inline constexpr int kChildSetupFailedExitCode = 71;
// The exit code of a spawned child (fork/spawn.h) whose chdir or execve
// failed, as a shell's for a command it cannot run; Join() then returns that
// error instead of an ExitStatus.
inline constexpr int kExecFailedExitCode = 127;

// A forked child running a callable. Move-only RAII handle; holds two
// descriptors (pidfd and result pipe) until the child is reaped.
// Thread-compatible: one Process is used by one thread at a time; distinct
// Processes can be used from distinct threads. The handle exists only in the
// parent: in the child, the body runs and the process _exits.
class Process {
 public:
  // Forks a child that runs `body` and exits with its return value (only the
  // low 8 bits reach the parent). A body that throws makes the child exit
  // with kUncaughtExceptionExitCode and ExitStatus::uncaught_exception set.
  // Errors: kInvalidArgument for bad options (env name, signal number);
  // fork/pipe/pidfd_open failures as ErrnoError (kUnavailable for EAGAIN,
  // kResourceExhausted for ENOMEM/EMFILE, kUnimplemented without pidfd
  // support). Child setup failures (e.g. no controlling terminal) are
  // reported by Join(). Thread-safe with respect to other Starts and forks.
  static absl::StatusOr<Process> Start(ProcessOptions options,
                                       absl::AnyInvocable<int()> body);

  // Like Start(), but the child sends the bytes `body` returns back to the
  // parent through a pipe and exits with 0. The parent drains the pipe while
  // it waits (Join(), Terminate(), ...), so results of any size (100 MiB and
  // more) never deadlock on the pipe buffer. Get them with TakeResultBytes()
  // after Join().
  static absl::StatusOr<Process> StartWithResultBytes(
      ProcessOptions options, absl::AnyInvocable<std::string()> body);

  // Like StartWithResultBytes(), but `body` writes the result bytes into
  // the empty string it is given, e.g. with serialize::EncodeTo: that
  // string already has room for 512 bytes (allocated once per process,
  // before the first such fork), so a small result costs the child no
  // allocation, hence no page faults of malloc's (about 4 of a child's 25,
  // a few microseconds each on a VM). Larger results grow it as usual.
  static absl::StatusOr<Process> StartWithResultInto(
      ProcessOptions options, absl::AnyInvocable<void(std::string* out)> body);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // If the child has not been reaped: what ProcessOptions::on_destruction
  // says (by default SIGKILL to the child, its group with
  // own_process_group, and reap it, blocking until it is gone). In a process
  // other than the one that started the child: only closes the descriptors.
  // Call Join() or Terminate() first for a graceful end.
  ~Process();

  // Waits up to `timeout` for the child to end, reaps it and returns how it
  // ended. Once reaped, returns the same status again immediately.
  // Errors: kDeadlineExceeded when the child is still running after
  // `timeout` (it keeps running; Join again or Terminate); the child's setup
  // error (kFailedPrecondition for no controlling terminal, the errno's
  // code otherwise) when it could not run its body; kInternal when someone
  // else reaped the child (SIGCHLD set to SIG_IGN, or a waitpid(-1) in other
  // code); the errno's status if ppoll or wait4 fail otherwise.
  absl::StatusOr<ExitStatus> Join(
      absl::Duration timeout = absl::InfiniteDuration());

  // SIGTERM to the child (its whole group with own_process_group), waits up to
  // `grace` for it to exit, then SIGKILL to the child and to what is left of
  // its group, and reaps it. The status is then available from Join().
  // No-op on a reaped child. Errors: kInternal when kill/wait fails.
  absl::Status Terminate(absl::Duration grace);
  // SIGKILL to the child (its group with own_process_group) and reaps it.
  absl::Status Kill();
  // Sends `signo` to the child (its group with own_process_group) without
  // waiting. kFailedPrecondition once reaped; kInvalidArgument for a bad
  // signal number.
  absl::Status Signal(int signo);

  // Whether the child is still running (has not exited). Never reaps.
  bool is_alive() const;
  // Whether the child has been reaped (Join() succeeded, Terminate, Kill).
  bool reaped() const { return exit_status_.has_value(); }
  // How the child ended once reaped (also after a setup error), else nullptr.
  // Valid until this Process is moved or destroyed.
  const ExitStatus* exit_status() const {
    return exit_status_.has_value() ? &*exit_status_ : nullptr;
  }
  pid_t pid() const { return pid_; }
  // A pidfd for the child: readable (POLLIN) once the child has exited, so a
  // runner can poll() many processes at once, then call Join(ZeroDuration()).
  // A child started with StartWithResultBytes() may block writing its result
  // until the parent drains result_fd(): poll that too and call
  // DrainResult() when it is readable. -1 after reaping.
  int pidfd() const { return pidfd_.get(); }
  // The read end of the child's result/diagnostics pipe, -1 once drained to
  // end-of-file or reaped. Non-blocking.
  int result_fd() const { return channel_.get(); }
  // Reads whatever the child wrote so far without blocking.
  // kDataLoss for a malformed frame; kInternal for a read error.
  absl::Status DrainResult();

  // After the child was reaped, the bytes a StartWithResultBytes() body
  // returned (moved out). Errors:
  // - kFailedPrecondition: not reaped yet; not started with
  //   StartWithResultBytes(); the result was taken already;
  // - kUnknown: the body threw; the message has "threw <type>: <what()>";
  // - kAborted: the child ended without a result (killed by a signal, whose
  //   name the message has, or exited early through exit()/_exit()), or
  //   ended abnormally after sending it;
  // - kDataLoss: the pipe carried a malformed frame;
  // - the child's setup error (see Join()).
  absl::StatusOr<std::string> TakeResultBytes();

 private:
  // Runs in the child only; `result` is nullptr unless sends_result. A
  // reference (no allocation): the callable lives in Start*()'s frame.
  using ChildMain = absl::FunctionRef<int(std::string* result)>;
  // With `exec`, the child execs it after its setup instead of running `main`.
  static absl::StatusOr<Process> StartImpl(
      ProcessOptions options, bool sends_result, ChildMain main,
      const fork_internal::ExecTarget* exec = nullptr);
  friend absl::StatusOr<Process> Spawn(SpawnOptions options);
  Process() = default;

  // Waits until the child has exited (pidfd readable) or `deadline`,
  // draining the channel meanwhile; does not reap. kDeadlineExceeded.
  absl::Status WaitExited(absl::Time deadline);
  // wait4() on the child (blocking unless WNOHANG is in `wait_options`),
  // then reads what it wrote to the channel; fills exit_status_.
  absl::Status Reap(int wait_options);
  // kill() of the group, or pidfd_send_signal() of the child alone.
  absl::Status SendSignal(int signo);
  void Clear();

  pid_t pid_ = -1;
  // The process that started the child (its parent): the only one whose
  // destructor acts on it.
  pid_t owner_pid_ = -1;
  DestructionPolicy on_destruction_ = DestructionPolicy::kKillAndReap;
  bool own_group_ = false;
  bool restore_terminal_ = false;
  bool sends_result_ = false;
  OwnedFd pidfd_;
  OwnedFd channel_;
  // Incremental frame parser state over channel_ (see process.cc).
  std::string header_;
  int frame_tag_ = 0;
  uint64_t frame_size_ = 0;
  std::string frame_;
  std::optional<std::string> result_;
  bool result_taken_ = false;
  std::string exception_;
  absl::Status setup_error_;
  absl::Status channel_error_;
  // A spawned child's program and working directory, for its setup errors
  // ("execve /no/such"); empty for a body.
  std::string exec_path_;
  std::string exec_directory_;
  std::optional<ExitStatus> exit_status_;
};

}  // namespace taskfork

#endif  // TASKFORK_FORK_PROCESS_H_
