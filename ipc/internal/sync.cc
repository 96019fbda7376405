#include "ipc/internal/sync.h"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "base/sanitizers.h"
#include "glog/logging.h"

namespace taskfork::ipc_internal {
namespace {

// ThreadSanitizer (GCC 12's) does not intercept pthread_mutex_clocklock, so
// it would miss the acquisition (and report the unlock); under TSan a timed
// lock polls with trylock (which TSan understands, EOWNERDEAD included).
constexpr bool kPollTimedLock = kThreadSanitizer;

timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  return ts;
}

}  // namespace

int64_t MonotonicNanos() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

Deadline Deadline::After(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return Never();
  if (timeout < absl::ZeroDuration()) timeout = absl::ZeroDuration();
  const int64_t ns = absl::ToInt64Nanoseconds(timeout);
  const int64_t now = MonotonicNanos();
  if (ns >= INT64_MAX - now) return Never();
  return Deadline(now + ns);
}

bool Deadline::Expired() const {
  return !never() && MonotonicNanos() >= ns_;
}

timespec Deadline::CappedAt(absl::Duration cap) const {
  int64_t target = ns_;
  if (cap != absl::InfiniteDuration()) {
    const int64_t capped = MonotonicNanos() + absl::ToInt64Nanoseconds(cap);
    if (capped < target) target = capped;
  }
  if (target == INT64_MAX) target = INT64_MAX / 2;  // far enough
  return ToTimespec(target);
}

namespace {

long Membarrier(int command) {
  return ::syscall(SYS_membarrier, command, 0, 0);
}

enum class Support { kYes, kNoKernel, kRefused };

// Whether the kernel offers the sleeper's barrier (asked once). kNoKernel:
// no process can register, so every notifier uses the locked instruction.
Support GlobalExpeditedSupport() {
  static const Support support = [] {
    const long commands = Membarrier(MEMBARRIER_CMD_QUERY);
    if (commands < 0) return errno == ENOSYS ? Support::kNoKernel : Support::kRefused;
    return (commands & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 ? Support::kYes
                                                             : Support::kNoKernel;
  }();
  return support;
}

}  // namespace

namespace wakeup_internal {
std::atomic<int> mode{-1};
}  // namespace wakeup_internal

WakeupMode InitWakeups() {
  static const WakeupMode decided = [] {
    if (GlobalExpeditedSupport() != Support::kYes) return WakeupMode::kSymmetric;
    // Registration makes this process (and its forked children: it is kept
    // by fork and dropped by exec) a target of the sleepers' barriers.
    if (Membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) != 0) {
      LOG(WARNING) << "membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED): "
                   << std::strerror(errno)
                   << "; //ipc wake-ups fall back to a locked instruction per "
                      "message";
      return WakeupMode::kSymmetric;
    }
    return WakeupMode::kAsymmetric;
  }();
  int expected = -1;
  wakeup_internal::mode.compare_exchange_strong(expected,
                                                static_cast<int>(decided));
  return static_cast<WakeupMode>(wakeup_internal::mode.load());
}

void UseSymmetricWakeupsForTest() {
  InitWakeups();
  wakeup_internal::mode.store(static_cast<int>(WakeupMode::kSymmetric));
}

bool HeavyBarrier() {
  // A sleeper in a process that could not register still makes the barrier
  // (the command needs no registration of the caller).
  switch (GlobalExpeditedSupport()) {
    case Support::kYes:
      return Membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0;
    case Support::kNoKernel:
      return true;  // nobody uses the plain load
    case Support::kRefused:
      return false;  // this process is filtered; others may not be
  }
  return false;
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX,
            nullptr, nullptr, 0);
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               const timespec& abs_monotonic) {
  // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout.
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET,
            expected, &abs_monotonic, nullptr, FUTEX_BITSET_MATCH_ANY);
}

void FutexWaitAny(absl::Span<const FutexWaiter> waiters,
                  const timespec& abs_monotonic) {
  if (waiters.empty()) {
    ::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &abs_monotonic, nullptr);
    return;
  }
#ifdef SYS_futex_waitv
  static std::atomic<bool> unsupported{false};
  if (!unsupported.load(std::memory_order_relaxed) &&
      waiters.size() <= FUTEX_WAITV_MAX) {
    struct futex_waitv vec[FUTEX_WAITV_MAX];
    std::memset(vec, 0, sizeof(vec));
    for (size_t i = 0; i < waiters.size(); ++i) {
      vec[i].val = waiters[i].expected;
      vec[i].uaddr = reinterpret_cast<uintptr_t>(waiters[i].word);
      vec[i].flags = FUTEX_32;  // shared, not FUTEX_PRIVATE_FLAG
    }
    const long rc = ::syscall(SYS_futex_waitv, vec, waiters.size(), 0,
                              &abs_monotonic, CLOCK_MONOTONIC);
    if (rc >= 0 || errno != ENOSYS) return;
    unsupported.store(true, std::memory_order_relaxed);
  }
#endif
  // Fallback: sleep on the first word for at most 1 ms.
  timespec cap = ToTimespec(MonotonicNanos() + 1000000);
  if (cap.tv_sec > abs_monotonic.tv_sec ||
      (cap.tv_sec == abs_monotonic.tv_sec && cap.tv_nsec > abs_monotonic.tv_nsec)) {
    cap = abs_monotonic;
  }
  FutexWait(waiters[0].word, waiters[0].expected, cap);
}

void RobustMutex::Init() {
  pthread_mutexattr_t attr;
  CHECK_EQ(::pthread_mutexattr_init(&attr), 0);
  CHECK_EQ(::pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED), 0);
  CHECK_EQ(::pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST), 0);
  CHECK_EQ(::pthread_mutex_init(&mu_, &attr), 0);
  ::pthread_mutexattr_destroy(&attr);
}

bool RobustMutex::Lock(const Deadline& deadline, bool* owner_died) {
  if (owner_died != nullptr) *owner_died = false;
  int rc = EBUSY;
  // A short spin first: the holders only copy a message.
  for (int i = 0; i < 100 && rc == EBUSY; ++i) {
    rc = ::pthread_mutex_trylock(&mu_);
    if (rc == EBUSY) CpuRelax();
  }
  if (rc == EBUSY) {
    if (deadline.never()) {
      rc = ::pthread_mutex_lock(&mu_);
    } else if (!kPollTimedLock) {
      const timespec ts = deadline.CappedAt(absl::InfiniteDuration());
      rc = ::pthread_mutex_clocklock(&mu_, CLOCK_MONOTONIC, &ts);
      if (rc == ETIMEDOUT) return false;
    } else {
      int64_t sleep_ns = 1000;
      while (rc == EBUSY) {
        if (deadline.Expired()) return false;
        const timespec pause{0, static_cast<long>(sleep_ns)};
        ::nanosleep(&pause, nullptr);
        sleep_ns = std::min<int64_t>(sleep_ns * 2, 1000000);
        rc = ::pthread_mutex_trylock(&mu_);
      }
    }
  }
  if (rc == EOWNERDEAD) {
    // The holder died. Our callers keep the shared state consistent at every
    // instant (a message becomes visible with one atomic store), so the
    // mutex only needs to be marked consistent again.
    CHECK_EQ(::pthread_mutex_consistent(&mu_), 0);
    if (owner_died != nullptr) *owner_died = true;
    return true;
  }
  CHECK_EQ(rc, 0) << "pthread_mutex_lock: " << std::strerror(rc);
  return true;
}

void RobustMutex::Unlock() { CHECK_EQ(::pthread_mutex_unlock(&mu_), 0); }

}  // namespace taskfork::ipc_internal
