#include "ipc/shared_memory.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>

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
using ::taskfork::ipc_internal::RunfilePath;
using ::taskfork::testing::RunInChild;
using ::taskfork::ipc_internal::TestNamePrefix;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

std::string TestName() { return SharedMemory::UniqueName(TestNamePrefix()); }

bool ShmFileExists(const std::string& name) {
  struct stat st;
  return ::stat(absl::StrCat("/dev/shm", name).c_str(), &st) == 0;
}

int RunHelper(const std::vector<std::string>& args) {
  const std::string binary = RunfilePath("ipc/shm_test_helper");
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(binary.c_str()));
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SharedMemory, AnonymousIsZeroFilledAndSized) {
  auto shm = SharedMemory::CreateAnonymous(3 * 4096 + 5);
  ASSERT_THAT(shm, IsOk());
  EXPECT_EQ(shm->size(), 3 * 4096 + 5);
  EXPECT_EQ(shm->name(), "");
  const char* bytes = static_cast<const char*>(shm->data());
  for (size_t i = 0; i < shm->size(); ++i) ASSERT_EQ(bytes[i], 0) << i;
}

TEST(SharedMemory, ZeroSizeIsInvalid) {
  EXPECT_THAT(SharedMemory::CreateAnonymous(0),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("size 0")));
  EXPECT_THAT(SharedMemory::CreateNamed(TestName(), 0),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SharedMemory, AnonymousIsInheritedByFork) {
  auto shm = SharedMemory::CreateAnonymous(4096);
  ASSERT_THAT(shm, IsOk());
  char* bytes = static_cast<char*>(shm->data());
  std::strcpy(bytes, "from parent");
  const absl::Status child = RunInChild([&] {
    if (std::strcmp(bytes, "from parent") != 0) {
      return absl::InternalError(absl::StrCat("child saw '", bytes, "'"));
    }
    std::strcpy(bytes + 100, "from child");
    return absl::OkStatus();
  });
  ASSERT_THAT(child, IsOk());
  EXPECT_STREQ(bytes + 100, "from child");
}

TEST(SharedMemory, MoveTransfersTheMapping) {
  auto shm = SharedMemory::CreateAnonymous(4096);
  ASSERT_THAT(shm, IsOk());
  void* data = shm->data();
  SharedMemory moved = std::move(*shm);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(shm->data(), nullptr);  // NOLINT(bugprone-use-after-move)
  SharedMemory assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.data(), data);
  EXPECT_EQ(assigned.size(), 4096);
}

TEST(SharedMemory, NamedSegmentIsSharedWithAnUnrelatedProcess) {
  const std::string name = TestName();
  auto shm = SharedMemory::CreateNamed(name, 8192);
  ASSERT_THAT(shm, IsOk());
  EXPECT_EQ(shm->name(), name);
  std::strcpy(static_cast<char*>(shm->data()), "ping");
  // The helper is exec'ed: it shares nothing with us but the name.
  ASSERT_EQ(RunHelper({"shm", name}), 0);
  EXPECT_STREQ(static_cast<char*>(shm->data()) + 4096, "pong");
}

TEST(SharedMemory, NamedWithoutLeadingSlashIsNormalised) {
  const std::string name = TestName();
  auto shm = SharedMemory::CreateNamed(name.substr(1), 4096);
  ASSERT_THAT(shm, IsOk());
  EXPECT_EQ(shm->name(), name);
  auto opened = SharedMemory::OpenNamed(name);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->size(), 4096);
}

TEST(SharedMemory, CreatorUnlinksOnDestructionButOpenerDoesNot) {
  const std::string name = TestName();
  {
    auto shm = SharedMemory::CreateNamed(name, 4096);
    ASSERT_THAT(shm, IsOk());
    { auto opened = SharedMemory::OpenNamed(name); ASSERT_THAT(opened, IsOk()); }
    EXPECT_TRUE(ShmFileExists(name));
  }
  EXPECT_FALSE(ShmFileExists(name));
}

