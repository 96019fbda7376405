#include "fork/process.h"

#include <cxxabi.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "fork/at_fork.h"
#include "fork/internal/child_syscalls.h"
#include "fork/internal/managed_children.h"
#include "fork/internal/os.h"
#include "glog/logging.h"

extern char** environ;

namespace taskfork {
namespace {

namespace child_syscalls = fork_internal::child_syscalls;

// The child -> parent channel carries frames: a 1-byte tag, an 8-byte
// little-endian payload size, the payload. At most one of kResult /
// kException, possibly after a kSetupError (then nothing else).
enum FrameTag : uint8_t {
  kResultFrame = 'R',     // the bytes a StartWithResultBytes() body returned
  kExceptionFrame = 'E',  // "<type>\0<what>"
  kSetupErrorFrame = 'S', // struct SetupError
};
constexpr size_t kFrameHeaderSize = 9;
// An exception's "<type>\0<what>" is cut to this size, so that a plain
// Process's diagnostics never fill the pipe (64 KiB) while nobody reads it.
constexpr size_t kMaxDiagnosticSize = 4096;
// A frame larger than this is treated as corrupt (kDataLoss), not allocated.
constexpr uint64_t kMaxFrameSize = uint64_t{1} << 40;

enum SetupStage : int32_t {
  kStageStdinDevNull = 1,
  kStageStdinTerminal = 2,
  kStageForeground = 3,
  kStageProcessGroup = 4,
  kStageParentDeath = 5,
  kStageName = 6,
  // Spawned children only (fork/spawn.h); the parent names the path.
  kStageChdir = 7,
  kStageExec = 8,
};

struct SetupError {
  int32_t stage;
  int32_t error;
};

const char* StageName(int32_t stage) {
  switch (stage) {
    case kStageStdinDevNull:
      return "open /dev/null as stdin";
    case kStageStdinTerminal:
      return "open /dev/tty as stdin (StdinPolicy::kControllingTerminal)";
    case kStageForeground:
      return "tcsetpgrp /dev/tty (make the child's group the foreground)";
    case kStageProcessGroup:
      return "setpgid(0, 0)";
    case kStageParentDeath:
      return "prctl(PR_SET_PDEATHSIG)";
    case kStageName:
      return "prctl(PR_SET_NAME)";
  }
  return "child setup";
}

void PutHeader(char* out, uint8_t tag, uint64_t size) {
  out[0] = static_cast<char>(tag);
  for (int i = 0; i < 8; ++i) out[1 + i] = static_cast<char>(size >> (8 * i));
}

// Async-signal-safe, child side: writes all of [data, data + size) or
// gives up.
bool WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const long n = child_syscalls::Write(fd, data, size);
    if (n == -EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Header and payload in one writev (one wake-up of the parent for a result
// that fits in the pipe), then the rest of the payload if it did not.
bool WriteFrame(int fd, uint8_t tag, absl::string_view payload) {
  char header[kFrameHeaderSize];
  PutHeader(header, tag, payload.size());
  iovec parts[2] = {{header, sizeof(header)},
                    {const_cast<char*>(payload.data()), payload.size()}};
  long n;
  do {
    n = child_syscalls::Writev(fd, parts, payload.empty() ? 1 : 2);
  } while (n == -EINTR);
  if (n < 0) return false;
  const size_t done = static_cast<size_t>(n);
  if (done < sizeof(header)) {
    return WriteAll(fd, header + done, sizeof(header) - done) &&
           WriteAll(fd, payload.data(), payload.size());
  }
  const size_t payload_done = done - sizeof(header);
  return WriteAll(fd, payload.data() + payload_done,
                  payload.size() - payload_done);
}

// Async-signal-safe: reports a setup failure and exits.
[[noreturn]] void FailSetup(int channel, SetupStage stage, int error,
                            int exit_code = kChildSetupFailedExitCode) {
  char frame[kFrameHeaderSize + sizeof(SetupError)];
  PutHeader(frame, kSetupErrorFrame, sizeof(SetupError));
  const SetupError e{stage, error};
  std::memcpy(frame + kFrameHeaderSize, &e, sizeof(e));
  WriteAll(channel, frame, sizeof(frame));
  child_syscalls::Exit(exit_code);
}

std::string Demangle(const char* mangled) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  if (status != 0 || demangled == nullptr) return mangled;
  std::string result(demangled);
  std::free(demangled);
  return result;
}

// The command line area [arg_start, arg_end) of this process, from
// /proc/self/stat (fields 48 and 49), read once in the parent.
struct ArgArea {
  char* start = nullptr;
  size_t size = 0;
};

ArgArea GetArgArea() {
  static const ArgArea area = [] {
    ArgArea result;
    const std::string stat = fork_internal::ReadSmallFile("/proc/self/stat");
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return result;
    // Fields after "(comm)" start with field 3 (state).
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(stat).substr(paren + 2), ' ');
    uint64_t start = 0, end = 0;
    if (fields.size() < 47 || !absl::SimpleAtoi(fields[48 - 3], &start) ||
        !absl::SimpleAtoi(fields[49 - 3], &end) || end <= start) {
      return result;
    }
    result.start = reinterpret_cast<char*>(start);
    result.size = end - start;
    return result;
  }();
  return area;
}

// Blocks SIGTTOU in the calling thread for the scope (tcsetpgrp from a
// background group would otherwise stop us).
class BlockSigttou {
 public:
  BlockSigttou() {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTTOU);
    ::pthread_sigmask(SIG_BLOCK, &set, &old_);
  }
  ~BlockSigttou() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }

