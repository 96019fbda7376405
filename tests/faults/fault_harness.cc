#include "tests/faults/fault_harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/errno.h"
#include "google/protobuf/util/json_util.h"

namespace taskfork::faults {
namespace {

using ::google::protobuf::Value;

constexpr char kRunnerPath[] = "tests/faults/fault_runner";

// Fields of /proc/<pid>/stat after the command name: [0] state, [1] ppid.
std::vector<std::string> StatFields(pid_t pid) {
  const std::string stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  const size_t close = stat.rfind(')');
  if (close == std::string::npos || close + 2 > stat.size()) return {};
  return absl::StrSplit(stat.substr(close + 2), ' ');
}

// Reads exactly `size` bytes, waiting at most until `deadline`.
bool ReadExactly(int fd, void* out, size_t size, absl::Time deadline) {
  char* p = static_cast<char*>(out);
  size_t got = 0;
  while (got < size) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, absl::ToInt64Milliseconds(left) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    const ssize_t n = ::read(fd, p + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    got += static_cast<size_t>(n);
  }
  return true;
}

void WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    size -= static_cast<size_t>(n);
  }
}

// In a forked child: stdout/stderr to the files, then exec the runner.
[[noreturn]] void ExecRunner(std::vector<std::string>& args,
                             const std::string& out, const std::string& err) {
  const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (out_fd < 0 || err_fd < 0) ::_exit(120);
  ::dup2(out_fd, STDOUT_FILENO);
  ::dup2(err_fd, STDERR_FILENO);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  ::_exit(121);
}

int ExitCodeOf(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return -WTERMSIG(wait_status);
  return -1000;
}

int shm_counter = 0;

}  // namespace

std::string Runfile(const std::string& path) {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/taskfork/", path);
}

std::vector<pid_t> LiveChildren() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  std::vector<pid_t> children;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return children;
  while (const dirent* entry = ::readdir(proc)) {
    pid_t pid;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    const std::vector<std::string> fields = StatFields(pid);
    pid_t ppid;
    if (fields.size() > 1 && absl::SimpleAtoi(fields[1], &ppid) &&
        ppid == ::getpid() && fields[0] != "Z") {
      children.push_back(pid);
    }
  }
  ::closedir(proc);
  return children;
}

std::vector<std::string> ShmEntriesWith(const std::string& needle) {
  std::vector<std::string> names;
  DIR* dir = ::opendir("/dev/shm");
  if (dir == nullptr) return names;
  while (const dirent* entry = ::readdir(dir)) {
    if (absl::StrContains(entry->d_name, needle)) {
      names.push_back(entry->d_name);
    }
  }
  ::closedir(dir);
  return names;
}

bool ProcessGone(pid_t pid) {
  const std::vector<std::string> fields = StatFields(pid);
  if (fields.empty()) return true;
  if (fields[0] == "Z") {
    ::waitpid(pid, nullptr, WNOHANG);
    return true;
  }
  return false;
}

