// Process-shared synchronisation primitives that live inside shared memory:
// futex waits and wakes, a wake-up Event, a robust mutex, and a Deadline.
// Internal to //ipc (namespace taskfork::ipc_internal).
//
//   Event* e = ...;  // in shared memory, zero-initialised
//   WaitFor(*e, [&] { return ring.Readable(); }, Deadline::After(timeout));
//   ... /* other side, after making it ready: */ e->Notify();
#ifndef TASKFORK_IPC_INTERNAL_SYNC_H_
#define TASKFORK_IPC_INTERNAL_SYNC_H_

#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "absl/types/span.h"

namespace taskfork::ipc_internal {

// An absolute point on CLOCK_MONOTONIC (or never).
class Deadline {
 public:
  // Now + `timeout`; absl::InfiniteDuration() means never; a negative
  // timeout is treated as zero.
  static Deadline After(absl::Duration timeout);
  static Deadline Never() { return Deadline(INT64_MAX); }

  bool never() const { return ns_ == INT64_MAX; }
  bool Expired() const;
  // The earlier of the deadline and now + `cap`, as a CLOCK_MONOTONIC
  // timespec for futex/pthread waits.
  timespec CappedAt(absl::Duration cap) const;

 private:
  explicit Deadline(int64_t ns) : ns_(ns) {}
  int64_t ns_;  // CLOCK_MONOTONIC nanoseconds; INT64_MAX = never
};

int64_t MonotonicNanos();

// Shared (not process-private) futex operations on a 32-bit word.
void FutexWakeAll(std::atomic<uint32_t>* word);
// Sleeps while *word == expected, until woken or `abs_monotonic`.
void FutexWait(std::atomic<uint32_t>* word, uint32_t expected,
               const timespec& abs_monotonic);

// One word to wait on and the value it must still have for the wait to sleep.
struct FutexWaiter {
  std::atomic<uint32_t>* word;
  uint32_t expected;
};
// Sleeps until one of `waiters` changes, is woken, or `abs_monotonic`.
// Uses futex_waitv (Linux 5.16+); on older kernels sleeps on the first word
// for at most 1 ms (the caller re-checks all of them).
void FutexWaitAny(absl::Span<const FutexWaiter> waiters,
                  const timespec& abs_monotonic);

// A wake-up event in shared memory: a sequence word to sleep on and a flag
// saying someone may be asleep on it. Notify() costs no system call when
// nobody sleeps, and only the first Notify() after a sleeper armed the flag
// makes one (it clears the flag), so a burst of notifications while a sleeper
// is being woken does not become a burst of futex wakes.
// Zero-initialised memory is a valid Event.
struct Event {
  std::atomic<uint32_t> seq{0};
  std::atomic<uint32_t> sleeping{0};

  // Call after publishing the state change the sleepers wait for (with a
  // release store or under a lock). Wakes every sleeper.
  void Notify() {
    // A seq_cst read-modify-write rather than a fence + load: it orders the
    // caller's publishing store before the read of `sleeping` (Dekker with
    // the sleeper's exchange in Arm()), and TSan understands it.
    if (sleeping.fetch_add(0, std::memory_order_seq_cst) != 0 &&
        sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
      NotifyAlways();
    }
  }
  void NotifyAlways() {
    seq.fetch_add(1, std::memory_order_seq_cst);
    FutexWakeAll(&seq);
  }
  // Called by a sleeper before its last readiness check; returns the value
  // to pass to FutexWait. (A sleeper that times out leaves the flag set: the
  // next Notify() makes one needless wake-up. So does a killed sleeper.)
  uint32_t Arm() {
    sleeping.exchange(1, std::memory_order_seq_cst);
    return seq.load(std::memory_order_seq_cst);
  }
};

// How long a sleeper sleeps at most before it re-checks by itself. A peer
// killed by SIGKILL between publishing a message and calling Notify() leaves
// sleepers unwoken; this bounds the delay that causes (1/kRecheck wake-ups a
// second cost a sleeper no measurable CPU).
inline constexpr absl::Duration kRecheck = absl::Milliseconds(100);

enum class WaitResult { kReady, kTimedOut, kAborted };

// Spins (adaptively: the budget grows when spinning succeeds and shrinks when
// it does not), then sleeps on `event` until `ready()` or `deadline`.
// Before each sleep (and after each wake-up) `abort()` is asked whether to
// give up (a dead peer); it may make a system call, ready() should not.
// `spin_budget` is per-thread state owned by the caller.
template <typename Ready, typename Abort>
WaitResult WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
                   int* spin_budget, Abort&& abort);
template <typename Ready>
bool WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
             int* spin_budget) {
  return WaitFor(event, ready, deadline, spin_budget, [] { return false; }) ==
         WaitResult::kReady;
}

// A process-shared, robust pthread mutex placed in shared memory. If its
// owner dies, the next Lock() gets it back (EOWNERDEAD is handled here: the
// callers keep their shared state consistent at every instant, so nothing
// needs repairing) and reports that the previous owner died.
class RobustMutex {
 public:
  // Initialises the mutex in place (once, by the segment's creator).
  void Init();
  // Locks; returns false if `deadline` passed first. Sets *owner_died (if
  // not null) when the previous owner died holding it.
  bool Lock(const Deadline& deadline, bool* owner_died = nullptr);
  void Lock() { Lock(Deadline::Never()); }
  void Unlock();

 private:
  pthread_mutex_t mu_;
};

// Scoped lock for RobustMutex (locked for the guard's lifetime).
class RobustLock {
 public:
  explicit RobustLock(RobustMutex& mu) : mu_(mu) { mu_.Lock(); }
  ~RobustLock() { mu_.Unlock(); }
  RobustLock(const RobustLock&) = delete;
  RobustLock& operator=(const RobustLock&) = delete;

 private:
  RobustMutex& mu_;
};

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

inline constexpr int kMinSpin = 64;
inline constexpr int kMaxSpin = 1 << 14;

template <typename Ready, typename Abort>
WaitResult WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
                   int* spin_budget, Abort&& abort) {
  const int budget = *spin_budget;
  for (int i = 0; i < budget; ++i) {
    if (ready()) {
      if (*spin_budget < kMaxSpin) *spin_budget *= 2;
      return WaitResult::kReady;
    }
    CpuRelax();
  }
  if (*spin_budget > kMinSpin) *spin_budget /= 2;
  for (;;) {
    if (ready()) return WaitResult::kReady;
    if (abort()) return WaitResult::kAborted;
    if (deadline.Expired()) return WaitResult::kTimedOut;
    const uint32_t seq = event.Arm();
    if (!ready()) FutexWait(&event.seq, seq, deadline.CappedAt(kRecheck));
  }
}

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_SYNC_H_
