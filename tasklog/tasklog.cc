#include "tasklog/tasklog.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/single_threaded.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>  // NOLINT: std::mutex is a plain pthread mutex, unlockable in the child.
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "fork/at_fork.h"
#include "fork/pcall.h"
#include "glog/logging.h"
#include "tasklog/internal/glog_lock.h"
#include "tasklog/internal/line_format.h"
#include "tasklog/internal/time_gate.h"

namespace taskfork::tasklog {
namespace {

using tasklog_internal::FormatInt;
using tasklog_internal::FormatPrefix;
using tasklog_internal::GlogLock;
using tasklog_internal::kMaxPrefixSize;
using tasklog_internal::SeverityLetter;
using tasklog_internal::TimeGate;

// Longest path Install() accepts; children append ":pid-<pid>" to it.
constexpr size_t kMaxInstallPathLength = PATH_MAX - 64;

// The at-fork priority of TaskLog's handlers: below every other one, so that
// its prepare handler runs after all others (they may LOG) and its child
// handler before all others (they may LOG, into the child's own file). See
// fork/at_fork.h for the order.
constexpr int kTaskLogAtForkPriority = INT_MIN;

// A pthread mutex with Abseil's thread annotations. Unlike absl::Mutex, a
// pthread mutex held by the forking thread can be unlocked in the child.
class ABSL_LOCKABLE RawMutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { ::pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { ::pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
};

class ABSL_SCOPED_LOCKABLE RawMutexLock {
 public:
  explicit RawMutexLock(RawMutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu)
      : mu_(mu) {
    mu_->Lock();
  }
  ~RawMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  RawMutexLock(const RawMutexLock&) = delete;
  RawMutexLock& operator=(const RawMutexLock&) = delete;

 private:
  RawMutex* const mu_;
};

// This thread's kernel thread id, cached (gettid is a system call). The child
// handler clears it for the forking thread, the only one in the child.
__thread pid_t t_tid __attribute__((tls_model("initial-exec"))) = 0;

pid_t CachedTid() {
  if (t_tid == 0) t_tid = static_cast<pid_t>(::syscall(SYS_gettid));
  return t_tid;
}

// Moves `fd` above 2 if it is 0, 1 or 2 (a process started with a standard
// descriptor closed), so that capturing or restoring 1 and 2 never closes
// it. Returns the descriptor to use. Async-signal-safe.
int AboveStdio(int fd) {
  if (fd > 2) return fd;
  const int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
  ::close(fd);
  return moved;  // -1 with errno set if out of descriptors
}

struct WriteResult {
  int error = 0;          // errno of the failed write, 0 when all was written
  bool ends_line = true;  // whether the last byte written was '\n'
};

// Writes all of iov[0, count) to `fd`, retrying on EINTR and partial writes
// (it adjusts `iov`). `ends_line` tells whether what is in the file now ends
// with a newline, given that it did before iff `ended_line`.
// Async-signal-safe.
WriteResult WriteFully(int fd, iovec* iov, int count, bool ended_line) {
  WriteResult result;
  result.ends_line = ended_line;
  int i = 0;
  while (i < count) {
    if (iov[i].iov_len == 0) {
      ++i;
      continue;
    }
    const ssize_t written = ::writev(fd, iov + i, count - i);
    if (written < 0) {
      if (errno == EINTR) continue;
      result.error = errno;
      return result;
    }
    if (written == 0) {  // not seen for regular files; never loop forever
      result.error = EIO;
      return result;
    }
    size_t left = static_cast<size_t>(written);
    while (left > 0) {
      const size_t step = left < iov[i].iov_len ? left : iov[i].iov_len;
      const char* base = static_cast<const char*>(iov[i].iov_base);
      result.ends_line = base[step - 1] == '\n';
      iov[i].iov_base = const_cast<char*>(base + step);
      iov[i].iov_len -= step;
      left -= step;
      if (iov[i].iov_len == 0) ++i;
    }
  }
  return result;
}

void WriteIgnoringErrors(int fd, const char* data, size_t size) {
  iovec iov{const_cast<char*>(data), size};
  (void)WriteFully(fd, &iov, 1, true);
}

// Appends `text` to out[*len, cap - 1), keeping room for a NUL.
void Append(char* out, size_t cap, size_t* len, const char* text,
            size_t text_len) {
  if (*len + 1 >= cap) return;
  const size_t room = cap - 1 - *len;
  const size_t n = text_len < room ? text_len : room;
  memcpy(out + *len, text, n);
  *len += n;
  out[*len] = '\0';
}

void Append(char* out, size_t cap, size_t* len, const char* text) {
  Append(out, cap, len, text, strlen(text));
}

}  // namespace

// The process-wide state behind TaskLog. It is the glog sink, and its
// at-fork handlers keep it consistent across fork().
//
// Lock order: install_mu_ -> glog's logging lock -> the time gate -> mu_.
// glog calls send() with its logging lock held, so nothing may call into glog
// while holding mu_.
class TaskLogState final : public google::LogSink {
 public:
  static TaskLogState& Get() {
    static TaskLogState* const state = new TaskLogState;  // never destroyed
    return *state;
  }