TEST(SharedMemory, ForkedCopyOfCreatorDoesNotUnlink) {
  const std::string name = TestName();
  auto shm = SharedMemory::CreateNamed(name, 4096);
  ASSERT_THAT(shm, IsOk());
  ASSERT_THAT(RunInChild([&] {
                SharedMemory inherited = std::move(*shm);
                return absl::OkStatus();  // `inherited` is destroyed here
              }),
              IsOk());
  EXPECT_TRUE(ShmFileExists(name));
}

TEST(SharedMemory, KeepNameWhenAsked) {
  const std::string name = TestName();
  {
    auto shm = SharedMemory::CreateNamed(name, 4096);
    ASSERT_THAT(shm, IsOk());
    shm->set_unlink_on_destroy(false);
  }
  EXPECT_TRUE(ShmFileExists(name));
  EXPECT_THAT(SharedMemory::Unlink(name), IsOk());
  EXPECT_FALSE(ShmFileExists(name));
  EXPECT_THAT(SharedMemory::Unlink(name),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(name)));
}

TEST(SharedMemory, CreateExistingNameIsAlreadyExists) {
  const std::string name = TestName();
  auto shm = SharedMemory::CreateNamed(name, 4096);
  ASSERT_THAT(shm, IsOk());
  EXPECT_THAT(SharedMemory::CreateNamed(name, 4096),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(name)));
  EXPECT_TRUE(ShmFileExists(name));  // the failed call must not unlink it
}

TEST(SharedMemory, OpenMissingIsNotFound) {
  const std::string name = TestName();
  EXPECT_THAT(SharedMemory::OpenNamed(name),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(name)));
}

TEST(SharedMemory, BadNamesAreInvalidArgument) {
  for (const char* bad : {"", "/", "/a/b", "a/b", "/..", "."}) {
    EXPECT_THAT(SharedMemory::CreateNamed(bad, 4096),
                StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
    EXPECT_THAT(SharedMemory::OpenNamed(bad),
                StatusIs(absl::StatusCode::kInvalidArgument)) << bad;
  }
  EXPECT_THAT(SharedMemory::CreateNamed(std::string(300, 'x'), 4096),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SharedMemory::Unlink("/a/b"),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SharedMemory, UniqueNamesDiffer) {
  EXPECT_NE(SharedMemory::UniqueName("x"), SharedMemory::UniqueName("x"));
}

// A private mount namespace with a 64 KiB tmpfs over /dev/shm.
TEST(SharedMemory, FullShmIsResourceExhaustedAtCreation) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=64k,mode=1777"));
    auto small = SharedMemory::CreateAnonymous(16 * 1024);
    if (!small.ok()) return small.status();
    const std::string name = SharedMemory::UniqueName(TestNamePrefix());
    auto named = SharedMemory::CreateNamed(name, 1 << 20);
    if (named.ok()) return absl::InternalError("1 MiB named segment fit");
    if (!absl::IsResourceExhausted(named.status())) return named.status();
    if (ShmFileExists(name)) return absl::InternalError("name left behind");
    return SharedMemory::CreateAnonymous(1 << 20).status();
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("/dev/shm is full")));
}

TEST(SharedMemory, ReadOnlyShmIsPermissionDenied) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=1m,mode=1777"));
    TASKFORK_RETURN_IF_ERROR(RemountReadOnly());
    auto named = SharedMemory::CreateNamed(TestName(), 4096);
    if (!absl::IsPermissionDenied(named.status())) {
      return absl::InternalError(absl::StrCat("named: ", named.status().ToString()));
    }
    return SharedMemory::CreateAnonymous(4096).status();
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied,
                               HasSubstr("read-only")));
}

TEST(SharedMemory, MissingShmIsNotFound) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    // An empty tmpfs over /dev hides /dev/shm (in this namespace only).
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=64k", "/dev"));
    return SharedMemory::CreateAnonymous(4096).status();
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kNotFound,
                               HasSubstr("mount -t tmpfs")));
}

}  // namespace
}  // namespace taskfork::ipc