 private:
  sigset_t old_;
};

// Everything the child needs, prepared in the parent so that the child's
// setup does not allocate.
struct ChildPlan {
  const ProcessOptions* options;
  pid_t parent_pid;
  int channel;                 // write end (O_NONBLOCK, see StartImpl)
  char** environment;          // nullptr: keep
  ArgArea title_area;          // size 0: no title
  char dev_null[sizeof("/dev/null")];  // the path, here rather than in .rodata
  const fork_internal::ExecTarget* exec;  // nullptr: run the body
};

[[noreturn]] void RunChild(const ChildPlan& plan, bool sends_result,
                           absl::FunctionRef<int(std::string*)> main) {
  // Until the body runs, every system call is made with child_syscalls
  // (no libc code to fault in: see there) and nothing is read from
  // read-only data (its pages, too, would be faulted in: the signals are
  // immediates, "/dev/null" is in the plan on the stack).
  const ProcessOptions& options = *plan.options;
  const int channel = plan.channel;

  if (options.own_process_group) {
    if (const long rc = child_syscalls::SetPgid(0, 0); rc < 0) {
      FailSetup(channel, kStageProcessGroup, static_cast<int>(-rc));
    }
  }
  if (options.reset_signals) {
    child_syscalls::SetSignalDefault(SIGINT);
    child_syscalls::SetSignalDefault(SIGTERM);
    child_syscalls::SetSignalDefault(SIGHUP);
    child_syscalls::SetSignalDefault(SIGQUIT);
    child_syscalls::SetSignalDefault(SIGPIPE);
    child_syscalls::SetSignalDefault(SIGCHLD);
    child_syscalls::UnblockAllSignals();
  }
  if (options.parent_death_signal != 0) {
    if (const long rc = child_syscalls::Prctl(PR_SET_PDEATHSIG,
                                              options.parent_death_signal);
        rc < 0) {
      FailSetup(channel, kStageParentDeath, static_cast<int>(-rc));
    }
    // The parent may have died before the prctl: then we were re-parented.
    if (child_syscalls::GetPpid() != plan.parent_pid) {
      child_syscalls::Kill(child_syscalls::GetPid(),
                           options.parent_death_signal);
      child_syscalls::Exit(128 + options.parent_death_signal);
    }
  }
  switch (options.stdin_policy) {
    case StdinPolicy::kInherit:
      break;
    case StdinPolicy::kDevNull: {
      // Opened here, not once in the parent: a descriptor the parent kept
      // open for good would change the process's descriptor table, which
      // callers check (a Runtime must leave the process as it found it).
      const long fd = child_syscalls::Open(plan.dev_null, O_RDONLY);
      if (fd < 0) FailSetup(channel, kStageStdinDevNull, static_cast<int>(-fd));
      if (fd != 0) {
        child_syscalls::Dup2(static_cast<int>(fd), 0);
        child_syscalls::Close(static_cast<int>(fd));
      }
      break;
    }
    case StdinPolicy::kControllingTerminal: {
      const int fd = ::open("/dev/tty", O_RDWR);
      if (fd < 0) FailSetup(channel, kStageStdinTerminal, errno);
      if (fd != 0) {
        ::dup2(fd, 0);
        ::close(fd);
      }
      if (options.own_process_group) {
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGTTOU);
        ::sigprocmask(SIG_BLOCK, &set, &old);
        const int rc = ::tcsetpgrp(0, ::getpid());
        const int error = errno;
        ::sigprocmask(SIG_SETMASK, &old, nullptr);
        if (rc != 0) FailSetup(channel, kStageForeground, error);
      }
      break;
    }
  }
  if (plan.environment != nullptr) environ = plan.environment;
  if (!options.name.empty()) {
    if (const long rc = child_syscalls::Prctl(
            PR_SET_NAME, reinterpret_cast<unsigned long>(options.name.c_str()));
        rc < 0) {
      FailSetup(channel, kStageName, static_cast<int>(-rc));
    }
  }
  if (plan.title_area.size > 0) {
    const size_t n = std::min(options.name.size(), plan.title_area.size - 1);
    std::memcpy(plan.title_area.start, options.name.data(), n);
    std::memset(plan.title_area.start + n, 0, plan.title_area.size - n);
  }
  if (plan.exec != nullptr) {
    // Spawn(): chdir and execve are async-signal-safe; the channel is
    // O_CLOEXEC, so a successful exec closes it and the parent reads nothing.
    const fork_internal::ExecTarget& exec = *plan.exec;
    if (exec.working_directory != nullptr &&
        ::chdir(exec.working_directory) != 0) {
      FailSetup(channel, kStageChdir, errno, kExecFailedExitCode);
    }
    ::execve(exec.argv[0], exec.argv, environ);
    FailSetup(channel, kStageExec, errno, kExecFailedExitCode);
  }

  // The body: from here on the child runs arbitrary user code anyway.
  int code = 0;
  // This child's copy of the buffer; a plain child never touches it (its
  // first use would allocate it here, in the child).
  std::string* result = nullptr;
  if (sends_result) {
    result = &fork_internal::ChildResultBuffer();
    result->clear();
  }
  bool threw = false;
  std::string exception;  // "<type>\0<what>"
  try {
    code = main(result);
  } catch (const std::exception& e) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    exception = absl::StrCat(
        type != nullptr ? Demangle(type->name()) : "std::exception",
        absl::string_view("\0", 1), e.what());
    threw = true;
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    exception = type != nullptr ? Demangle(type->name()) : std::string("unknown");
    threw = true;
  }
  // What the body left queued in inherited objects (a report client's
  // events) goes out before the parent can see the result or the exit.
  RunChildExitHooks();
  if (threw) {
    WriteFrame(channel, kExceptionFrame,
               absl::string_view(exception).substr(0, kMaxDiagnosticSize));
    code = kUncaughtExceptionExitCode;
  } else if (sends_result) {
    // A result of any size: blocking writes (the parent drains the pipe).
    child_syscalls::Fcntl(channel, F_SETFL, 0);
    if (result->size() > (64 << 10)) {
      // A large result moves in fewer wake-ups through a 1 MiB pipe. Only
      // then: many enlarged pipes would count against the user's pipe
      // quota (pipe-user-pages-soft). EPERM over the limit keeps the
      // default.
      child_syscalls::Fcntl(channel, F_SETPIPE_SZ, 1 << 20);
    }
    if (!WriteFrame(channel, kResultFrame, *result)) {
      code = kChildSetupFailedExitCode;  // the parent went away
    }
  }
  FlushPendingStdio();
  child_syscalls::Exit(code & 0xff);
}