  absl::StatusOr<TaskLog*> Install(std::string path, TaskLogOptions options);
  absl::Status Uninstall();

  TaskLog* current() {
    return installed_flag_.load(std::memory_order_acquire) ? &handle_ : nullptr;
  }
  std::string path() const;
  absl::StatusOr<int64_t> size() const;
  absl::Status status() const;
  int64_t dropped_lines() const;
  // `automatic`: called by the Pcall join hook; merges only when the options
  // of the installed log ask for it.
  absl::Status MergeChildLogs(absl::Span<const pid_t> child_pids,
                              bool automatic);
  bool glog_lock_found() {
    EnsureRegistered();
    return glog_lock_.found();
  }

  // google::LogSink: called by glog with its logging lock held.
  void send(google::LogSeverity severity, const char* full_filename,
            const char* base_filename, int line,
            const google::LogMessageTime& time, const char* message,
            size_t message_len) override;

  // glog's failure writer (InstallFailureWriter): async-signal-safe.
  static void FailureWriter(const char* data, size_t size);

  // TaskLog::Log: a line written without glog.
  void Log(google::LogSeverity severity, const char* file, int line,
           absl::string_view message);

 private:
  TaskLogState() = default;

  // Finds glog's lock and registers the at-fork handlers, once. Not under
  // install_mu_: fork holds the at-fork registry's lock while it runs
  // Prepare(), which takes install_mu_.
  void EnsureRegistered();
  // Registers the Pcall join hook, once; only when a log that merges is
  // installed (registering creates //fork's join-hook registry and its
  // at-fork handlers in this process).
  void EnsurePcallHook();

  void Prepare();
  void Parent();
  void Child();

  // Writes one line (and its screen copy) under mu_.
  void WriteLine(google::LogSeverity severity, const char* base_filename,
                 int line, int64_t unix_seconds, int32_t micros,
                 const char* message, size_t message_len);

  // Initialises glog if needed and routes its output to the sink only.
  void ConfigureGlog();
  void RestoreGlogFlags();

  absl::StatusOr<TaskLog*> InstallLocked(std::string path,
                                         const TaskLogOptions& options)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_);

  // Points fds 1 and 2 back at what they were before capture.
  void RestoreStdioLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes iov[0, count) to the log file as one write; on failure records
  // the error. Returns the errno (0 on success). Async-signal-safe.
  int AppendLocked(iovec* iov, int count) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Keeps the first error (errno `error` of `operation` on `subject`) and
  // reports it once on the screen. Async-signal-safe.
  void RecordErrorLocked(int error, const char* operation, const char* subject)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ClearErrorLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // In the child of a fork: switch to "<path>:pid-<pid>" and write the
  // pointer line into the parent's file. Async-signal-safe.
  void SwitchToChildFileLocked(pid_t pid, pid_t parent_pid)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PublishFailureFdsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  TaskLog handle_;

