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

#include "absl/base/optimization.h"
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

// How a notifier orders "publish, then look for sleepers" (a Dekker pair with
// the sleeper's "announce, then re-check"), chosen once per process:
//   kAsymmetric: this process is registered for
//     membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) (Linux 4.16+). Notifiers
//     use a plain load, and a sleeper, before its last check, makes every
//     CPU running a registered process execute a full barrier. A message
//     then costs no locked instruction; a sleep costs one more system call.
//   kSymmetric: registration failed (old kernel, or a seccomp filter):
//     notifiers use a seq_cst read-modify-write, as the sleepers do.
// Registration is inherited by fork() and dropped by exec(); Queue::Create,
// Queue::Open and Pipe::Create call CurrentWakeupMode() so the choice is made
// once per process before the first message. Every sleeper also issues the
// barrier (any process may), so processes of either kind can share a queue;
// a sleeper whose barrier fails sleeps at most kRecheckUnfenced at a time.
enum class WakeupMode { kAsymmetric, kSymmetric };
WakeupMode InitWakeups();  // decides (once) and returns the mode
namespace wakeup_internal {
// -1 until InitWakeups() ran; then a WakeupMode.
extern std::atomic<int> mode;
}  // namespace wakeup_internal
inline WakeupMode CurrentWakeupMode() {
  const int mode = wakeup_internal::mode.load(std::memory_order_relaxed);
  if (ABSL_PREDICT_FALSE(mode < 0)) return InitWakeups();
  return static_cast<WakeupMode>(mode);
}
// For tests: this process notifies with the locked instruction from now on
// (always correct; kAsymmetric is only an optimisation of it).
void UseSymmetricWakeupsForTest();
// The sleeper's half: a full barrier on every CPU running a registered
// process. Returns false if the system call failed.
bool HeavyBarrier();

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
    if (CurrentWakeupMode() == WakeupMode::kAsymmetric) {
      // Only the compiler must keep the publishing store before this load;
      // the sleeper's HeavyBarrier() orders them on the CPU.
      std::atomic_signal_fence(std::memory_order_seq_cst);
      if (sleeping.load(std::memory_order_relaxed) == 0) return;
    } else if (sleeping.fetch_add(0, std::memory_order_seq_cst) == 0) {
      // A seq_cst read-modify-write rather than a fence + load: it orders
      // the caller's publishing store before the read of `sleeping`, and
      // TSan understands it.
      return;
    }
    if (sleeping.exchange(0, std::memory_order_seq_cst) != 0) NotifyAlways();
  }
  void NotifyAlways() {
    seq.fetch_add(1, std::memory_order_seq_cst);
    FutexWakeAll(&seq);
  }
  // Called by a sleeper before its last readiness check; returns the value
  // to pass to FutexWait, and sets *fenced to whether the notifiers of every
  // kind are ordered against this sleep (false: sleep at most
  // kRecheckUnfenced). A sleeper that times out leaves the flag set: the
  // next Notify() makes one needless wake-up. So does a killed sleeper.
  uint32_t Arm(bool* fenced) {
    Announce();
    *fenced = HeavyBarrier();
    return seq.load(std::memory_order_seq_cst);
  }
  // Arm() in parts, for a sleeper on several events (one barrier for all):
  // Announce() each, HeavyBarrier() once, then read each `seq`.
  void Announce() { sleeping.exchange(1, std::memory_order_seq_cst); }
};

// How long a sleeper sleeps at most before it re-checks by itself. A peer
// killed by SIGKILL between publishing a message and calling Notify() leaves
// sleepers unwoken; this bounds the delay that causes (1/kRecheck wake-ups a
// second cost a sleeper no measurable CPU).
inline constexpr absl::Duration kRecheck = absl::Milliseconds(100);
// The same for a sleeper whose HeavyBarrier() failed: a notifier in a
// registered process may then miss it, so it looks again soon.
inline constexpr absl::Duration kRecheckUnfenced = absl::Milliseconds(1);

enum class WaitResult { kReady, kTimedOut, kAborted };

// Per-thread state of one kind of wait (callers keep one thread_local per
// wait site), adapted from what the last waits found:
//   budget: pauses to spin before sleeping; doubles when spinning succeeds,
//     halves when it does not (kMinSpin..kMaxSpin).
//   first_look: pauses before the first look at ready(); see Learn().
// WaitFor looks at ready() after `first_look` pauses, then spins `budget`
// pauses looking after 1, 2, 4, ... up to kMaxPollGap of them. A waiter that re-reads the line
// its peer is writing steals the line each time; the peer's next locked
// instruction (a lock, an unlock) then waits for the line to come back,
// which on distant cores costs far more than the waiter saves.
struct Spinner {
  int budget = kMinSpin;
  int first_look = 1;
  bool hit_first_look = false;  // set by WaitFor

