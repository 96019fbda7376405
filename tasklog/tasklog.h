// TaskLog: all glog output of this process in one file, a new file for every
// forked child, child logs merged back after a Pcall, and the process's own
// stdout/stderr (and crash traces) in the same file. JobLog: the runner's log.
//
//   TASKFORK_ASSIGN_OR_RETURN(TaskLog * log, TaskLog::Install("TaskLog.t1"));
//   LOG(INFO) << "unchanged glog calls";   // -> TaskLog.t1 (line format below)
//   if (::fork() == 0) LOG(INFO) << "in the child";  // -> TaskLog.t1:pid-<pid>
//
// Line format (stable; grammar in tasklog/FORMAT.md):
//   2026-11-26T00:26:11.123456Z I 4242 4243 worker.cc:57] message text
//   UTC time, severity letter (I W E F), process id, thread id, file:line, the
//   message. A message containing newlines is written as is (its later lines
//   have no prefix). Every line is one write(2) to a file opened O_APPEND, so
//   lines of concurrent threads and processes never mix mid-line and nothing
//   is buffered in the process: a crash or _exit() loses no logged line.
//
// What Install() changes in the process (restored by Uninstall() except where
// noted), so that every LOG() line reaches the file exactly once:
// - glog: a LogSink is added; glog's own log files are switched off
//   (SetLogDestination(severity, "") for every severity; glog has no way to
//   switch them back, so they stay off after Uninstall()), and --logtostderr,
//   --logtostdout, --alsologtostderr, --log_prefix are set to false and
//   --stderrthreshold above FATAL (so glog itself writes nothing to fd 2,
//   which may be the log file). glog is initialised (InitGoogleLogging with
//   the program's short name) if it was not: call InitGoogleLogging yourself
//   before Install(), never after.
// - capture_stdio: file descriptors 1 and 2 become the log file (O_APPEND),
//   stdout is made line-buffered; printf, std::cerr, glog's CHECK-failure
//   and crash stack traces all land in the log, and so does the output of
//   programs the task starts with system(), popen() or posix_spawn() (no
//   at-fork handlers run for those). A program started with fork() + exec
//   writes to the forked child's own log, like any forked child.
// - install_failure_handler: glog's InstallFailureSignalHandler() (SIGSEGV,
//   SIGILL, SIGFPE, SIGABRT, SIGBUS, SIGTERM print a stack trace, then the
//   signal's default action runs) with a writer that writes to the log.
// - fork (through //fork:at_fork, so for every fork() of the process): the
//   prepare handler flushes stdio, takes glog's logging lock (see below) and
//   TaskLog's own; in the child, before any other at-fork handler or user code
//   runs, the log switches to "<path>:pid-<child pid>" (created or truncated;
//   fds 1 and 2 follow), and the line
//     ... I <parent pid> <forking thread id> tasklog.cc:<n>] Forked process
//     <child pid> started, log: <child path>
//   is appended to the parent's file. With fork_aware = false (JobLog), the
//   child keeps writing to the same file, its lines told apart by the pid.
//
// glog's logging lock: glog 0.6.0 holds a private lock while any thread logs;
// a child forked at that moment would inherit it locked and hang at its first
// LOG(). TaskLog finds that lock once (tasklog/internal/glog_lock.h explains
// how) and holds it across fork(). glog_lock_found() says whether that
// worked. Still not covered: glog's sink-list lock, which a thread may hold
// for reading after it logged (a child must not call google::AddLogSink /
// RemoveLogSink; TaskLog does not in a child), and glog's VLOG
// site-registration lock (a child can hang at the first use of a VLOG site
// that another thread was registering at the fork).
//
// glibc's time-zone lock: glog converts the time of every message with
// localtime_r / gmtime_r / mktime, which take a glibc lock that a fork child
// can inherit held. Linking //tasklog:tasklog therefore defines those
// functions (and localtime, gmtime, timelocal, timegm, tzset) in the program,
// interposing on glibc's: each call passes a gate that TaskLog's prepare
// handler closes around fork() (tasklog/internal/time_gate.h; a few ns per
// call).
//
// Errors while logging (a full disk, EIO, a directory removed before a child
// could create its file) never stop the process: the first one is kept
// (status()), reported once on the screen (see screen_severity: the stderr
// from before any capture), and logging goes on (a forked child whose file
// cannot be created keeps writing to its parent's file).
#ifndef TASKFORK_TASKLOG_TASKLOG_H_
#define TASKFORK_TASKLOG_TASKLOG_H_

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
// google::LogSeverity (glog/log_severity.h is not self-contained).
#include "glog/logging.h"