  // Serialises Install() / Uninstall() (and is held across fork, so that a
  // child never inherits it locked).
  std::mutex install_mu_;
  bool sink_added_ ABSL_GUARDED_BY(install_mu_) = false;
  bool failure_handler_installed_ ABSL_GUARDED_BY(install_mu_) = false;
  bool glog_flags_saved_ ABSL_GUARDED_BY(install_mu_) = false;
  bool saved_logtostderr_ ABSL_GUARDED_BY(install_mu_) = false;
  bool saved_logtostdout_ ABSL_GUARDED_BY(install_mu_) = false;
  bool saved_alsologtostderr_ ABSL_GUARDED_BY(install_mu_) = false;
  bool saved_log_prefix_ ABSL_GUARDED_BY(install_mu_) = true;
  int32_t saved_stderrthreshold_ ABSL_GUARDED_BY(install_mu_) = 2;
  // glog's own log files were switched off (SetLogDestination).
  bool glog_files_off_ ABSL_GUARDED_BY(install_mu_) = false;

  std::mutex registration_mu_;
  bool registered_ ABSL_GUARDED_BY(registration_mu_) = false;
  AtForkRegistration at_fork_ ABSL_GUARDED_BY(registration_mu_);
  PcallJoinHookRegistration pcall_hook_ ABSL_GUARDED_BY(registration_mu_);
  // Written once under registration_mu_ before the at-fork handlers exist.
  GlogLock glog_lock_;
  // Used by the forking thread only, between Prepare() and Parent()/Child():
  // whether Prepare() took the locks (the process had threads), and glog's.
  bool fork_locked_ = false;
  bool glog_locked_for_fork_ = false;

  mutable RawMutex mu_;
  std::atomic<bool> installed_flag_{false};  // mirrors installed_
  bool installed_ ABSL_GUARDED_BY(mu_) = false;
  int fd_ ABSL_GUARDED_BY(mu_) = -1;
  TaskLogOptions options_ ABSL_GUARDED_BY(mu_);
  pid_t pid_ ABSL_GUARDED_BY(mu_) = 0;
  // Whether the file may end in the middle of a line (a write failed part
  // way): the next line then starts with a newline.
  bool torn_ ABSL_GUARDED_BY(mu_) = false;
  // The stderr of the process when Install() captured fd 2 (or at the last
  // Install() without capture), for screen output and error reports; -1 if
  // fd 2 was closed.
  int screen_fd_ ABSL_GUARDED_BY(mu_) = -1;
  // What fds 1 and 2 were before capture (-1: they were closed).
  bool stdio_captured_ ABSL_GUARDED_BY(mu_) = false;
  int saved_stdout_ ABSL_GUARDED_BY(mu_) = -1;
  int saved_stderr_ ABSL_GUARDED_BY(mu_) = -1;
  // The first error: errno, operation, subject (a path).
  int error_errno_ ABSL_GUARDED_BY(mu_) = 0;
  char error_operation_[16] ABSL_GUARDED_BY(mu_) = {};
  bool error_reported_ ABSL_GUARDED_BY(mu_) = false;
  int64_t dropped_lines_ ABSL_GUARDED_BY(mu_) = 0;
  // Set in Prepare() for the pointer line the child writes.
  pid_t fork_tid_ ABSL_GUARDED_BY(mu_) = 0;
  // The two paths last: the small fields above, written around every fork
  // (pid, error state), share a page instead of spanning three.
  char error_subject_[PATH_MAX] ABSL_GUARDED_BY(mu_) = {};
  char path_[PATH_MAX] ABSL_GUARDED_BY(mu_) = {};