  // Call after a successful wait and the operation it waited for, with
  // whether the operation could be repeated at once (another message was
  // already there, or room for another): the peer was streaming, so the
  // first look comes later next time and finds a batch (up to
  // kMaxFirstLook pauses). Otherwise it comes sooner, for latency.
  void Learn(bool more) {
    if (hit_first_look && more) {
      if (first_look < kMaxFirstLook) first_look *= 2;
    } else if (first_look > 1) {
      first_look /= 2;
    }
  }

  // Call when a wait spun `spent` pauses in `spin_ns`, found nothing, and
  // then saw ready() `waited_ns` after it began to spin (it slept, or was
  // about to). A wait that short (at most kSpinThroughNs) is cheaper to spin
  // through than to sleep through: a sleep costs the sleeper a barrier on
  // every CPU of the peers (HeavyBarrier) and a futex wait, and the
  // notifier a futex wake; so the budget is set to spin for twice
  // `waited_ns` (at this wait's rate of pauses, kMinSpin..kMaxSpin).
  // Longer waits leave the budget halved: a waiter whose messages come
  // seldom sleeps at once.
  void LearnSlept(int spent, int64_t spin_ns, int64_t waited_ns) {
    if (waited_ns > kSpinThroughNs || spent <= 0 || spin_ns <= 0) return;
    const double pauses = 2.0 * static_cast<double>(waited_ns) * spent /
                          static_cast<double>(spin_ns);
    budget = pauses >= kMaxSpin   ? kMaxSpin
             : pauses <= kMinSpin ? kMinSpin
                                  : static_cast<int>(pauses);
  }

  static constexpr int kMinSpin = 64;
  static constexpr int kMaxSpin = 1 << 14;
  static constexpr int kMaxPollGap = 8;
  static constexpr int kMaxFirstLook = 64;
  // The longest wait LearnSlept() learns to spin through (see there).
  static constexpr int64_t kSpinThroughNs = 100 * 1000;
};

// Spins (see Spinner), then sleeps on `event` until `ready()` or `deadline`.
// Before each sleep (and after each wake-up) `abort()` is asked whether to
// give up (a dead peer); it may make a system call, ready() should not.
template <typename Ready, typename Abort>
WaitResult WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
                   Spinner* spinner, Abort&& abort);
template <typename Ready>
bool WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
             Spinner* spinner) {
  return WaitFor(event, ready, deadline, spinner, [] { return false; }) ==
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

inline void Pause(int n) {
  for (int i = 0; i < n; ++i) CpuRelax();
}

template <typename Ready, typename Abort>
WaitResult WaitFor(Event& event, Ready&& ready, const Deadline& deadline,
                   Spinner* spinner, Abort&& abort) {
  spinner->hit_first_look = false;
  const int budget = spinner->budget;
  Pause(spinner->first_look);
  if (ready()) {
    spinner->hit_first_look = true;
    return WaitResult::kReady;
  }
  const int64_t spin_start = MonotonicNanos();
  int spent = 0;
  for (int gap = 1; spent < budget; spent += gap) {
    Pause(gap);
    if (ready()) {
      if (spinner->budget < Spinner::kMaxSpin) spinner->budget *= 2;
      return WaitResult::kReady;
    }
    if (gap < Spinner::kMaxPollGap) gap *= 2;
  }
  const int64_t spin_ns = MonotonicNanos() - spin_start;
  if (spinner->budget > Spinner::kMinSpin) spinner->budget /= 2;
  for (;;) {
    if (ready()) {
      spinner->LearnSlept(spent, spin_ns, MonotonicNanos() - spin_start);
      return WaitResult::kReady;
    }
    if (abort()) return WaitResult::kAborted;
    if (deadline.Expired()) return WaitResult::kTimedOut;
    bool fenced = false;
    const uint32_t seq = event.Arm(&fenced);
    if (!ready()) {
      FutexWait(&event.seq, seq,
                deadline.CappedAt(fenced ? kRecheck : kRecheckUnfenced));
    }
  }
}

}  // namespace taskfork::ipc_internal

#endif  // TASKFORK_IPC_INTERNAL_SYNC_H_