namespace taskfork::tasklog {

// How a TaskLog behaves; plain data, every field has a working default.
struct TaskLogOptions {
  // Lines of at least this severity (google::GLOG_INFO ... GLOG_FATAL) are
  // also written to the screen: fd 2 as it was at Install(), or, when fd 2 is
  // already captured into a log (a second Install(), or one in a child of a
  // process that captured it), what fd 2 was before that capture.
  // std::nullopt: none.
  std::optional<google::LogSeverity> screen_severity;
  // Make file descriptors 1 and 2 the log file (see the header comment).
  bool capture_stdio = true;
  // A forked child switches to "<path>:pid-<pid>" (TaskLog); false: it keeps
  // the parent's file (JobLog).
  bool fork_aware = true;
  // Install glog's failure signal handler, writing its traces to the log.
  // It stays installed after Uninstall() (its writer then writes to fd 2).
  bool install_failure_handler = true;
  // After every Pcall of this process, merge the children's logs into this
  // one (MergeChildLogs in argument order; only with fork_aware); a failed
  // merge is kept in status(). The first Install() with this set registers
  // a //fork Pcall join hook for the rest of the process's life (also a
  // JobLog's, whose own Pcalls merge nothing: the task processes forked
  // from it inherit the hook instead of each registering one).
  bool merge_pcall_children = true;
  // Truncate an existing file at Install(); false appends to it.
  bool truncate = false;
  // Permission bits for the log file and for children's files.
  mode_t file_mode = 0644;
};

// The log of this process. There is at most one (glog is process-global):
// Install() creates it or switches it to another file. The object is never
// destroyed, so a TaskLog* stays valid for the life of the process; after
// Uninstall() its methods return kFailedPrecondition.
// All methods are thread-safe. None may be called from a glog LogSink or an
// at-fork handler, and none is async-signal-safe.
class TaskLog {
 public:
  TaskLog(const TaskLog&) = delete;
  TaskLog& operator=(const TaskLog&) = delete;

  // Routes all glog output of this process to `path` (relative paths are
  // made absolute against the current directory, so a later chdir does not
  // move children's logs), opened for appending and created with
  // options.file_mode. If a log is already installed (also one inherited
  // from the parent process), it switches to `path` with `options`. Errors:
  // kInvalidArgument for an empty path or one longer than PATH_MAX - 64
  // (children append ":pid-<pid>"); the open(2) error otherwise, naming the
  // path (kNotFound: missing directory; kPermissionDenied: not writable).
  // On error the previously installed log (if any) is unchanged.
  static absl::StatusOr<TaskLog*> Install(std::string path,
                                          TaskLogOptions options = {});

  // Detaches from glog, gives fds 1 and 2 back their earlier files and closes
  // the log (see the header comment for what stays). kFailedPrecondition if
  // none is installed.
  static absl::Status Uninstall();

  // The installed log, or nullptr.
  static TaskLog* Current();

  // The file name a forked child of a log at `parent_path` writes to:
  // "<parent_path>:pid-<pid>".
  static std::string ChildLogPath(absl::string_view parent_path, pid_t pid);

  // Whether glog's logging lock was found, i.e. whether forking while other
  // threads log is safe (see the header comment).
  static bool glog_lock_found();

  // The absolute path of the file this process logs to now (in a forked
  // child: its own "...:pid-<pid>"). Empty when not installed.
  std::string path() const;

  // The current size of the log file in bytes: the offset the next line will
  // start at (every line is already written: there is no buffer). Use two
  // calls around a section for the reporter's logs{file, begin, size}.
  // kFailedPrecondition when not installed; fstat's error otherwise.
  absl::StatusOr<int64_t> size() const;

  // The first error since Install() in this process (write, open of the
  // child file, merge), or OK. Sticky; reported once on the screen.
  absl::Status status() const;

  // Number of lines that could not be written since Install() (0 when
  // status() is OK).
  int64_t dropped_lines() const;

  // Writes one line in the format above (and its copy to the screen per
  // screen_severity) straight to the log, without glog: no LogMessage,
  // stream or time-zone work, and no glog state written, so it is cheap
  // right after a fork or once per task (the runner's own lines). `file`
  // may be a path (__FILE__): its base name is written. Never aborts (not
  // for GLOG_FATAL either). A failed write counts as for LOG() lines
  // (status(), dropped_lines()); after Uninstall() it writes nothing.
  void Log(google::LogSeverity severity, const char* file, int line,
           absl::string_view message) const;

  // Appends the log file of each child in `child_pids` (in that order) to
  // this log, each between the lines
  //   >>>> Begin child log <child path>
  //   <<<< End child log <child path>
  // where <child path> is ChildLogPath(path(), pid). Lines other threads log
  // meanwhile go after the merged block (output written straight to fds 1/2
  // is not held back). The child files are kept. Call after the children
  // exited (Pcall does, when merge_pcall_children is set). A missing child
  // file is skipped; the first error is returned (kNotFound naming the path
  // for a missing file) after all others were merged, and kept in status().
  // kFailedPrecondition when not installed.
  absl::Status MergeChildLogs(absl::Span<const pid_t> child_pids);

 private:
  TaskLog() = default;
  friend class TaskLogState;
};

// The runner's log: a TaskLog whose forked children keep writing to the same
// file (options.fork_aware is forced to false), the way pyATS's JobLog is
// shared by the job process and what it forks until a task installs its own
// TaskLog. Same errors as TaskLog::Install.
class JobLog {
 public:
  static absl::StatusOr<TaskLog*> Install(std::string path,
                                          TaskLogOptions options = {});
};

}  // namespace taskfork::tasklog

#endif  // TASKFORK_TASKLOG_TASKLOG_H_