  // For FailureWriter, which may not lock: the log file and, when fd 2 is
  // not the log, the screen (-1: none).
  static std::atomic<int> failure_log_fd_;
  static std::atomic<int> failure_screen_fd_;
};

std::atomic<int> TaskLogState::failure_log_fd_{-1};
std::atomic<int> TaskLogState::failure_screen_fd_{-1};

void TaskLogState::EnsureRegistered() {
  std::lock_guard<std::mutex> lock(registration_mu_);
  if (registered_) return;
  glog_lock_ = GlogLock::Find();
  TimeGate::Resolve();
  AtForkHandlers handlers;
  handlers.prepare = [this] { Prepare(); };
  handlers.parent = [this] { Parent(); };
  handlers.child = [this] { Child(); };
  at_fork_ = RegisterAtFork(kTaskLogAtForkPriority, std::move(handlers));
  registered_ = true;
}

void TaskLogState::EnsurePcallHook() {
  std::lock_guard<std::mutex> lock(registration_mu_);
  if (pcall_hook_.registered()) return;
  pcall_hook_ = RegisterPcallJoinHook([this](absl::Span<const pid_t> pids) {
    // Errors are kept in status(); the hook has no caller to return them to.
    (void)MergeChildLogs(pids, /*automatic=*/true);
  });
}

void TaskLogState::Prepare() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Whatever stdio holds belongs before the fork (else the child would write
  // the parent's pending output into its own log at exit). Before any lock:
  // a thread may hold stdout's lock while it waits in LOG().
  if (installed_flag_.load(std::memory_order_acquire)) FlushPendingStdio();
  // A process that never made a thread (glibc's __libc_single_threaded) has
  // nobody who could hold these locks or be logging at the fork: it takes
  // none, so that the fork writes none of their pages (glog's, the gate's;
  // each a copy-on-write fault in parent and child) and wakes nobody.
  fork_locked_ = !__libc_single_threaded;
  if (fork_locked_) {
    install_mu_.lock();
    glog_locked_for_fork_ = glog_lock_.LockForFork();
    // After glog's lock: no thread holding that one waits at the gate.
    TimeGate::CloseForFork();
    mu_.Lock();
  }
  fork_tid_ = CachedTid();
}

void TaskLogState::Parent() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  if (!fork_locked_) return;
  mu_.Unlock();
  TimeGate::ReopenInParent();
  if (glog_locked_for_fork_) glog_lock_.UnlockInParent();
  glog_locked_for_fork_ = false;
  install_mu_.unlock();
}

void TaskLogState::Child() ABSL_NO_THREAD_SAFETY_ANALYSIS {
  // Only this thread exists; Prepare() left install_mu_, glog's lock and mu_
  // held by it (if fork_locked_). Everything here is async-signal-safe.
  t_tid = 0;
  const pid_t pid = static_cast<pid_t>(::getpid());
  if (installed_) {
    const pid_t parent_pid = pid_;
    pid_ = pid;
    ClearErrorLocked();  // each process has its own status
    if (options_.fork_aware) SwitchToChildFileLocked(pid, parent_pid);
  }
  if (!fork_locked_) return;
  mu_.Unlock();
  TimeGate::ReopenInChild();
  if (glog_locked_for_fork_) glog_lock_.UnlockInChild();
  glog_locked_for_fork_ = false;
  install_mu_.unlock();
}

void TaskLogState::SwitchToChildFileLocked(pid_t pid, pid_t parent_pid) {
  char child_path[PATH_MAX];
  size_t len = 0;
  child_path[0] = '\0';
  Append(child_path, sizeof(child_path), &len, path_);
  char digits[24];
  const size_t digits_len = FormatInt(pid, digits);
  if (len + 5 + digits_len + 1 > sizeof(child_path)) {
    RecordErrorLocked(ENAMETOOLONG, "open", path_);
    return;
  }
  Append(child_path, sizeof(child_path), &len, ":pid-");
  Append(child_path, sizeof(child_path), &len, digits, digits_len);

  int fd =
      ::open(child_path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
             options_.file_mode);
  if (fd >= 0) fd = AboveStdio(fd);
  if (fd < 0) {
    // The child goes on writing to its parent's file.
    RecordErrorLocked(errno, "open", child_path);
    return;
  }

  // "Forked process <pid> started, log: <path>" in the parent's file.
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  char prefix[kMaxPrefixSize];
  const size_t prefix_len =
      FormatPrefix(now.tv_sec, static_cast<int32_t>(now.tv_nsec / 1000), 'I',
                   parent_pid, fork_tid_, "tasklog.cc", __LINE__, prefix);
  static constexpr char kForked[] = "Forked process ";
  static constexpr char kStarted[] = " started, log: ";
  iovec iov[7] = {
      {const_cast<char*>("\n"), torn_ ? size_t{1} : size_t{0}},
      {prefix, prefix_len},
      {const_cast<char*>(kForked), sizeof(kForked) - 1},
      {digits, digits_len},
      {const_cast<char*>(kStarted), sizeof(kStarted) - 1},
      {child_path, len},
      {const_cast<char*>("\n"), 1},
  };
  AppendLocked(iov, 7);

  if (stdio_captured_) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  ::close(fd_);
  fd_ = fd;
  memcpy(path_, child_path, len + 1);
  torn_ = false;
  ClearErrorLocked();  // the parent's file's troubles are not the child's
  PublishFailureFdsLocked();
}

