#include "fork/internal/managed_children.h"

#include <sys/types.h>

#include <mutex>  // NOLINT: a pthread mutex, unlockable in the fork child.
#include <new>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "fork/at_fork.h"
#include "glog/logging.h"

namespace taskfork::fork_internal {
namespace {

// Set by a ForkLock in the thread about to fork: the parent handler then
// keeps the lock for ForkLock::AddAndUnlock().
thread_local bool t_keep_locked = false;
// Whether this thread holds the lock through a ForkLock.
thread_local bool t_holds_lock = false;

struct ManagedChildren {
  ManagedChildren() {
    AtForkHandlers handlers;
    handlers.prepare = [this] { mu.lock(); };
    handlers.parent = [this] {
      if (t_keep_locked) {
        t_keep_locked = false;
        t_holds_lock = true;
      } else {
        mu.unlock();
      }
    };
    handlers.child = [this] {
      // Only this thread exists; the set holds the parent's children. It is
      // cleared lazily: writing to its pages now would cost copy-on-write
      // faults in every child, most of which never start a Process.
      stale = true;
      t_keep_locked = false;
      t_holds_lock = false;
      mu.unlock();
    };
    registration = RegisterAtFork(kAtForkPriorityFork, std::move(handlers));
  }
  // Drops the parent's pids once this process (a fork child) uses the set.
  void ClearIfStale() {
    if (!stale) return;
    pids.clear();
    stale = false;
  }
  std::mutex mu;
  bool stale = false;               // guarded by mu
  absl::flat_hash_set<pid_t> pids;  // guarded by mu
  AtForkRegistration registration;
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
  Get();  // registers the handlers before the fork
  CHECK(!t_keep_locked && !t_holds_lock) << "nested ForkLock";
  t_keep_locked = true;
}

ForkLock::~ForkLock() {
  if (!held_) return;
  t_keep_locked = false;
  if (t_holds_lock) {
    t_holds_lock = false;
    Get().mu.unlock();
  }
}

void ForkLock::AddAndUnlock(pid_t pid) {
  ManagedChildren& c = Get();
  CHECK(t_holds_lock) << "AddAndUnlock() without a fork() in this thread";
  c.ClearIfStale();
  c.pids.insert(pid);
  held_ = false;
  t_holds_lock = false;
  c.mu.unlock();
}

void RemoveManagedChild(pid_t pid) {
  ManagedChildren& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  c.ClearIfStale();
  c.pids.erase(pid);
}

bool IsManagedChild(pid_t pid) {
  ManagedChildren& c = Get();
  std::lock_guard<std::mutex> lock(c.mu);
  c.ClearIfStale();
  return c.pids.contains(pid);
}

}  // namespace taskfork::fork_internal
