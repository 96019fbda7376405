// The fault-injection suite's harness: runs the real fault runner binary
// (//tests/faults:fault_runner) on a job spec, optionally inside a private
// mount namespace with small tmpfs mounts, and checks what a run leaves
// behind.
//
//   class MyFault : public faults::FaultTest {};
//   TEST_F(MyFault, X) {
//     Runner runner = StartRunner({RunInfoFlag(), WriteSpec("task {...}")});
//     EXPECT_EQ(runner.Finish(), 1);
//     Struct results = Results(runner);  // parsed results.json of the run
//   }
//
// FaultTest makes the test process a child subreaper, so every process a run
// leaves behind becomes its child; TearDown fails the test if one is alive,
// if the test process's descriptors changed, or if a /dev/shm entry with the
// test's prefix remains. Not thread-safe (one test thread).
#ifndef TASKFORK_TESTS_FAULTS_FAULT_HARNESS_H_
#define TASKFORK_TESTS_FAULTS_FAULT_HARNESS_H_

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fork/process.h"
#include "google/protobuf/struct.pb.h"
#include "gtest/gtest.h"
#include "tests/run_leftovers.h"

namespace taskfork::faults {

using ::google::protobuf::Struct;

// ReadFile(path): what can be read of `path` ("" if nothing; a /proc file
// of a process that exits mid-read is not an error); OpenDescriptors(): fd
// number -> what it points at, for this process. From tests/run_leftovers.h.
using ::taskfork::tests::OpenDescriptors;
using ::taskfork::tests::ReadFile;

// `path` inside the runfiles of this test.
std::string Runfile(const std::string& path);

// Reaps exited children of this process, then returns the live ones.
std::vector<pid_t> LiveChildren();

// Names in /dev/shm (of this mount namespace) that contain `needle`.
std::vector<std::string> ShmEntriesWith(const std::string& needle);

// Whether `pid` is gone: no such process, or a zombie child of ours (which
// is reaped here).
bool ProcessGone(pid_t pid);

// Sets up a private mount namespace in a child before it execs the runner:
// receives nothing, returns an error to abort the run (exit code 125).
using MountSetup = std::function<absl::Status()>;

// Mounts a tmpfs of `size_bytes` with `mode` (e.g. 01777) over `target`,
// read-only if `read_only`.
absl::Status MountTmpfs(const std::string& target, uint64_t size_bytes,
                        mode_t mode, bool read_only);

// Whether this process may make a private mount namespace with a tmpfs in it
// (unshare(CLONE_NEWNS), else a user namespace too); the reason if not.
std::optional<std::string> MountNamespacesUnavailable();

// A started runner: either the runner process itself, or a holder process
// that owns a private mount namespace, forked the runner in it, and stays
// alive (so the test can read the namespace's files through
// /proc/<holder>/root) until Finish() has returned and the handle dies.
class Runner {
 public:
  Runner() = default;
  Runner(Runner&& other) noexcept;
  Runner& operator=(Runner&&) = delete;
  ~Runner();

  // The runner's pid.
  pid_t pid() const { return runner_pid_; }
  // The namespace holder's pid (-1 for a plain run).
  pid_t holder_pid() const {
    return namespaced_ && process_.has_value() ? process_->pid() : -1;
  }
  // Sends `signo` to the runner process only.
  void Signal(int signo) const;
  // Sends `signo` to the runner's process group (a terminal's Ctrl-C).
  void SignalGroup(int signo) const;
  // Waits (at most 150 s) for the runner; its exit code, or -signal.
  int Finish();
  // Peak RSS of the runner process itself (valid after Finish(), plain runs
  // only: 0 in a namespace).
  int64_t max_rss_bytes() const { return max_rss_bytes_; }
  // `path` as this process can read it (through the holder's root when the
  // runner runs in a mount namespace; valid until the handle dies).
  std::string Path(const std::string& path) const;

 private:
  friend class FaultTest;
  std::optional<Process> process_;  // the runner, or the holder
  bool namespaced_ = false;
  pid_t runner_pid_ = -1;
  int status_fd_ = -1;   // holder -> test: runner pid, then wait status
  int release_fd_ = -1;  // test -> holder: closed to let it exit
  int exit_code_ = -1000;
  bool finished_ = false;
  int64_t max_rss_bytes_ = 0;
};

// A FIFO the test reads "<pid>\n" lines from. Held open read-write, so
// writers never block and reads never see end-of-file.
class AnnounceFifo {
 public:
  explicit AnnounceFifo(std::string path);
  ~AnnounceFifo();
  const std::string& path() const { return path_; }
  // Reads `count` pids, waiting at most `timeout` in all; fails the test
  // (and returns what it got) otherwise.
  std::vector<pid_t> Read(int count, absl::Duration timeout = absl::Seconds(60));

 private:
  std::string path_;
  int fd_ = -1;
  std::string pending_;
};

// A FIFO a task waits on (AwaitGo): Release() lets it go on.
class GoFifo {
 public:
  explicit GoFifo(std::string path);
  const std::string& path() const { return path_; }
  void Release() const;

 private:
  std::string path_;
};

class FaultTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  void SetUp() override;
  void TearDown() override;

  // This test's scratch directory (fresh, under TEST_TMPDIR).
  const std::string& dir() const { return dir_; }
  // A unique prefix for this test's /dev/shm names ("tf-faults-<pid>-<n>").
  const std::string& shm_prefix() const { return shm_prefix_; }
  // "--runinfo_dir=<runs dir>" (default <dir>/runs).
  std::string RunInfoFlag() const;
  // Makes RunInfoFlag(), RunDir() and Results() use `path`.
  void SetRunsDir(std::string path) { runs_dir_ = std::move(path); }
  // Writes `text` to <dir>/<name> and returns the path.
  std::string WriteSpec(const std::string& text,
                        const std::string& name = "job.textpb");

  // Starts the fault runner with `args`; stdout/stderr go to files.
  // With `setup`, in a private mount namespace it prepares first.
  Runner StartRunner(std::vector<std::string> args,
                     MountSetup setup = nullptr);
  // StartRunner + Finish.
  int Run(const std::string& spec_text, std::vector<std::string> extra = {});

  std::string Stdout() const { return ReadFile(dir_ + "/stdout"); }
  std::string Stderr() const { return ReadFile(dir_ + "/stderr"); }

  // The run directory of the latest run (resolved runs/latest), as seen from
  // `runner` (its namespace); "" if there is none.
  std::string RunDir(const Runner& runner) const;
  // Parsed results.json of the latest run; fails the test if it is missing
  // or not valid JSON.
  Struct Results(const Runner& runner) const;

  // The task objects of `results`, by id.
  static std::map<std::string, Struct> Tasks(const Struct& results);
  static std::string ResultOf(const Struct& task);
  static std::string ReasonOf(const Struct& task);
  // Checks that `results` lists exactly the tasks `ids`, each with one of
  // the seven result values.
  static void ExpectEveryTask(const Struct& results,
                              const std::vector<std::string>& ids);
  // Checks that the run directory has no reporter.sock left, and that the
  // short socket directory it pointed at (if any) is gone.
  void ExpectNoSocketLeft(const Runner& runner,
                          const std::string& socket_target) const;
  // While a run is going: where <run dir>/reporter.sock points ("" if it is
  // not a symlink).
  std::string SocketTarget(const Runner& runner) const;

 private:
  std::string dir_;
  std::string shm_prefix_;
  std::string runs_dir_;
  std::map<int, std::string> fds_before_;
};

}  // namespace taskfork::faults

#endif  // TASKFORK_TESTS_FAULTS_FAULT_HARNESS_H_