int TaskLogState::AppendLocked(iovec* iov, int count) {
  const WriteResult result = WriteFully(fd_, iov, count, !torn_);
  torn_ = !result.ends_line;
  if (result.error != 0) RecordErrorLocked(result.error, "write", path_);
  return result.error;
}

void TaskLogState::RecordErrorLocked(int error, const char* operation,
                                     const char* subject) {
  if (error_errno_ == 0) {
    error_errno_ = error;
    size_t len = 0;
    Append(error_operation_, sizeof(error_operation_), &len, operation);
    len = 0;
    Append(error_subject_, sizeof(error_subject_), &len, subject);
  }
  if (error_reported_ || screen_fd_ < 0) return;
  error_reported_ = true;
  char report[PATH_MAX + 256];
  size_t len = 0;
  report[0] = '\0';
  char pid[24];
  pid[FormatInt(pid_, pid)] = '\0';
  const char* description = ::strerrordesc_np(error);
  Append(report, sizeof(report), &len, "taskfork tasklog (pid ");
  Append(report, sizeof(report), &len, pid);
  Append(report, sizeof(report), &len, "): ");
  Append(report, sizeof(report), &len, operation);
  Append(report, sizeof(report), &len, " ");
  Append(report, sizeof(report), &len, subject);
  Append(report, sizeof(report), &len, ": ");
  Append(report, sizeof(report), &len,
         description != nullptr ? description : "unknown error");
  Append(report, sizeof(report), &len, " [");
  Append(report, sizeof(report), &len, ErrnoName(error));
  Append(report, sizeof(report), &len,
         "]; logging goes on, later errors are not reported (see "
         "TaskLog::status())\n");
  WriteIgnoringErrors(screen_fd_, report, len);
}

void TaskLogState::ClearErrorLocked() {
  // Only what is set: in a fork child an unneeded write is a copy-on-write
  // fault (error_subject_ lies on a page of its own).
  if (error_errno_ != 0) {
    error_errno_ = 0;
    error_operation_[0] = '\0';
    error_subject_[0] = '\0';
  }
  if (error_reported_) error_reported_ = false;
  if (dropped_lines_ != 0) dropped_lines_ = 0;
}

void TaskLogState::PublishFailureFdsLocked() {
  failure_log_fd_.store(installed_ ? fd_ : -1, std::memory_order_release);
  failure_screen_fd_.store(installed_ && !stdio_captured_ ? screen_fd_ : -1,
                           std::memory_order_release);
}

void TaskLogState::FailureWriter(const char* data, size_t size) {
  const int log_fd = failure_log_fd_.load(std::memory_order_acquire);
  const int screen_fd = failure_screen_fd_.load(std::memory_order_acquire);
  WriteIgnoringErrors(log_fd >= 0 ? log_fd : STDERR_FILENO, data, size);
  if (log_fd >= 0 && screen_fd >= 0) WriteIgnoringErrors(screen_fd, data, size);
}

void TaskLogState::ConfigureGlog() ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_) {
  if (!google::IsGoogleLoggingInitialized()) {
    google::InitGoogleLogging(program_invocation_short_name);
  }
  if (!glog_flags_saved_) {
    saved_logtostderr_ = FLAGS_logtostderr;
    saved_logtostdout_ = FLAGS_logtostdout;
    saved_alsologtostderr_ = FLAGS_alsologtostderr;
    saved_log_prefix_ = FLAGS_log_prefix;
    saved_stderrthreshold_ = FLAGS_stderrthreshold;
    glog_flags_saved_ = true;
  }
  // Written only when they differ: in a forked task process that inherited
  // a configured glog, Install() then writes none of glog's pages (each
  // page written after fork is a copy-on-write fault).
  auto set = [](auto& flag, auto value) {
    if (flag != value) flag = value;
  };
  set(FLAGS_logtostderr, false);
  set(FLAGS_logtostdout, false);
  set(FLAGS_alsologtostderr, false);
  // The sink gets the message without glog's prefix anyway; not building it
  // saves glog's formatting and a gettid() per line.
  set(FLAGS_log_prefix, false);
  set(FLAGS_stderrthreshold, static_cast<int32_t>(google::NUM_SEVERITIES));
  // glog cannot switch its files back on, so once per process image (a
  // forked child inherits that they are off).
  if (!glog_files_off_) {
    for (int severity = 0; severity < google::NUM_SEVERITIES; ++severity) {
      google::SetLogDestination(severity, "");
    }
    glog_files_off_ = true;
  }
}