absl::Status ValidateOptions(const ProcessOptions& options) {
  for (const auto& [name, value] : options.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos ||
        value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ProcessOptions.env: bad variable name or value for \"", name,
          "\" (a name must be non-empty without '=' or NUL)"));
    }
  }
  if (options.parent_death_signal < 0 || options.parent_death_signal >= NSIG) {
    return absl::InvalidArgumentError(
        absl::StrCat("ProcessOptions.parent_death_signal: ",
                     options.parent_death_signal, " is not a signal number"));
  }
  if (options.name.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError("ProcessOptions.name contains NUL");
  }
  return absl::OkStatus();
}

// The child's environment: ours with `additions` applied, as "K=V" strings.
struct Environment {
  std::vector<std::string> strings;
  std::vector<char*> pointers;
};

void BuildEnvironment(
    const std::vector<std::pair<std::string, std::string>>& additions,
    Environment* env) {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    env->strings.emplace_back(*e);
  }
  for (const auto& [name, value] : additions) {
    const std::string prefix = name + "=";
    std::string entry = prefix + value;
    bool replaced = false;
    for (std::string& s : env->strings) {
      if (absl::StartsWith(s, prefix)) {
        s = entry;
        replaced = true;
        break;
      }
    }
    if (!replaced) env->strings.push_back(std::move(entry));
  }
  for (std::string& s : env->strings) env->pointers.push_back(s.data());
  env->pointers.push_back(nullptr);
}

}  // namespace

