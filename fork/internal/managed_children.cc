#include "fork/internal/managed_children.h"

#include <pthread.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <mutex>  // NOLINT: a pthread mutex, unlockable in the fork child.
#include <new>
#include <string>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "fork/at_fork.h"
#include "fork/internal/child_syscalls.h"
#include "glog/logging.h"

namespace taskfork::fork_internal {
namespace {

// A thread whose ForkLock found every slot taken (many threads starting
// Processes at once) is armed through this flag instead.
thread_local bool t_armed_overflow = false;

// Everything here sits in one static object that is written around every
// fork anyway (the lock), and nothing in thread-local storage or on the heap
// is written for a Process's fork: each page written after a fork costs a
// copy-on-write fault, in the parent and in the child.
struct ManagedChildren {
  // Threads that made a ForkLock and have not forked yet (0: free slot).
  // The parent handler keeps the lock for the forking thread if it is here.
  static constexpr int kArmedSlots = 8;
  // Pids kept inline before the heap set is used.
  static constexpr int kInlinePids = 64;

  ManagedChildren() {
    AtForkHandlers handlers;
    handlers.prepare = [this] { mu.lock(); };
    handlers.parent = [this] {
      if (t_armed_overflow || IsArmed(::pthread_self())) {
        holder.store(::pthread_self(), std::memory_order_relaxed);
      } else {
        mu.unlock();
      }
    };
    handlers.child = [this] {
      // Only this thread exists; the set holds the parent's children. It is
      // cleared lazily: a child that never starts a Process need not write
      // the pages of a large set.
      stale = true;
      for (auto& slot : armed) slot.store(0, std::memory_order_relaxed);
      holder.store(0, std::memory_order_relaxed);
      if (t_armed_overflow) t_armed_overflow = false;  // read: no TLS write
      ResetHeldMutexInChild(&mu);
    };
    registration = RegisterAtFork(kAtForkPriorityFork, std::move(handlers));
  }

  bool IsArmed(pthread_t self) const {
    for (const auto& slot : armed) {
      if (slot.load(std::memory_order_relaxed) == self) return true;
    }
    return false;
  }
  // Takes a free slot for `self`; false when all are taken.
  bool Arm(pthread_t self) {
    for (auto& slot : armed) {
      pthread_t expected = 0;
      if (slot.compare_exchange_strong(expected, self,
                                       std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }
  void Disarm(pthread_t self) {
    for (auto& slot : armed) {
      pthread_t expected = self;
      if (slot.compare_exchange_strong(expected, 0,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
  }

  // The set; `mu` held.
  void ClearIfStale() {
    if (!stale) return;
    inline_count = 0;
    overflow.clear();
    stale = false;
  }
  void Insert(pid_t pid) {
    if (inline_count < kInlinePids) {
      inline_pids[inline_count++] = pid;
    } else {
      overflow.insert(pid);
    }
  }
  void Erase(pid_t pid) {
    pid_t* end = inline_pids + inline_count;
    pid_t* it = std::find(inline_pids, end, pid);
    if (it != end) {
      *it = inline_pids[--inline_count];
    } else if (!overflow.empty()) {
      overflow.erase(pid);
    }
  }
  bool Contains(pid_t pid) const {
    const pid_t* end = inline_pids + inline_count;
    return std::find(inline_pids, end, pid) != end ||
           (!overflow.empty() && overflow.contains(pid));
  }

  std::mutex mu;
  // The thread that keeps `mu` from a fork's parent handler until its
  // ForkLock::AddAndUnlock() (0: none). Written with `mu` held.
  std::atomic<pthread_t> holder{0};
  std::atomic<pthread_t> armed[kArmedSlots] = {};
  bool stale = false;                   // guarded by mu
  int inline_count = 0;                 // guarded by mu
  pid_t inline_pids[kInlinePids];       // guarded by mu
  absl::flat_hash_set<pid_t> overflow;  // guarded by mu
  AtForkRegistration registration;
  std::string child_result;  // see ChildResultBuffer()
};

ManagedChildren& Get() {
  // Static storage, never destroyed: next to the other fork-time state in
  // .bss rather than on the heap, so that the pages written around every
  // fork (each a copy-on-write fault in parent and child) are fewer.
  alignas(ManagedChildren) static unsigned char storage[sizeof(ManagedChildren)];
  static ManagedChildren* const children = new (storage) ManagedChildren;
  return *children;
}

}  // namespace

ForkLock::ForkLock() {
  ManagedChildren& c = Get();  // registers the handlers before the fork
  const pthread_t self = ::pthread_self();
  CHECK(!c.IsArmed(self) && !t_armed_overflow &&
        c.holder.load(std::memory_order_relaxed) != self)
      << "nested ForkLock";
  if (!c.Arm(self)) t_armed_overflow = true;
}

ForkLock::~ForkLock() {
  if (!held_) return;
  ManagedChildren& c = Get();
  const pthread_t self = ::pthread_self();
  if (t_armed_overflow) {
    t_armed_overflow = false;
  } else {
    c.Disarm(self);
  }
  if (c.holder.load(std::memory_order_relaxed) == self) {
    c.holder.store(0, std::memory_order_relaxed);
    c.mu.unlock();
  }
}

void ForkLock::AddAndUnlock(pid_t pid) {
  ManagedChildren& c = Get();
  const pthread_t self = ::pthread_self();
  CHECK(c.holder.load(std::memory_order_relaxed) == self)
      << "AddAndUnlock() without a fork() in this thread";
  c.ClearIfStale();
  c.Insert(pid);
  held_ = false;
  if (t_armed_overflow) {
    t_armed_overflow = false;
  } else {
    c.Disarm(self);
  }
  c.holder.store(0, std::memory_order_relaxed);
  c.mu.unlock();
}

// Room for a typical result (a Pcall value, a task's result record).
constexpr size_t kChildResultReserve = 512;

std::string& ChildResultBuffer() {
  static const bool reserved = [] {
    Get().child_result.reserve(kChildResultReserve);
    return true;
  }();
  (void)reserved;
  return Get().child_result;
}

void RemoveManagedChild(pid_t pid) {
  ManagedChildren& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  c.ClearIfStale();
  c.Erase(pid);
}

bool IsManagedChild(pid_t pid) {
  ManagedChildren& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  c.ClearIfStale();
  return c.Contains(pid);
}

}  // namespace taskfork::fork_internal