void TaskLogState::RestoreGlogFlags()
    ABSL_EXCLUSIVE_LOCKS_REQUIRED(install_mu_) {
  if (!glog_flags_saved_) return;
  FLAGS_logtostderr = saved_logtostderr_;
  FLAGS_logtostdout = saved_logtostdout_;
  FLAGS_alsologtostderr = saved_alsologtostderr_;
  FLAGS_log_prefix = saved_log_prefix_;
  FLAGS_stderrthreshold = saved_stderrthreshold_;
  glog_flags_saved_ = false;
}

absl::StatusOr<TaskLog*> TaskLogState::Install(std::string path,
                                               TaskLogOptions options) {
  if (path.empty()) {
    return absl::InvalidArgumentError("TaskLog::Install: the path is empty");
  }
  if (options.screen_severity.has_value() &&
      (*options.screen_severity < 0 ||
       *options.screen_severity >= google::NUM_SEVERITIES)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TaskLog::Install: screen_severity ", *options.screen_severity,
        " is not a glog severity (0 INFO .. 3 FATAL)"));
  }
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) {
      return ErrnoError(errno, "getcwd for the relative log path", path);
    }
    path = absl::StrCat(cwd, "/", path);
  }
  if (path.size() > kMaxInstallPathLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("TaskLog::Install: the path is ", path.size(),
                     " bytes long, more than ", kMaxInstallPathLength,
                     " (children append \":pid-<pid>\"): ", path));
  }
  EnsureRegistered();
  // Also for a JobLog (whose own Pcalls merge nothing): the task processes
  // forked from it inherit the registered hook instead of each registering
  // its own.
  if (options.merge_pcall_children) EnsurePcallHook();
  std::lock_guard<std::mutex> lock(install_mu_);
  return InstallLocked(std::move(path), options);
}

absl::StatusOr<TaskLog*> TaskLogState::InstallLocked(
    std::string path, const TaskLogOptions& options) {
  const int flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
                    (options.truncate ? O_TRUNC : 0);
  int fd = RetryOnEintr(
      [&] { return ::open(path.c_str(), flags, options.file_mode); });
  if (fd < 0) return ErrnoError(errno, "open", path);
  fd = AboveStdio(fd);
  if (fd < 0) return ErrnoError(errno, "fcntl(F_DUPFD_CLOEXEC)", path);

  ConfigureGlog();
  // Pending stdio output belongs to the old destination of fds 1 and 2.
  FlushPendingStdio();
  {
    RawMutexLock l(&mu_);
    // The screen is fd 2 as it is now, unless fd 2 is a log file we
    // captured it into: then it stays what it was before the capture.
    if (!stdio_captured_) {
      if (screen_fd_ >= 0) ::close(screen_fd_);
      screen_fd_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);  // -1 if closed
    }
    if (options.capture_stdio) {
      if (!stdio_captured_) {
        saved_stdout_ = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
        saved_stderr_ = ::fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        stdio_captured_ = true;
      }
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    } else if (stdio_captured_) {
      RestoreStdioLocked();
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
    memcpy(path_, path.c_str(), path.size() + 1);
    options_ = options;
    pid_ = static_cast<pid_t>(::getpid());
    torn_ = false;
    ClearErrorLocked();
    installed_ = true;
    installed_flag_.store(true, std::memory_order_release);
    PublishFailureFdsLocked();
  }
  // Line-buffered like a terminal, so printf lines reach the log in order
  // with LOG() lines (stdio fully buffers a regular file).
  if (options.capture_stdio) std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  if (!sink_added_) {
    google::AddLogSink(this);
    sink_added_ = true;
  }
  if (options.install_failure_handler && !failure_handler_installed_) {
    google::InstallFailureSignalHandler();
    google::InstallFailureWriter(&TaskLogState::FailureWriter);
    failure_handler_installed_ = true;
  }
  return &handle_;
}