std::string ExitStatus::signal_name() const {
  if (signal == 0) return "";
  const char* abbrev = ::sigabbrev_np(signal);
  if (abbrev == nullptr) return absl::StrCat("SIG", signal);
  return absl::StrCat("SIG", abbrev);
}

ExitStatus ExitStatus::FromWait(pid_t pid, int status, const rusage& usage) {
  ExitStatus exit;
  exit.pid = pid;
  if (WIFEXITED(status)) {
    exit.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    exit.signal = WTERMSIG(status);
    exit.core_dumped = WCOREDUMP(status);
  }
  exit.user_cpu = absl::DurationFromTimeval(usage.ru_utime);
  exit.system_cpu = absl::DurationFromTimeval(usage.ru_stime);
  exit.max_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return exit;
}

std::string ExitStatus::ToString() const {
  std::string how;
  if (!uncaught_exception.empty()) {
    how = absl::StrCat("threw ", uncaught_exception, " (exit code ",
                       exit_code, ")");
  } else if (signal != 0) {
    how = absl::StrCat("killed by ", signal_name(),
                       core_dumped ? " (core dumped)" : "");
  } else {
    how = absl::StrCat("exited with code ", exit_code);
  }
  return absl::StrFormat(
      "pid %d %s (user %s, sys %s, max RSS %.1f MiB)", pid, how,
      absl::FormatDuration(user_cpu), absl::FormatDuration(system_cpu),
      static_cast<double>(max_rss_bytes) / (1024.0 * 1024.0));
}

absl::StatusOr<Process> Process::Start(ProcessOptions options,
                                       absl::AnyInvocable<int()> body) {
  auto main = [&body](std::string*) { return body(); };
  return StartImpl(std::move(options), /*sends_result=*/false, main);
}

absl::StatusOr<Process> Process::StartWithResultBytes(
    ProcessOptions options, absl::AnyInvocable<std::string()> body) {
  return StartWithResultInto(std::move(options),
                             [&body](std::string* out) { *out = body(); });
}

absl::StatusOr<Process> Process::StartWithResultInto(
    ProcessOptions options, absl::AnyInvocable<void(std::string* out)> body) {
  auto main = [&body](std::string* result) {
    body(result);
    return 0;
  };
  return StartImpl(std::move(options), /*sends_result=*/true, main);
}

