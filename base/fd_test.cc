#include "base/fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

bool IsOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

TEST(OwnedFd, DefaultIsInvalid) {
  OwnedFd fd;
  EXPECT_FALSE(fd.valid());
  EXPECT_FALSE(fd);
  EXPECT_EQ(fd.get(), -1);
  EXPECT_THAT(fd.Close(), IsOk());
}

TEST(OwnedFd, ClosesOnDestruction) {
  int raw;
  {
    auto fd = OwnedFd::Open("/dev/null", O_RDONLY);
    ASSERT_THAT(fd, IsOk());
    raw = fd->get();
    EXPECT_TRUE(IsOpen(raw));
  }
  EXPECT_FALSE(IsOpen(raw));
}

TEST(OwnedFd, OpenAddsCloexec) {
  auto fd = OwnedFd::Open("/dev/null", O_RDONLY);
  ASSERT_THAT(fd, IsOk());
  EXPECT_TRUE(::fcntl(fd->get(), F_GETFD) & FD_CLOEXEC);
}

TEST(OwnedFd, OpenErrorNamesThePath) {
  EXPECT_THAT(OwnedFd::Open("/nonexistent/dir/file", O_RDONLY),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("open /nonexistent/dir/file: ")));
}

TEST(OwnedFd, MoveTransfersOwnership) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  const int raw = pipe->read.get();
  OwnedFd moved = std::move(pipe->read);
  EXPECT_FALSE(pipe->read.valid());
  EXPECT_EQ(moved.get(), raw);
  OwnedFd assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.get(), raw);
  EXPECT_TRUE(IsOpen(raw));
}

TEST(OwnedFd, MoveAssignClosesThePreviousDescriptor) {
  auto first = OwnedFd::Pipe();
  auto second = OwnedFd::Pipe();
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  const int old = first->read.get();
  first->read = std::move(second->read);
  EXPECT_FALSE(IsOpen(old));
}

TEST(OwnedFd, ReleaseAndReset) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  const int raw = pipe->write.Release();
  EXPECT_FALSE(pipe->write.valid());
  EXPECT_TRUE(IsOpen(raw));
  pipe->write.Reset(raw);
  EXPECT_EQ(pipe->write.get(), raw);
  pipe->write.Reset();
  EXPECT_FALSE(IsOpen(raw));
}

TEST(OwnedFd, PipeCarriesBytesAndIsCloexec) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  EXPECT_TRUE(::fcntl(pipe->read.get(), F_GETFD) & FD_CLOEXEC);
  EXPECT_TRUE(::fcntl(pipe->write.get(), F_GETFD) & FD_CLOEXEC);
  ASSERT_EQ(::write(pipe->write.get(), "ok", 2), 2);
  char buffer[2];
  ASSERT_EQ(::read(pipe->read.get(), buffer, 2), 2);
  EXPECT_EQ(std::string(buffer, 2), "ok");
}

TEST(OwnedFd, CloseReportsBadDescriptor) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  const int raw = pipe->read.get();
  ASSERT_EQ(::close(raw), 0);  // Someone else closed it behind our back.
  EXPECT_THAT(pipe->read.Close(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("[EBADF]")));
  EXPECT_FALSE(pipe->read.valid());
}

std::string TempDir() {
  std::string dir = std::string(::getenv("TEST_TMPDIR") != nullptr
                                    ? ::getenv("TEST_TMPDIR")
                                    : "/tmp") +
                    "/fd_test.XXXXXX";
  EXPECT_NE(::mkdtemp(dir.data()), nullptr) << dir;
  return dir;
}

std::string ReadFile(const std::string& path) {
  std::string contents;
  auto fd = OwnedFd::Open(path, O_RDONLY);
  if (!fd.ok()) return "<" + fd.status().ToString() + ">";
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd->get(), buffer, sizeof(buffer))) > 0) {
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return names;
  while (const dirent* entry = ::readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

TEST(WriteAll, WritesEverythingThroughShortWrites) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  // 1 MiB through a 64 KiB pipe: write(2) returns short counts while the
  // reader drains.
  const std::string data(1 << 20, 'x');
  std::string received;
  std::thread reader([&] {
    char buffer[65536];
    ssize_t n;
    while ((n = ::read(pipe->read.get(), buffer, sizeof(buffer))) > 0) {
      received.append(buffer, static_cast<size_t>(n));
    }
  });
  EXPECT_THAT(WriteAll(pipe->write.get(), data, "pipe"), IsOk());
  pipe->write.Reset();
  reader.join();
  EXPECT_EQ(received.size(), data.size());
  EXPECT_EQ(received, data);
}

TEST(WriteAll, FullDeviceIsResourceExhaustedAndNamesThePath) {
  auto full = OwnedFd::Open("/dev/full", O_WRONLY);
  ASSERT_THAT(full, IsOk());
  EXPECT_THAT(WriteAll(full->get(), "data", "/dev/full"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("write /dev/full")));
}

TEST(WriteFileAtomically, ReplacesTheFileAndLeavesNoTemporary) {
  const std::string dir = TempDir();
  const std::string path = dir + "/out.txt";
  ASSERT_THAT(WriteFileAtomically(path, "first"), IsOk());
  ASSERT_THAT(WriteFileAtomically(path, "second"), IsOk());
  EXPECT_EQ(ReadFile(path), "second");
  EXPECT_THAT(ListDir(dir), ::testing::ElementsAre("out.txt"));
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST(WriteFileAtomically, UsesTheGivenMode) {
  const std::string path = TempDir() + "/secret";
  ASSERT_THAT(WriteFileAtomically(path, "x", 0600), IsOk());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(WriteFileAtomically, FailedRenameKeepsTheOldContentsAndNoTemporary) {
  const std::string dir = TempDir();
  // The target is a non-empty directory: rename(2) fails after the data was
  // written, so the temporary file must be removed.
  const std::string target = dir + "/results.json";
  ASSERT_EQ(::mkdir(target.c_str(), 0755), 0);
  ASSERT_THAT(WriteFileAtomically(target + "/keep", "old"), IsOk());
  EXPECT_THAT(WriteFileAtomically(target, "new"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(target)));
  EXPECT_THAT(ListDir(dir), ::testing::ElementsAre("results.json"));
  EXPECT_EQ(ReadFile(target + "/keep"), "old");
}

TEST(WriteFileAtomically, MissingDirectoryIsNotFound) {
  EXPECT_THAT(WriteFileAtomically(TempDir() + "/no/such/file", "x"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/no/such/file")));
}

}  // namespace
}  // namespace taskfork
