#include "ipc/shm_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "fork/testing/run_in_child.h"
#include "gtest/gtest.h"
#include "ipc/internal/test_util.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::ipc_internal::IsNamespaceRefused;
using ::taskfork::ipc_internal::MountPrivateTmpfs;
using ::taskfork::ipc_internal::RemountReadOnly;
using ::taskfork::testing::RunInChild;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

ShmCheckOptions AtPath(const std::string& path, uint64_t min_free = 1 << 20) {
  ShmCheckOptions options;
  options.path = path;
  options.min_free_bytes = min_free;
  return options;
}

std::string TempDir(const std::string& leaf) {
  const char* base = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(base != nullptr ? base : "/tmp", "/", leaf,
                                 "-", ::getpid());
  ::mkdir(dir.c_str(), 0700);
  return dir;
}

TEST(CheckSharedMemory, RealDevShmPasses) {
  ShmReport report;
  ASSERT_THAT(CheckSharedMemory({}, &report), IsOk());
  EXPECT_EQ(report.path, "/dev/shm");
  EXPECT_TRUE(report.exists);
  EXPECT_EQ(report.mode, 01777);
  EXPECT_TRUE(report.writable);
  EXPECT_GT(report.total_bytes, 0);
  EXPECT_GT(report.free_bytes, 0);
  EXPECT_THAT(FormatShmReport(report),
              AllOf(HasSubstr("mode: 1777 (drwxrwxrwt)"), HasSubstr("writable: yes")));
}

TEST(CheckSharedMemory, NullReportIsAllowed) {
  EXPECT_THAT(CheckSharedMemory(), IsOk());
}

TEST(CheckSharedMemory, MissingDirectoryIsNotFound) {
  ShmReport report;
  const std::string path = TempDir("missing") + "/nope";
  EXPECT_THAT(CheckSharedMemory(AtPath(path), &report),
              StatusIs(absl::StatusCode::kNotFound,
                       AllOf(HasSubstr(path), HasSubstr("mount -t tmpfs"))));
  EXPECT_FALSE(report.exists);
  EXPECT_THAT(FormatShmReport(report), HasSubstr("exists: no"));
}

TEST(CheckSharedMemory, FileIsFailedPrecondition) {
  const std::string path = TempDir("file") + "/plain";
  ::close(::open(path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  EXPECT_THAT(CheckSharedMemory(AtPath(path)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("not a directory")));
}

TEST(CheckSharedMemory, WrongModeIsPermissionDeniedWithTheFix) {
  const std::string path = TempDir("mode");
  ASSERT_EQ(::chmod(path.c_str(), 0755), 0);
  ShmReport report;
  EXPECT_THAT(CheckSharedMemory(AtPath(path), &report),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("mode 0755 (drwxr-xr-x)"),
                             HasSubstr(absl::StrCat("chmod 1777 ", path)))));
  EXPECT_EQ(report.mode, 0755);
}

TEST(CheckSharedMemory, StickyWorldWritableDirectoryPasses) {
  const std::string path = TempDir("sticky");
  ASSERT_EQ(::chmod(path.c_str(), 01777), 0);
  EXPECT_THAT(CheckSharedMemory(AtPath(path, 0)), IsOk());
}

TEST(CheckSharedMemory, TooLittleFreeSpaceIsResourceExhausted) {
  ShmReport report;
  EXPECT_THAT(CheckSharedMemory(AtPath("/dev/shm", ~uint64_t{0}), &report),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       AllOf(HasSubstr("bytes free"), HasSubstr("remount,size="))));
  EXPECT_TRUE(report.writable);
}

TEST(CheckSharedMemory, ReadOnlyShmIsPermissionDenied) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=1m,mode=1777"));
    TASKFORK_RETURN_IF_ERROR(RemountReadOnly());
    return CheckSharedMemory();
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied,
                               HasSubstr("mount -o remount,rw /dev/shm")));
}

TEST(CheckSharedMemory, FullShmIsResourceExhausted) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=64k,mode=1777"));
    // Fill it up with one file.
    const int fd = ::open("/dev/shm/filler", O_CREAT | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) return absl::InternalError("open filler");
    ::posix_fallocate(fd, 0, 60 * 1024);
    ::posix_fallocate(fd, 0, 64 * 1024);
    ::close(fd);
    return CheckSharedMemory(AtPath("/dev/shm", 0));
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("full")));
}

TEST(CheckSharedMemory, SmallShmBelowMinimumIsResourceExhausted) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=64k,mode=1777"));
    ShmReport report;
    absl::Status s = CheckSharedMemory(AtPath("/dev/shm", 1 << 20), &report);
    if (report.total_bytes != 64 * 1024 || !report.is_tmpfs) {
      return absl::InternalError(FormatShmReport(report));
    }
    return s;
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("65536 bytes free of 65536")));
}

}  // namespace
}  // namespace taskfork::ipc