absl::StatusOr<Process> Process::StartImpl(
    ProcessOptions options, bool sends_result, ChildMain main,
    const fork_internal::ExecTarget* exec) {
  TASKFORK_RETURN_IF_ERROR(ValidateOptions(options));
  Environment environment;
  if (!options.env.empty()) BuildEnvironment(options.env, &environment);
  ArgArea title_area;
  if (options.set_cmdline_title && !options.name.empty()) {
    title_area = GetArgArea();
  }
  // Both ends non-blocking (one system call instead of pipe2 + fcntl): the
  // parent's read end must be; the child writes at most a few KiB of
  // diagnostics (they always fit) or clears O_NONBLOCK before its result.
  TASKFORK_ASSIGN_OR_RETURN(OwnedFd::PipeEnds channel,
                            OwnedFd::Pipe(O_NONBLOCK));

  ChildPlan plan;
  plan.options = &options;
  plan.parent_pid = ::getpid();
  plan.channel = channel.write.get();
  plan.environment = options.env.empty() ? nullptr : environment.pointers.data();
  plan.title_area = title_area;
  std::memcpy(plan.dev_null, "/dev/null", sizeof(plan.dev_null));
  plan.exec = exec;

  // Nothing buffered in stdio may be written twice (by parent and child).
  FlushPendingStdio();

  // Reserved here, not in the child.
  if (sends_result) fork_internal::ChildResultBuffer();

  fork_internal::ForkLock fork_lock;
  const pid_t pid = ::fork();
  if (pid == 0) {
    fork_lock.ReleaseInChild();
    child_syscalls::Close(channel.read.Release());
    RunChild(plan, sends_result, main);
  }
  if (pid < 0) return ErrnoError(errno, "fork");
  fork_lock.AddAndUnlock(pid);

  Process process;
  process.pid_ = pid;
  process.owner_pid_ = plan.parent_pid;
  process.on_destruction_ = options.on_destruction;
  process.own_group_ = options.own_process_group;
  process.restore_terminal_ =
      options.own_process_group &&
      options.stdin_policy == StdinPolicy::kControllingTerminal;
  process.sends_result_ = sends_result;
  if (exec != nullptr) {
    process.exec_path_ = exec->argv[0];
    if (exec->working_directory != nullptr) {
      process.exec_directory_ = exec->working_directory;
    }
  }
  if (options.own_process_group) {
    // Also from the parent, so that the group exists before Start returns
    // (the child may not have run yet). EACCES/ESRCH: the child got there.
    ::setpgid(pid, pid);
  }
  TASKFORK_RETURN_IF_ERROR(channel.write.Close());
  process.channel_ = std::move(channel.read);
  const long pidfd = fork_internal::PidfdOpen(pid);
  if (pidfd < 0) {
    const int error = errno;
    // No pidfd: kill and reap it here; the destructor could not wait.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    fork_internal::RemoveManagedChild(pid);
    process.pid_ = -1;
    if (error == ENOSYS) {
      return absl::UnimplementedError(
          "pidfd_open: not supported by this kernel (Linux >= 5.3 needed)");
    }
    return ErrnoError(error, "pidfd_open for pid", absl::StrCat(pid));
  }
  process.pidfd_.Reset(static_cast<int>(pidfd));  // pidfds are O_CLOEXEC
  return process;
}

Process::Process(Process&& other) noexcept { *this = std::move(other); }

Process& Process::operator=(Process&& other) noexcept {
  if (this == &other) return *this;
  Clear();
  pid_ = std::exchange(other.pid_, -1);
  owner_pid_ = other.owner_pid_;
  on_destruction_ = other.on_destruction_;
  own_group_ = other.own_group_;
  restore_terminal_ = other.restore_terminal_;
  sends_result_ = other.sends_result_;
  result_taken_ = other.result_taken_;
  pidfd_ = std::move(other.pidfd_);
  channel_ = std::move(other.channel_);
  header_ = std::move(other.header_);
  frame_tag_ = other.frame_tag_;
  frame_size_ = other.frame_size_;
  frame_ = std::move(other.frame_);
  result_ = std::move(other.result_);
  exception_ = std::move(other.exception_);
  setup_error_ = std::move(other.setup_error_);
  channel_error_ = std::move(other.channel_error_);
  exec_path_ = std::move(other.exec_path_);
  exec_directory_ = std::move(other.exec_directory_);
  exit_status_ = std::move(other.exit_status_);
  other.exit_status_.reset();
  return *this;
}