absl::Status MountTmpfs(const std::string& target, uint64_t size_bytes,
                        mode_t mode, bool read_only) {
  const std::string data =
      absl::StrFormat("size=%d,mode=%o", size_bytes, mode);
  if (::mount("tmpfs", target.c_str(), "tmpfs", MS_NOSUID | MS_NODEV,
              data.c_str()) != 0) {
    return ErrnoError(errno, "mount tmpfs on", target);
  }
  if (read_only &&
      ::mount(nullptr, target.c_str(), nullptr,
              MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0) {
    return ErrnoError(errno, "remount read-only", target);
  }
  return absl::OkStatus();
}

namespace {

// In a child: a private mount namespace (as root, or in a new user
// namespace mapping our uid to root).
absl::Status EnterMountNamespace() {
  if (::unshare(CLONE_NEWNS) != 0) {
    const int first = errno;
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
      return ErrnoError(first, "unshare(CLONE_NEWNS)");
    }
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return ErrnoError(errno, "make / private");
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> MountNamespacesUnavailable() {
  static const std::optional<std::string> answer =
      []() -> std::optional<std::string> {
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return "pipe2 failed";
    const pid_t child = ::fork();
    if (child == 0) {
      ::close(pipe_fds[0]);
      absl::Status status = EnterMountNamespace();
      if (status.ok()) status = MountTmpfs("/dev/shm", 1 << 20, 01777, false);
      const std::string message = status.ToString();
      WriteAll(pipe_fds[1], message.data(), message.size());
      ::_exit(status.ok() ? 0 : 1);
    }
    ::close(pipe_fds[1]);
    std::string message;
    char buffer[512];
    ssize_t n;
    while ((n = RetryOnEintr([&] {
              return ::read(pipe_fds[0], buffer, sizeof(buffer));
            })) > 0) {
      message.append(buffer, n);
    }
    ::close(pipe_fds[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return std::nullopt;
    return absl::StrCat(
        "private mount namespaces with a tmpfs are not available here (",
        message, ")");
  }();
  return answer;
}

// ---------------------------------------------------------------------------
// Runner

Runner::Runner(Runner&& other) noexcept
    : process_(std::move(other.process_)),
      namespaced_(other.namespaced_),
      runner_pid_(other.runner_pid_),
      status_fd_(std::exchange(other.status_fd_, -1)),
      release_fd_(std::exchange(other.release_fd_, -1)),
      exit_code_(other.exit_code_),
      finished_(other.finished_),
      max_rss_bytes_(other.max_rss_bytes_) {
  other.process_.reset();
}

Runner::~Runner() {
  if (release_fd_ >= 0) ::close(release_fd_);
  if (status_fd_ >= 0) ::close(status_fd_);
  if (process_.has_value()) {
    if (!finished_ && !namespaced_) (void)process_->Kill();
    (void)process_->Join(absl::Seconds(60));
  }
}

void Runner::Signal(int signo) const { ::kill(runner_pid_, signo); }

void Runner::SignalGroup(int signo) const { ::kill(-runner_pid_, signo); }

int Runner::Finish() {
  if (finished_) return exit_code_;
  finished_ = true;
  if (!namespaced_) {
    const absl::StatusOr<ExitStatus> status =
        process_->Join(absl::Seconds(150));
    EXPECT_TRUE(status.ok()) << status.status();
    if (!status.ok()) {
      (void)process_->Kill();
      return exit_code_ = -1000;
    }
    max_rss_bytes_ = status->max_rss_bytes;
    return exit_code_ =
               status->signaled() ? -status->signal : status->exit_code;
  }
  int wait_status = 0;
  if (!ReadExactly(status_fd_, &wait_status, sizeof(wait_status),
                   absl::Now() + absl::Seconds(150))) {
    ADD_FAILURE() << "the runner did not end within 150 s (or the holder "
                     "died)";
    ::kill(runner_pid_, SIGKILL);
    return exit_code_ = -1000;
  }
  return exit_code_ = ExitCodeOf(wait_status);
}

std::string Runner::Path(const std::string& path) const {
  if (!namespaced_) return path;
  return absl::StrCat("/proc/", process_->pid(), "/root", path);
}

// ---------------------------------------------------------------------------
// FIFOs

AnnounceFifo::AnnounceFifo(std::string path) : path_(std::move(path)) {
  EXPECT_EQ(::mkfifo(path_.c_str(), 0600), 0) << std::strerror(errno);
  fd_ = ::open(path_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  EXPECT_GE(fd_, 0) << std::strerror(errno);
}

AnnounceFifo::~AnnounceFifo() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<pid_t> AnnounceFifo::Read(int count, absl::Duration timeout) {
  std::vector<pid_t> pids;
  const absl::Time deadline = absl::Now() + timeout;
  while (static_cast<int>(pids.size()) < count) {
    const size_t newline = pending_.find('\n');
    if (newline != std::string::npos) {
      pid_t pid = 0;
      EXPECT_TRUE(absl::SimpleAtoi(pending_.substr(0, newline), &pid))
          << "bad announcement \"" << pending_.substr(0, newline) << "\"";
      pending_.erase(0, newline + 1);
      pids.push_back(pid);
      continue;
    }
    const absl::Duration left = deadline - absl::Now();
    pollfd pfd{fd_, POLLIN, 0};
    const int ready =
        left <= absl::ZeroDuration()
            ? 0
            : ::poll(&pfd, 1, absl::ToInt64Milliseconds(left) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ADD_FAILURE() << "only " << pids.size() << " of " << count
                    << " announcements on " << path_ << " within "
                    << timeout;
      break;
    }
    char buffer[4096];
    const ssize_t n = ::read(fd_, buffer, sizeof(buffer));
    if (n > 0) pending_.append(buffer, static_cast<size_t>(n));
  }
  return pids;
}

GoFifo::GoFifo(std::string path) : path_(std::move(path)) {
  EXPECT_EQ(::mkfifo(path_.c_str(), 0600), 0) << std::strerror(errno);
}

void GoFifo::Release() const {
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd >= 0) ::close(fd);
}

// ---------------------------------------------------------------------------
// FaultTest

void FaultTest::SetUpTestSuite() {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
}

void FaultTest::SetUp() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                      info->test_suite_name(), ".", info->name());
  ASSERT_EQ(::mkdir(dir_.c_str(), 0755), 0) << dir_;
  runs_dir_ = dir_ + "/runs";
  shm_prefix_ = absl::StrCat("tf-faults-", ::getpid(), "-", shm_counter++);
  fds_before_ = OpenDescriptors();
}

void FaultTest::TearDown() {
  // Nothing a run started may outlive it: orphans were re-parented to us.
  const std::vector<pid_t> leftovers = LiveChildren();
  for (pid_t pid : leftovers) ::kill(pid, SIGKILL);
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  EXPECT_TRUE(leftovers.empty())
      << leftovers.size() << " process(es) outlived the run, e.g. pid "
      << leftovers[0];
  EXPECT_EQ(OpenDescriptors(), fds_before_)
      << "the test process's descriptors changed";
  EXPECT_TRUE(ShmEntriesWith(shm_prefix_).empty())
      << "/dev/shm entries with " << shm_prefix_ << " remain";
}

std::string FaultTest::RunInfoFlag() const {
  return absl::StrCat("--runinfo_dir=", runs_dir_);
}

std::string FaultTest::WriteSpec(const std::string& text,
                                 const std::string& name) {
  const std::string path = absl::StrCat(dir_, "/", name);
  std::ofstream(path) << text;
  return path;
}

Runner FaultTest::StartRunner(std::vector<std::string> args,
                              MountSetup setup) {
  args.insert(args.begin(), Runfile(kRunnerPath));
  const std::string out = dir_ + "/stdout";
  const std::string err = dir_ + "/stderr";
  Runner runner;
  if (setup == nullptr) {
    auto process = Process::Start({}, [args, out, err]() mutable -> int {
      ExecRunner(args, out, err);
    });
    EXPECT_TRUE(process.ok()) << process.status();
    if (!process.ok()) return runner;
    runner.runner_pid_ = process->pid();
    runner.process_.emplace(std::move(*process));
    return runner;
  }

  int status_pipe[2], release_pipe[2];
  EXPECT_EQ(::pipe2(status_pipe, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(release_pipe, O_CLOEXEC), 0);
  const int status_w = status_pipe[1];
  const int release_r = release_pipe[0];
  const int status_r = status_pipe[0];
  const int release_w = release_pipe[1];
  auto holder = Process::Start(
      {}, [args, out, err, setup, status_w, release_r, status_r,
           release_w]() mutable -> int {
        // The test's ends: the holder must see the release end close.
        ::close(status_r);
        ::close(release_w);
        absl::Status ready = EnterMountNamespace();
        if (ready.ok()) ready = setup();
        if (!ready.ok()) {
          const std::string message = ready.ToString() + "\n";
          WriteAll(STDERR_FILENO, message.data(), message.size());
          pid_t none = -1;
          WriteAll(status_w, &none, sizeof(none));
          return 125;
        }
        const pid_t pid = ::fork();
        if (pid == 0) {
          ::setpgid(0, 0);
          ExecRunner(args, out, err);
        }
        WriteAll(status_w, &pid, sizeof(pid));
        int wait_status = 0;
        while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
        }
        WriteAll(status_w, &wait_status, sizeof(wait_status));
        char byte;
        while (::read(release_r, &byte, 1) < 0 && errno == EINTR) {
        }
        return 0;
      });
  ::close(status_w);
  ::close(release_r);
  runner.status_fd_ = status_pipe[0];
  runner.release_fd_ = release_pipe[1];
  runner.namespaced_ = true;
  EXPECT_TRUE(holder.ok()) << holder.status();
  if (!holder.ok()) return runner;
  runner.process_.emplace(std::move(*holder));
  pid_t pid = -1;
  EXPECT_TRUE(ReadExactly(runner.status_fd_, &pid, sizeof(pid),
                          absl::Now() + absl::Seconds(60)));
  EXPECT_GT(pid, 0) << "the mount namespace could not be set up; see "
                    << err;
  runner.runner_pid_ = pid;
  if (pid <= 0) runner.finished_ = true;
  return runner;
}

int FaultTest::Run(const std::string& spec_text,
                   std::vector<std::string> extra) {
  std::vector<std::string> args = {RunInfoFlag()};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(WriteSpec(spec_text));
  Runner runner = StartRunner(args);
  return runner.Finish();
}

std::string FaultTest::RunDir(const Runner& runner) const {
  const std::string& runs = runs_dir_;
  char target[4096];
  const ssize_t n = ::readlink(runner.Path(runs + "/latest").c_str(), target,
                               sizeof(target));
  if (n <= 0) return "";
  const std::string link(target, static_cast<size_t>(n));
  return link[0] == '/' ? runner.Path(link)
                        : absl::StrCat(runner.Path(runs), "/", link);
}

Struct FaultTest::Results(const Runner& runner) const {
  Struct results;
  const std::string dir = RunDir(runner);
  EXPECT_FALSE(dir.empty()) << "no runs/latest";
  const std::string json = ReadFile(dir + "/results.json");
  EXPECT_FALSE(json.empty()) << "no results.json in " << dir;
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(json, &results);
  EXPECT_TRUE(parsed.ok()) << parsed.ToString() << "\n" << json;
  return results;
}

std::map<std::string, Struct> FaultTest::Tasks(const Struct& results) {
  std::map<std::string, Struct> tasks;
  auto report = results.fields().find("report");
  if (report == results.fields().end()) return tasks;
  auto list = report->second.struct_value().fields().find("tasks");
  if (list == report->second.struct_value().fields().end()) return tasks;
  for (const Value& task : list->second.list_value().values()) {
    const auto& fields = task.struct_value().fields();
    auto id = fields.find("id");
    if (id != fields.end()) tasks[id->second.string_value()] = task.struct_value();
  }
  return tasks;
}

std::string FaultTest::ResultOf(const Struct& task) {
  auto result = task.fields().find("result");
  if (result == task.fields().end()) return "";
  auto value = result->second.struct_value().fields().find("value");
  return value == result->second.struct_value().fields().end()
             ? ""
             : value->second.string_value();
}

std::string FaultTest::ReasonOf(const Struct& task) {
  auto result = task.fields().find("result");
  if (result == task.fields().end()) return "";
  auto reason = result->second.struct_value().fields().find("reason");
  return reason == result->second.struct_value().fields().end()
             ? ""
             : reason->second.string_value();
}

void FaultTest::ExpectEveryTask(const Struct& results,
                                const std::vector<std::string>& ids) {
  const std::map<std::string, Struct> tasks = Tasks(results);
  std::set<std::string> want(ids.begin(), ids.end());
  std::set<std::string> got;
  for (const auto& [id, task] : tasks) {
    got.insert(id);
    EXPECT_TRUE(std::set<std::string>({"skipped", "passed", "passx", "blocked",
                                       "failed", "errored", "aborted"})
                    .count(ResultOf(task)))
        << "task " << id << " has result \"" << ResultOf(task) << "\"";
  }
  EXPECT_EQ(got, want) << "the tasks in results.json";
}

std::string FaultTest::SocketTarget(const Runner& runner) const {
  char target[4096];
  const ssize_t n = ::readlink((RunDir(runner) + "/reporter.sock").c_str(),
                               target, sizeof(target));
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
}

void FaultTest::ExpectNoSocketLeft(const Runner& runner,
                                   const std::string& socket_target) const {
  struct stat st;
  const std::string sock = RunDir(runner) + "/reporter.sock";
  EXPECT_NE(::lstat(sock.c_str(), &st), 0) << sock << " was left behind";
  if (!socket_target.empty()) {
    const std::string path = runner.Path(socket_target);
    EXPECT_NE(::lstat(path.c_str(), &st), 0) << path << " was left behind";
    const std::string short_dir = path.substr(0, path.rfind('/'));
    EXPECT_NE(::lstat(short_dir.c_str(), &st), 0)
        << short_dir << " was left behind";
  }
}

}  // namespace taskfork::faults