void TaskLogState::RestoreStdioLocked() {
  if (!stdio_captured_) return;
  if (saved_stdout_ >= 0) {
    ::dup2(saved_stdout_, STDOUT_FILENO);
    ::close(saved_stdout_);
  } else {
    ::close(STDOUT_FILENO);
  }
  if (saved_stderr_ >= 0) {
    ::dup2(saved_stderr_, STDERR_FILENO);
    ::close(saved_stderr_);
  } else {
    ::close(STDERR_FILENO);
  }
  saved_stdout_ = saved_stderr_ = -1;
  stdio_captured_ = false;
}

absl::Status TaskLogState::Uninstall() {
  std::lock_guard<std::mutex> lock(install_mu_);
  {
    RawMutexLock l(&mu_);
    if (!installed_) {
      return absl::FailedPreconditionError(
          "TaskLog::Uninstall: no TaskLog is installed");
    }
  }
  // Not under mu_: RemoveLogSink waits for send() calls in flight.
  if (sink_added_) {
    google::RemoveLogSink(this);
    sink_added_ = false;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  {
    RawMutexLock l(&mu_);
    RestoreStdioLocked();
    ::close(fd_);
    fd_ = -1;
    path_[0] = '\0';
    installed_ = false;
    installed_flag_.store(false, std::memory_order_release);
    PublishFailureFdsLocked();
  }
  RestoreGlogFlags();
  return absl::OkStatus();
}

std::string TaskLogState::path() const {
  RawMutexLock l(&mu_);
  return installed_ ? std::string(path_) : std::string();
}

absl::StatusOr<int64_t> TaskLogState::size() const {
  RawMutexLock l(&mu_);
  if (!installed_) {
    return absl::FailedPreconditionError("TaskLog::size: not installed");
  }
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoError(errno, "fstat", path_);
  return static_cast<int64_t>(st.st_size);
}

absl::Status TaskLogState::status() const {
  RawMutexLock l(&mu_);
  if (!installed_) {
    return absl::FailedPreconditionError("TaskLog::status: not installed");
  }
  if (error_errno_ == 0) return absl::OkStatus();
  return ErrnoError(error_errno_, error_operation_, error_subject_);
}

int64_t TaskLogState::dropped_lines() const {
  RawMutexLock l(&mu_);
  return dropped_lines_;
}

void TaskLogState::send(google::LogSeverity severity, const char*,
                        const char* base_filename, int line,
                        const google::LogMessageTime& time, const char* message,
                        size_t message_len) {
  WriteLine(severity, base_filename, line, time.timestamp(),
            static_cast<int32_t>(time.usec()), message, message_len);
}

void TaskLogState::Log(google::LogSeverity severity, const char* file,
                       int line, absl::string_view message) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  const char* slash = std::strrchr(file, '/');
  WriteLine(severity, slash != nullptr ? slash + 1 : file, line, now.tv_sec,
            static_cast<int32_t>(now.tv_nsec / 1000), message.data(),
            message.size());
}

void TaskLogState::WriteLine(google::LogSeverity severity,
                             const char* base_filename, int line,
                             int64_t unix_seconds, int32_t micros,
                             const char* message, size_t message_len) {
  char prefix[kMaxPrefixSize];
  const pid_t tid = CachedTid();
  RawMutexLock l(&mu_);
  if (!installed_) return;
  const size_t prefix_len =
      FormatPrefix(unix_seconds, micros, SeverityLetter(severity), pid_, tid,
                   base_filename, line, prefix);
  iovec iov[4] = {
      {const_cast<char*>("\n"), torn_ ? size_t{1} : size_t{0}},
      {prefix, prefix_len},
      {const_cast<char*>(message), message_len},
      {const_cast<char*>("\n"), 1},
  };
  if (AppendLocked(iov, 4) != 0) ++dropped_lines_;
  if (options_.screen_severity.has_value() &&
      severity >= *options_.screen_severity && screen_fd_ >= 0) {
    iovec screen[3] = {
        {prefix, prefix_len},
        {const_cast<char*>(message), message_len},
        {const_cast<char*>("\n"), 1},
    };
    (void)WriteFully(screen_fd_, screen, 3, true);
  }
}