Process::~Process() { Clear(); }

void Process::Clear() {
  if (pid_ > 0 && !exit_status_.has_value() && pidfd_.valid() &&
      ::getpid() == owner_pid_) {
    switch (on_destruction_) {
      case DestructionPolicy::kKillAndReap:
        Kill().IgnoreError();
        break;
      case DestructionPolicy::kLeaveRunning:
        // Nobody owns it now: a Supervisor may treat it as an orphan.
        fork_internal::RemoveManagedChild(pid_);
        break;
    }
  }
  pid_ = -1;
  pidfd_.Reset();
  channel_.Reset();
}

absl::Status Process::DrainResult() {
  if (!channel_.valid()) return channel_error_;
  for (;;) {
    // Read the header, then the payload straight into its final string.
    char header[kFrameHeaderSize];
    char* target;
    size_t want;
    if (frame_tag_ == 0) {
      target = header;
      want = kFrameHeaderSize - header_.size();
    } else {
      target = frame_.data() + (frame_.size() - frame_size_);
      want = frame_size_;
    }
    const ssize_t n = ::read(channel_.get(), target, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return absl::OkStatus();
      channel_error_ = ErrnoError(errno, "read result pipe of pid",
                                  absl::StrCat(pid_));
      channel_.Reset();
      return channel_error_;
    }
    if (n == 0) {  // end of file: every writer is gone
      channel_.Reset();
      if (frame_tag_ != 0 || !header_.empty()) {
        // A child killed while writing its result; Join reports the signal.
        header_.clear();
        frame_tag_ = 0;
        frame_.clear();
      }
      return channel_error_;
    }
    if (frame_tag_ == 0) {
      header_.append(header, static_cast<size_t>(n));
      if (header_.size() < kFrameHeaderSize) continue;
      uint64_t size = 0;
      for (int i = 0; i < 8; ++i) {
        size |= uint64_t{static_cast<uint8_t>(header_[1 + i])} << (8 * i);
      }
      const uint8_t tag = static_cast<uint8_t>(header_[0]);
      header_.clear();
      if ((tag != kResultFrame && tag != kExceptionFrame &&
           tag != kSetupErrorFrame) ||
          size > kMaxFrameSize ||
          (tag == kSetupErrorFrame && size != sizeof(SetupError))) {
        channel_error_ = absl::DataLossError(absl::StrCat(
            "result pipe of pid ", pid_, ": malformed frame (tag ",
            static_cast<int>(tag), ", size ", size, ")"));
        channel_.Reset();
        return channel_error_;
      }
      frame_tag_ = tag;
      frame_size_ = size;
      frame_.assign(size, '\0');
    } else {
      frame_size_ -= static_cast<uint64_t>(n);
    }
    if (frame_tag_ != 0 && frame_size_ == 0) {
      switch (frame_tag_) {
        case kResultFrame:
          result_ = std::move(frame_);
          break;
        case kExceptionFrame: {
          const size_t nul = frame_.find('\0');
          exception_ = nul == std::string::npos
                           ? frame_
                           : absl::StrCat(frame_.substr(0, nul), ": ",
                                          frame_.substr(nul + 1));
          break;
        }
        case kSetupErrorFrame: {
          SetupError e;
          std::memcpy(&e, frame_.data(), sizeof(e));
          std::string stage = StageName(e.stage);
          if (e.stage == kStageChdir) {
            stage = absl::StrCat("chdir ", exec_directory_);
          } else if (e.stage == kStageExec) {
            stage = absl::StrCat("execve ", exec_path_);
          }
          absl::Status error = e.error != 0 ? ErrnoError(e.error, stage)
                                            : absl::InternalError(stage);
          if (e.stage == kStageStdinTerminal || e.stage == kStageForeground) {
            error = absl::FailedPreconditionError(absl::StrCat(
                "pid ", pid_, ": no usable controlling terminal: ",
                error.message()));
          } else {
            error = absl::Status(error.code(), absl::StrCat("pid ", pid_, ": ",
                                                            error.message()));
          }
          setup_error_ = std::move(error);
          break;
        }
      }
      frame_.clear();
      frame_tag_ = 0;
      frame_size_ = 0;
    }
  }
}

