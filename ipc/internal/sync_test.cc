#include "ipc/internal/sync.h"

#include <signal.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <new>
#include <vector>

#include "absl/time/clock.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "gtest/gtest.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc_internal {
namespace {

using ::taskfork::testing::IsOk;

struct Shared {
  RobustMutex mu;
  Event event;
  std::atomic<uint32_t> flag{0};
  std::atomic<uint32_t> round{0};
};

// Segments stay mapped until the binary exits: ThreadSanitizer keeps state
// per mutex address and gets confused when a later test maps a new robust
// mutex, whose previous owner died in another process, at the same address.
Shared* MakeShared() {
  static auto* segments = new std::vector<ipc::SharedMemory>;
  auto created = ipc::SharedMemory::CreateAnonymous(sizeof(Shared));
  if (!created.ok()) return nullptr;
  segments->push_back(std::move(*created));
  auto* shared = new (segments->back().data()) Shared;
  shared->mu.Init();
  return shared;
}

// A child locks `mu` and tells us over a pipe; then it stays (or dies).
pid_t ChildHoldingLock(Shared* shared, bool die) {
  auto pipe = OwnedFd::Pipe();
  if (!pipe.ok()) return -1;
  const pid_t pid = ::fork();
  if (pid == 0) {
    shared->mu.Lock();
    (void)::write(pipe->write.get(), "x", 1);
    if (die) ::raise(SIGKILL);
    for (;;) ::pause();
  }
  pipe->write.Close().IgnoreError();
  char c;
  if (::read(pipe->read.get(), &c, 1) != 1) return -1;
  return pid;
}

TEST(Deadline, NeverAndExpiry) {
  EXPECT_TRUE(Deadline::Never().never());
  EXPECT_FALSE(Deadline::Never().Expired());
  EXPECT_TRUE(Deadline::After(absl::InfiniteDuration()).never());
  EXPECT_TRUE(Deadline::After(absl::ZeroDuration()).Expired());
  EXPECT_TRUE(Deadline::After(-absl::Seconds(1)).Expired());
  EXPECT_FALSE(Deadline::After(absl::Hours(1)).Expired());
}

TEST(RobustMutex, LockTimesOutWhileAnotherProcessHoldsIt) {
  Shared* shared = MakeShared();
  ASSERT_NE(shared, nullptr);
  const pid_t pid = ChildHoldingLock(shared, /*die=*/false);
  ASSERT_GT(pid, 0);
  const absl::Time start = absl::Now();
  EXPECT_FALSE(shared->mu.Lock(Deadline::After(absl::Milliseconds(50))));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  // The holder died: the next Lock gets the mutex and is told so.
  bool owner_died = false;
  ASSERT_TRUE(shared->mu.Lock(Deadline::After(absl::Seconds(10)), &owner_died));
  EXPECT_TRUE(owner_died);
  shared->mu.Unlock();
  ASSERT_TRUE(shared->mu.Lock(Deadline::Never(), &owner_died));
  EXPECT_FALSE(owner_died);  // consistent again
  shared->mu.Unlock();
}

TEST(RobustMutex, HolderDyingWakesABlockedLocker) {
  Shared* shared = MakeShared();
  ASSERT_NE(shared, nullptr);
  const pid_t pid = ChildHoldingLock(shared, /*die=*/true);
  ASSERT_GT(pid, 0);
  // An untimed Lock sleeps in the kernel until the holder's death releases
  // the mutex (the kernel walks the dead thread's robust list).
  bool owner_died = false;
  ASSERT_TRUE(shared->mu.Lock(Deadline::Never(), &owner_died));
  EXPECT_TRUE(owner_died);
  shared->mu.Unlock();
  ::waitpid(pid, nullptr, 0);
}

TEST(WaitFor, TimesOutAbortsAndWakes) {
  Shared* shared = MakeShared();
  ASSERT_NE(shared, nullptr);
  Spinner spinner;
  auto ready = [&] { return shared->flag.load() != 0; };
  EXPECT_EQ(WaitFor(shared->event, ready, Deadline::After(absl::Milliseconds(20)),
                    &spinner, [] { return false; }),
            WaitResult::kTimedOut);
  EXPECT_EQ(WaitFor(shared->event, ready, Deadline::Never(), &spinner,
                    [] { return true; }),
            WaitResult::kAborted);
  const pid_t pid = ::fork();
  if (pid == 0) {
    // Give the parent time to fall asleep (not needed for correctness).
    std::atomic<uint32_t> never{0};
    FutexWait(&never, 0, Deadline::After(absl::Milliseconds(50)).CappedAt(
                             absl::InfiniteDuration()));
    shared->flag.store(1);
    shared->event.Notify();
    ::_exit(0);
  }
  EXPECT_EQ(WaitFor(shared->event, ready, Deadline::After(absl::Seconds(30)),
                    &spinner, [] { return false; }),
            WaitResult::kReady);
  ::waitpid(pid, nullptr, 0);
  EXPECT_GE(spinner.budget, Spinner::kMinSpin);
  EXPECT_LE(spinner.budget, Spinner::kMaxSpin);
}

// Rounds in which a notifier publishes and calls Notify() at the moment a
// sleeper arms and re-checks (both start when the sleeper opens the round),
// so that the notifier's load of `sleeping` races with the sleeper's
// announcement (the sleeper sweeps its start over the window). A lost wake-up leaves the sleeper asleep until its 200 ms
// timeout with the sequence word unchanged, which it counts.
void NotifyNeverMissesASleeper(bool symmetric_notifier) {
  Shared* shared = MakeShared();
  ASSERT_NE(shared, nullptr);
  constexpr uint32_t kRounds = 3000;
  const pid_t pid = ::fork();
  if (pid == 0) {  // the notifier
    if (symmetric_notifier) UseSymmetricWakeupsForTest();
    for (uint32_t i = 1; i <= kRounds; ++i) {
      while (shared->round.load(std::memory_order_acquire) != i) CpuRelax();
      for (uint32_t k = 0; k < i % 8; ++k) CpuRelax();  // vary the race
      shared->flag.store(i, std::memory_order_release);
      shared->event.Notify();
    }
    ::_exit(0);
  }
  uint32_t missed = 0;
  for (uint32_t i = 1; i <= kRounds; ++i) {
    shared->event.sleeping.store(0);
    shared->round.store(i, std::memory_order_release);
    // Sweep the announcement over the time the notifier takes to see the
    // round open and publish (a cache-line transfer or two).
    for (uint32_t k = 0; k < (i * 7) % 96; ++k) CpuRelax();
    while (shared->flag.load(std::memory_order_acquire) != i) {
      bool fenced = false;
      const uint32_t seq = shared->event.Arm(&fenced);
      EXPECT_TRUE(fenced);
      if (shared->flag.load(std::memory_order_acquire) == i) break;
      FutexWait(&shared->event.seq, seq,
                Deadline::After(absl::Milliseconds(200))
                    .CappedAt(absl::InfiniteDuration()));
      if (shared->event.seq.load() == seq &&
          shared->flag.load(std::memory_order_acquire) != i) {
        ++missed;  // woke by the timeout: the notification was lost
      }
    }
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(missed, 0u);
}

TEST(Event, AsymmetricNotifyNeverMissesASleeper) {
  if (CurrentWakeupMode() != WakeupMode::kAsymmetric) {
    GTEST_SKIP() << "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) is not available";
  }
  NotifyNeverMissesASleeper(/*symmetric_notifier=*/false);
}

TEST(Event, SymmetricNotifyNeverMissesASleeper) {
  NotifyNeverMissesASleeper(/*symmetric_notifier=*/true);
}

TEST(Event, MembarrierRegistrationIsInheritedByFork) {
  if (CurrentWakeupMode() != WakeupMode::kAsymmetric) {
    GTEST_SKIP() << "membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) is not available";
  }
  // MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3+) lists what this process
  // is registered for.
  constexpr int kGetRegistrations = 1 << 9;
  const long parent = ::syscall(SYS_membarrier, kGetRegistrations, 0, 0);
  if (parent < 0) GTEST_SKIP() << "no MEMBARRIER_CMD_GET_REGISTRATIONS";
  EXPECT_NE(parent & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    const long child = ::syscall(SYS_membarrier, kGetRegistrations, 0, 0);
    ::_exit(child >= 0 && (child & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "a forked child is not registered: its notifications would be "
         "unordered against sleepers";
}

TEST(Spinner, LearnsToLookLaterOnlyWhenItFindsABatch) {
  Spinner spinner;
  spinner.hit_first_look = true;
  spinner.Learn(/*more=*/true);
  EXPECT_EQ(spinner.first_look, 2);
  for (int i = 0; i < 20; ++i) spinner.Learn(true);
  EXPECT_EQ(spinner.first_look, Spinner::kMaxFirstLook);
  spinner.Learn(/*more=*/false);  // one message only: latency first
  EXPECT_EQ(spinner.first_look, Spinner::kMaxFirstLook / 2);
  spinner.hit_first_look = false;  // had to keep looking
  for (int i = 0; i < 20; ++i) spinner.Learn(true);
  EXPECT_EQ(spinner.first_look, 1);
}

TEST(Spinner, LearnsToSpinThroughShortWaitsOnly) {
  Spinner spinner;
  // 64 pauses took 1 us; the wait ended 50 us after the spin began: spin
  // for 100 us (6400 pauses) next time.
  spinner.LearnSlept(64, 1000, 50 * 1000);
  EXPECT_EQ(spinner.budget, 6400);
  // Never past kMaxSpin, however slow the pauses were.
  spinner.LearnSlept(64, 100, 90 * 1000);
  EXPECT_EQ(spinner.budget, Spinner::kMaxSpin);
  // A wait longer than kSpinThroughNs teaches nothing (the caller halved
  // the budget already).
  spinner.budget = 128;
  spinner.LearnSlept(64, 1000, Spinner::kSpinThroughNs + 1);
  EXPECT_EQ(spinner.budget, 128);
  // Nor does a spin of no measurable length.
  spinner.LearnSlept(64, 0, 1000);
  EXPECT_EQ(spinner.budget, 128);
  // A very short wait keeps at least kMinSpin.
  spinner.LearnSlept(1000, 1000000, 1000);
  EXPECT_EQ(spinner.budget, Spinner::kMinSpin);
}

// A waiter whose peer answers ~50 us after each request: slower than the
// first spin (kMinSpin pauses, about a microsecond), so the first wait
// sleeps, but within kSpinThroughNs, so the waiter learns a budget that
// spins through such waits. (A loaded machine can deschedule the peer past
// kSpinThroughNs in some rounds, never in all of them.)
TEST(WaitFor, LearnsToSpinThroughWaitsShorterThanASleep) {
  Shared* shared = MakeShared();
  ASSERT_NE(shared, nullptr);
  constexpr uint32_t kRounds = 100;
  const pid_t pid = ::fork();
  if (pid == 0) {
    for (uint32_t round = 1; round <= kRounds; ++round) {
      while (shared->flag.load() != 2 * round - 1) CpuRelax();
      const int64_t until = MonotonicNanos() + 50 * 1000;
      while (MonotonicNanos() < until) CpuRelax();
      shared->flag.store(2 * round);
      shared->event.Notify();
    }
    ::_exit(0);
  }
  Spinner spinner;
  int largest_budget = spinner.budget;
  for (uint32_t round = 1; round <= kRounds; ++round) {
    shared->flag.store(2 * round - 1);
    ASSERT_TRUE(WaitFor(shared->event,
                        [&] { return shared->flag.load() == 2 * round; },
                        Deadline::After(absl::Seconds(30)), &spinner));
    largest_budget = std::max(largest_budget, spinner.budget);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_GT(largest_budget, Spinner::kMinSpin);
}

TEST(FutexWaitAny, ReturnsWhenOneWordChanges) {
  auto created = ipc::SharedMemory::CreateAnonymous(4096);
  ASSERT_THAT(created, IsOk());
  auto* words = new (created->data()) std::atomic<uint32_t>[2];
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::atomic<uint32_t> never{0};
    FutexWait(&never, 0, Deadline::After(absl::Milliseconds(20)).CappedAt(
                             absl::InfiniteDuration()));
    words[1].store(1);
    FutexWakeAll(&words[1]);
    ::_exit(0);
  }
  const FutexWaiter waiters[] = {{&words[0], 0}, {&words[1], 0}};
  const absl::Time start = absl::Now();
  while (words[1].load() == 0 && absl::Now() - start < absl::Seconds(30)) {
    FutexWaitAny(waiters, Deadline::After(absl::Seconds(30)).CappedAt(
                              absl::InfiniteDuration()));
  }
  EXPECT_EQ(words[1].load(), 1);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace
}  // namespace taskfork::ipc_internal
