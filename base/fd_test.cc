#include "base/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

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

}  // namespace
}  // namespace taskfork