absl::Status Process::WaitExited(absl::Time deadline) {
  for (;;) {
    // A plain Process writes at most two small frames (setup error,
    // exception: < kMaxDiagnosticSize each), which always fit in the pipe
    // buffer, so only a result child's pipe is watched while it runs. That
    // also saves a wake-up: the pipe's end-of-file comes a little before the
    // pidfd's exit notification.
    pollfd fds[2] = {{pidfd_.get(), POLLIN, 0}, {channel_.get(), POLLIN, 0}};
    const nfds_t nfds = sends_result_ && channel_.valid() ? 2 : 1;
    timespec ts;
    timespec* timeout = nullptr;
    if (deadline != absl::InfiniteFuture()) {
      ts = absl::ToTimespec(std::max(deadline - absl::Now(), absl::ZeroDuration()));
      timeout = &ts;
    }
    const int ready = ::ppoll(fds, nfds, timeout, nullptr);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "ppoll on the pidfd of pid", absl::StrCat(pid_));
    }
    if (nfds == 2 && fds[1].revents != 0) {
      DrainResult().IgnoreError();  // kept in channel_error_
    }
    if (fds[0].revents != 0) {
      // Exited: what it wrote is in the pipe now; Reap() reads it.
      return absl::OkStatus();
    }
    if (ready == 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("pid ", pid_, " is still running"));
    }
  }
}

absl::Status Process::Reap(int wait_options) {
  if (restore_terminal_) {
    // Give the terminal's foreground back to our group if the child had it.
    const int tty = ::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty >= 0) {
      if (::tcgetpgrp(tty) == pid_) {
        BlockSigttou block;
        ::tcsetpgrp(tty, ::getpgrp());
      }
      ::close(tty);
    }
  }
  int status = 0;
  rusage usage{};
  const pid_t reaped = RetryOnEintr(
      [&] { return ::wait4(pid_, &status, wait_options, &usage); });
  if (reaped != pid_) {
    if (reaped < 0 && errno == ECHILD) {
      return absl::InternalError(absl::StrCat(
          "wait4 pid ", pid_,
          ": already reaped by someone else (SIGCHLD ignored, or a "
          "waitpid(-1) elsewhere in this process)"));
    }
    if (reaped < 0) return ErrnoError(errno, "wait4 pid", absl::StrCat(pid_));
    return absl::InternalError(
        absl::StrCat("wait4 pid ", pid_, ": pidfd readable but not exited"));
  }
  fork_internal::RemoveManagedChild(pid_);
  // What the child wrote is in the pipe now (it cannot write more). A plain
  // Process writes only when its body threw or its setup failed (exit codes
  // 70 and 71), or perhaps before a signal killed it: else nothing to read.
  if (channel_.valid() &&
      (sends_result_ || WIFSIGNALED(status) ||
       (WIFEXITED(status) &&
        (WEXITSTATUS(status) == kUncaughtExceptionExitCode ||
         WEXITSTATUS(status) == kChildSetupFailedExitCode ||
         (!exec_path_.empty() &&
          WEXITSTATUS(status) == kExecFailedExitCode))))) {
    DrainResult().IgnoreError();  // kept in channel_error_
  }
  ExitStatus exit = ExitStatus::FromWait(pid_, status, usage);
  exit.uncaught_exception = std::move(exception_);
  exit_status_ = std::move(exit);
  pidfd_.Reset();
  channel_.Reset();
  return absl::OkStatus();
}

absl::StatusOr<ExitStatus> Process::Join(absl::Duration timeout) {
  CHECK_GT(pid_, 0) << "Join() on an empty (moved-from) Process";
  if (!exit_status_.has_value()) {
    if (timeout == absl::InfiniteDuration() && !sends_result_ &&
        !restore_terminal_) {
      // Nothing to drain or to do before the child is gone: a blocking
      // wait4 saves the ppoll and its wake-up.
      TASKFORK_RETURN_IF_ERROR(Reap(/*wait_options=*/0));
    } else {
      const absl::Time deadline = timeout == absl::InfiniteDuration()
                                      ? absl::InfiniteFuture()
                                      : absl::Now() + timeout;
      TASKFORK_RETURN_IF_ERROR(WaitExited(deadline));
      TASKFORK_RETURN_IF_ERROR(Reap(WNOHANG));
    }
  }
  if (!setup_error_.ok()) return setup_error_;
  return *exit_status_;
}

