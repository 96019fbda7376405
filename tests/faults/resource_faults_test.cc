// Faults of the machine, each in a private mount namespace with a small
// tmpfs, so the real machine is never touched: /dev/shm read-only, with the
// wrong mode, full, or too small for a task's queue; the runinfo directory
// on a full file system, before and during a run. Skipped (with the reason)
// where mount namespaces are not available.
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/faults/fault_harness.h"

namespace taskfork::faults {
namespace {

using ::testing::HasSubstr;

class ResourceFaultTest : public FaultTest {
 protected:
  void SetUp() override {
    FaultTest::SetUp();
    if (const auto why = MountNamespacesUnavailable(); why.has_value()) {
      GTEST_SKIP() << *why;
    }
  }

  // A job whose one task uses an ipc::Queue of `capacity` bytes.
  std::string QueueSpec(int64_t capacity) {
    return WriteSpec(absl::StrCat(
        "name: \"shm\"\n"
        "task { id: \"queue\" function { name: \"fault_shm_queue\" args: \"",
        capacity, "\" } }\n"));
  }

  // Runs the queue job with a tmpfs of `size` bytes, `mode`, over /dev/shm.
  int RunWithShm(uint64_t size, mode_t mode, bool read_only) {
    Runner runner = StartRunner({RunInfoFlag(), QueueSpec(4096)}, [=] {
      return MountTmpfs("/dev/shm", size, mode, read_only);
    });
    const int code = runner.Finish();
    // The run stopped before any task: no task log, no report.
    const std::string run_dir = RunDir(runner);
    EXPECT_FALSE(run_dir.empty());
    struct stat st;
    EXPECT_NE(::stat((run_dir + "/TaskLog.queue").c_str(), &st), 0);
    EXPECT_NE(::stat((run_dir + "/results.json").c_str(), &st), 0);
    joblog_ = ReadFile(run_dir + "/JobLog.shm");
    return code;
  }

  std::string joblog_;
};

TEST_F(ResourceFaultTest, ReadOnlyDevShmFailsEarlyWithTheFix) {
  EXPECT_EQ(RunWithShm(16 << 20, 01777, /*read_only=*/true), 3);
  EXPECT_THAT(Stderr(), HasSubstr("runner: cannot set up the job: "
                                  "PERMISSION_DENIED"));
  EXPECT_THAT(Stderr(), HasSubstr("it is mounted read-only: mount -o "
                                  "remount,rw /dev/shm"));
  EXPECT_THAT(joblog_, HasSubstr("mount -o remount,rw /dev/shm"));
}

TEST_F(ResourceFaultTest, WrongModeDevShmFailsEarlyWithTheFix) {
  EXPECT_EQ(RunWithShm(16 << 20, 0755, false), 3);
  EXPECT_THAT(Stderr(), HasSubstr("/dev/shm has mode 0755 (drwxr-xr-x) but "
                                  "needs 1777 (drwxrwxrwt)"));
  EXPECT_THAT(Stderr(), HasSubstr("chmod 1777 /dev/shm"));
}

TEST_F(ResourceFaultTest, FullDevShmFailsEarlyWithTheFix) {
  EXPECT_EQ(RunWithShm(64 << 10, 01777, false), 3);
  EXPECT_THAT(Stderr(), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(Stderr(), HasSubstr("mount -o remount,size=<bytes> /dev/shm"));
}

// Enough /dev/shm for the preflight, not for the task's queue: the task
// fails cleanly with RESOURCE_EXHAUSTED, the rest of the job goes on, and
// nothing is left in /dev/shm.
TEST_F(ResourceFaultTest, DevShmTooSmallForAQueueFailsOnlyThatTask) {
  const std::string spec = WriteSpec(
      "name: \"small\"\nmax_parallel: 1\n"
      "task { id: \"big\" function { name: \"fault_shm_queue\" "
      "args: \"16777216\" } }\n"
      "task { id: \"small\" function { name: \"fault_shm_queue\" "
      "args: \"65536\" } }\n");
  Runner runner = StartRunner({RunInfoFlag(), spec}, [] {
    return MountTmpfs("/dev/shm", 4 << 20, 01777, false);
  });
  EXPECT_EQ(runner.Finish(), 1);
  const Struct results = Results(runner);
  ExpectEveryTask(results, {"big", "small"});
  const auto tasks = Tasks(results);
  EXPECT_EQ(ResultOf(tasks.at("big")), "failed");
  EXPECT_THAT(ReasonOf(tasks.at("big")), HasSubstr("RESOURCE_EXHAUSTED"));
  EXPECT_THAT(ReasonOf(tasks.at("big")),
              HasSubstr("/dev/shm is full: remove stale files from it or "
                        "enlarge it"));
  EXPECT_EQ(ResultOf(tasks.at("small")), "passed");
  // Nothing left in the namespace's /dev/shm: no name, and no space held by
  // a nameless segment.
  struct statvfs vfs;
  ASSERT_EQ(::statvfs(runner.Path("/dev/shm").c_str(), &vfs), 0);
  EXPECT_EQ(vfs.f_bfree, vfs.f_blocks) << "/dev/shm still holds data";
}

TEST_F(ResourceFaultTest, RunInfoOnAFullFileSystemFailsEarly) {
  const std::string runs = dir() + "/runs";
  ASSERT_EQ(::mkdir(runs.c_str(), 0755), 0);
  Runner runner = StartRunner({RunInfoFlag(), QueueSpec(4096)}, [runs] {
    return MountTmpfs(runs, 4096, 0755, false);
  });
  EXPECT_EQ(runner.Finish(), 3);
  EXPECT_THAT(Stderr(), HasSubstr("runner: cannot set up the job:"));
  EXPECT_THAT(Stderr(), HasSubstr("ENOSPC"));
  EXPECT_THAT(Stdout(), ::testing::Not(HasSubstr("PASSED")));
}

// The file system fills up while the job runs (a task fills it): the tasks'
// results still reach the runner; the report cannot be written, which the
// runner says (exit 3), and the summary on the console still lists every
// task with its result. Nothing hangs.
TEST_F(ResourceFaultTest, RunInfoFillingUpDuringTheRunKeepsTheResults) {
  const std::string runs = dir() + "/runs";
  ASSERT_EQ(::mkdir(runs.c_str(), 0755), 0);
  const std::string spec = WriteSpec(absl::StrCat(
      "name: \"full\"\nmax_parallel: 1\n"
      "task { id: \"filler\" function { name: \"fault_fill_disk\" args: \"",
      runs, "/ballast\" } }\n"
      "task { id: \"after\" function { name: \"fault_shm_queue\" "
      "args: \"4096\" } }\n"
      "task { id: \"failing\" function { name: \"fault_shm_queue\" "
      "args: \"x\" } }\n"));
  Runner runner = StartRunner({RunInfoFlag(), spec}, [runs] {
    return MountTmpfs(runs, 1 << 20, 0755, false);
  });
  EXPECT_EQ(runner.Finish(), 3);
  const std::string out = Stdout();
  EXPECT_THAT(out, HasSubstr("no report written"));
  EXPECT_THAT(out, HasSubstr("ENOSPC"));
  EXPECT_THAT(out, ::testing::ContainsRegex("filler +PASSED"));
  EXPECT_THAT(out, ::testing::ContainsRegex("after +PASSED"));
  EXPECT_THAT(out, ::testing::ContainsRegex("failing +FAILED"));
  struct stat st;
  EXPECT_NE(::stat((RunDir(runner) + "/results.json").c_str(), &st), 0);
}

}  // namespace
}  // namespace taskfork::faults
