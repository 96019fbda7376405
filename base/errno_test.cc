#include "base/errno.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

TEST(ErrnoError, KeepsOperationSubjectDescriptionAndName) {
  EXPECT_THAT(ErrnoError(ENOENT, "shm_open", "/taskfork-q1"),
              StatusIs(absl::StatusCode::kNotFound,
                       "shm_open /taskfork-q1: No such file or directory "
                       "[ENOENT]"));
}

TEST(ErrnoError, MapsToSpecificCodes) {
  EXPECT_THAT(ErrnoError(EACCES, "open", "/dev/shm"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("[EACCES]")));
  EXPECT_THAT(ErrnoError(ENOSPC, "fallocate"),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       "fallocate: No space left on device [ENOSPC]"));
  EXPECT_THAT(ErrnoError(ETIMEDOUT, "wait"),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(ErrnoError, RealFailureFromTheOs) {
  const int fd = ::open("/nonexistent/taskfork", O_RDONLY | O_CLOEXEC);
  ASSERT_EQ(fd, -1);
  EXPECT_THAT(ErrnoError(errno, "open", "/nonexistent/taskfork"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("open /nonexistent/taskfork: ")));
}

TEST(ErrnoErrorDeathTest, ZeroIsAProgrammerError) {
  EXPECT_DEATH(ErrnoError(0, "read"), "ErrnoError\\(0\\) for read");
}

TEST(ErrnoName, KnownAndUnknown) {
  EXPECT_STREQ(ErrnoName(EINTR), "EINTR");
  EXPECT_STREQ(ErrnoName(100000), "unknown errno");
}

TEST(RetryOnEintr, RetriesOnlyEintr) {
  int calls = 0;
  const int result = RetryOnEintr([&] {
    ++calls;
    if (calls < 3) {
      errno = EINTR;
      return -1;
    }
    return 5;
  });
  EXPECT_EQ(result, 5);
  EXPECT_EQ(calls, 3);

  calls = 0;
  EXPECT_EQ(RetryOnEintr([&] {
              ++calls;
              errno = EAGAIN;
              return -1;
            }),
            -1);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace taskfork