absl::Status Process::SendSignal(int signo) {
  const int rc = own_group_ ? ::kill(-pid_, signo)
                            : fork_internal::PidfdSendSignal(pidfd_.get(), signo);
  if (rc != 0 && errno != ESRCH) {
    return ErrnoError(errno, own_group_ ? "kill process group" : "kill pid",
                      absl::StrCat(pid_));
  }
  return absl::OkStatus();
}

absl::Status Process::Signal(int signo) {
  CHECK_GT(pid_, 0) << "Signal() on an empty (moved-from) Process";
  if (signo <= 0 || signo >= NSIG) {
    return absl::InvalidArgumentError(
        absl::StrCat(signo, " is not a signal number"));
  }
  if (exit_status_.has_value()) {
    return absl::FailedPreconditionError(
        absl::StrCat("pid ", pid_, " was already reaped"));
  }
  return SendSignal(signo);
}

absl::Status Process::Terminate(absl::Duration grace) {
  CHECK_GT(pid_, 0) << "Terminate() on an empty (moved-from) Process";
  if (exit_status_.has_value()) return absl::OkStatus();
  TASKFORK_RETURN_IF_ERROR(SendSignal(SIGTERM));
  absl::Status waited = WaitExited(absl::Now() + grace);
  if (absl::IsDeadlineExceeded(waited)) {
    TASKFORK_RETURN_IF_ERROR(SendSignal(SIGKILL));
    waited = WaitExited(absl::InfiniteFuture());
  }
  TASKFORK_RETURN_IF_ERROR(waited);
  // The child is a zombie and still holds its group id: end what is left.
  if (own_group_) TASKFORK_RETURN_IF_ERROR(SendSignal(SIGKILL));
  return Reap(WNOHANG);
}

absl::Status Process::Kill() {
  CHECK_GT(pid_, 0) << "Kill() on an empty (moved-from) Process";
  if (exit_status_.has_value()) return absl::OkStatus();
  TASKFORK_RETURN_IF_ERROR(SendSignal(SIGKILL));
  TASKFORK_RETURN_IF_ERROR(WaitExited(absl::InfiniteFuture()));
  return Reap(WNOHANG);
}

bool Process::is_alive() const {
  if (pid_ <= 0 || exit_status_.has_value()) return false;
  pollfd fd{pidfd_.get(), POLLIN, 0};
  return RetryOnEintr([&] { return ::poll(&fd, 1, 0); }) == 0;
}

absl::StatusOr<std::string> Process::TakeResultBytes() {
  if (!exit_status_.has_value()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pid ", pid_, " has not been reaped yet; Join() it first"));
  }
  if (!setup_error_.ok()) return setup_error_;
  if (!sends_result_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "pid ", pid_, " was not started with StartWithResultBytes()"));
  }
  if (result_.has_value()) {
    if (!exit_status_->success()) {
      // A result followed by a crash in the child's exit path: keep it.
      return absl::AbortedError(absl::StrCat(
          "child sent a result but then ended abnormally: ",
          exit_status_->ToString()));
    }
    std::string result = std::move(*result_);
    result_.reset();
    result_taken_ = true;
    return result;
  }
  if (result_taken_) {
    return absl::FailedPreconditionError(
        absl::StrCat("the result of pid ", pid_, " was taken already"));
  }
  if (!exit_status_->uncaught_exception.empty()) {
    return absl::UnknownError(absl::StrCat(
        "child pid ", pid_, " threw ", exit_status_->uncaught_exception));
  }
  if (!channel_error_.ok()) return channel_error_;
  return absl::AbortedError(absl::StrCat("child ended without a result: ",
                                         exit_status_->ToString()));
}

}  // namespace taskfork