absl::Status TaskLogState::MergeChildLogs(absl::Span<const pid_t> child_pids,
                                          bool automatic) {
  {
    RawMutexLock l(&mu_);
    if (automatic &&
        !(installed_ && options_.fork_aware && options_.merge_pcall_children)) {
      return absl::OkStatus();  // without touching 64 KiB of buffer
    }
  }
  std::vector<char> buffer(64 * 1024);
  RawMutexLock l(&mu_);
  if (automatic &&
      !(installed_ && options_.fork_aware && options_.merge_pcall_children)) {
    return absl::OkStatus();
  }
  if (!installed_) {
    return absl::FailedPreconditionError(
        "TaskLog::MergeChildLogs: not installed");
  }
  absl::Status first_error;
  const std::string parent_path(path_);
  for (const pid_t pid : child_pids) {
    const std::string child_path = TaskLog::ChildLogPath(parent_path, pid);
    const int in = RetryOnEintr(
        [&] { return ::open(child_path.c_str(), O_RDONLY | O_CLOEXEC); });
    if (in < 0) {
      const int error = errno;
      RecordErrorLocked(error, "open", child_path.c_str());
      first_error.Update(ErrnoError(error, "open child log", child_path));
      continue;
    }
    const std::string begin =
        absl::StrCat(">>>> Begin child log ", child_path, "\n");
    iovec marker[2] = {
        {const_cast<char*>("\n"), torn_ ? size_t{1} : size_t{0}},
        {const_cast<char*>(begin.data()), begin.size()},
    };
    int write_error = AppendLocked(marker, 2);
    while (write_error == 0) {
      const ssize_t n = RetryOnEintr(
          [&] { return ::read(in, buffer.data(), buffer.size()); });
      if (n < 0) {
        const int error = errno;
        RecordErrorLocked(error, "read", child_path.c_str());
        first_error.Update(ErrnoError(error, "read child log", child_path));
        break;
      }
      if (n == 0) break;
      iovec chunk{buffer.data(), static_cast<size_t>(n)};
      write_error = AppendLocked(&chunk, 1);
    }
    ::close(in);
    const std::string end =
        absl::StrCat("<<<< End child log ", child_path, "\n");
    iovec end_marker[2] = {
        {const_cast<char*>("\n"), torn_ ? size_t{1} : size_t{0}},
        {const_cast<char*>(end.data()), end.size()},
    };
    if (write_error == 0) write_error = AppendLocked(end_marker, 2);
    if (write_error != 0) {
      first_error.Update(ErrnoError(write_error, "write", parent_path));
    }
  }
  return first_error;
}

absl::StatusOr<TaskLog*> TaskLog::Install(std::string path,
                                          TaskLogOptions options) {
  return TaskLogState::Get().Install(std::move(path), options);
}

absl::Status TaskLog::Uninstall() { return TaskLogState::Get().Uninstall(); }

TaskLog* TaskLog::Current() { return TaskLogState::Get().current(); }

std::string TaskLog::ChildLogPath(absl::string_view parent_path, pid_t pid) {
  return absl::StrCat(parent_path, ":pid-", pid);
}

void TaskLog::Log(google::LogSeverity severity, const char* file, int line,
                  absl::string_view message) const {
  TaskLogState::Get().Log(severity, file, line, message);
}

bool TaskLog::glog_lock_found() {
  return TaskLogState::Get().glog_lock_found();
}

std::string TaskLog::path() const { return TaskLogState::Get().path(); }

absl::StatusOr<int64_t> TaskLog::size() const {
  return TaskLogState::Get().size();
}

absl::Status TaskLog::status() const { return TaskLogState::Get().status(); }

int64_t TaskLog::dropped_lines() const {
  return TaskLogState::Get().dropped_lines();
}

absl::Status TaskLog::MergeChildLogs(absl::Span<const pid_t> child_pids) {
  return TaskLogState::Get().MergeChildLogs(child_pids, /*automatic=*/false);
}

absl::StatusOr<TaskLog*> JobLog::Install(std::string path,
                                         TaskLogOptions options) {
  options.fork_aware = false;
  return TaskLog::Install(std::move(path), options);
}

}  // namespace taskfork::tasklog
