#include "tasklog/internal/glog_lock.h"

#include <errno.h>
#include <pthread.h>
#include <sys/single_threaded.h>

#include <thread>  // NOLINT

#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "gtest/gtest.h"

namespace taskfork::tasklog_internal {
namespace {

// Blocks inside send(), that is with glog's logging lock held, until told.
class BlockingSink : public google::LogSink {
 public:
  void send(google::LogSeverity, const char*, const char*, int,
            const google::LogMessageTime&, const char*, size_t) override {
    inside.Notify();
    release.WaitForNotification();
  }
  absl::Notification inside;
  absl::Notification release;
};

// First in this file: while the process has made no thread, Find() probes
// in a forked child and leaves the process single-threaded (glibc then
// takes no locks at its forks); the thread probe finds the same lock.
TEST(GlogLock, SingleThreadedProcessProbesInAChildAndStaysSingleThreaded) {
  if (!__libc_single_threaded) {
    GTEST_SKIP() << "this process made a thread already (a sanitizer's "
                    "runtime, or another test ran first)";
  }
  const GlogLock in_child = GlogLock::Find();
  EXPECT_TRUE(__libc_single_threaded);
  ASSERT_TRUE(in_child.found());
  std::thread([] {}).join();
  ASSERT_FALSE(__libc_single_threaded);
  EXPECT_EQ(GlogLock::Find().address(), in_child.address());
}

TEST(GlogLock, FindsTheLockGlogHoldsWhileLogging) {
  const GlogLock lock = GlogLock::Find();
  ASSERT_TRUE(lock.found());

  BlockingSink sink;
  std::thread logger(
      [&sink] { LOG_TO_SINK_BUT_NOT_TO_LOGFILE(&sink, INFO) << "held"; });
  sink.inside.WaitForNotification();
  // Another thread is logging: the lock is taken.
  EXPECT_EQ(::pthread_rwlock_trywrlock(lock.address()), EBUSY);
  sink.release.Notify();
  logger.join();
  // Nobody logs: it is free.
  ASSERT_EQ(::pthread_rwlock_trywrlock(lock.address()), 0);
  ASSERT_EQ(::pthread_rwlock_unlock(lock.address()), 0);
}

TEST(GlogLock, FindIsStable) {
  EXPECT_EQ(GlogLock::Find().address(), GlogLock::Find().address());
}

TEST(GlogLock, LockForForkExcludesLoggers) {
  const GlogLock lock = GlogLock::Find();
  ASSERT_TRUE(lock.found());
  ASSERT_TRUE(lock.LockForFork());
  EXPECT_EQ(::pthread_rwlock_trywrlock(lock.address()), EBUSY);
  lock.UnlockInParent();
  // Logging works again.
  LOG(INFO) << "after UnlockInParent";
  ASSERT_EQ(::pthread_rwlock_trywrlock(lock.address()), 0);
  ASSERT_EQ(::pthread_rwlock_unlock(lock.address()), 0);
}

TEST(GlogLock, EmptyHandleDoesNothing) {
  const GlogLock lock;
  EXPECT_FALSE(lock.found());
  EXPECT_EQ(lock.address(), nullptr);
  EXPECT_FALSE(lock.LockForFork());
}

}  // namespace
}  // namespace taskfork::tasklog_internal
