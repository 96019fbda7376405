#include "fork/at_fork.h"

#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <mutex>  // NOLINT: std::mutex is a plain pthread mutex, unlockable in the child.
#include <new>
#include <utility>
#include <vector>

#include "fork/internal/child_syscalls.h"
#include "glog/logging.h"

namespace taskfork {
namespace {

struct Entry {
  int priority;
  uint64_t id;
  AtForkHandlers handlers;
};

// The process-wide registry. Never destroyed: forks may happen during static
// destruction (from other code), and registrations may outlive main().
struct Registry {
  // Held from the first prepare handler until the parent/child handlers are
  // done, so that entries cannot change while a fork runs them.
  std::mutex mu;
  std::vector<Entry> entries;  // sorted by (priority, id); guarded by mu
  uint64_t next_id = 1;        // guarded by mu
  // The thread running the handlers (0: none), from the start of prepare to
  // the end of parent/child: a handler that registers or unregisters would
  // deadlock on `mu`; we CHECK-fail instead. Next to `mu` rather than
  // thread_local: the page `mu` is on is written around every fork anyway,
  // the thread's TLS page need not be (one copy-on-write fault less in the
  // parent and in the child). Written under `mu`, read anywhere.
  std::atomic<pthread_t> handler_thread{0};
  // Entries with a child_exit handler: RunChildExitHooks() locks and writes
  // nothing when there are none (a plain Process child). Written under `mu`.
  std::atomic<int> child_exit_count{0};
  // The process that ran the child_exit handlers (0: none yet); a forked
  // child inherits its parent's value, which is not its own pid. Guarded by
  // `mu`.
  pid_t child_exit_ran_in = 0;

  bool InHandlers() const {
    return handler_thread.load(std::memory_order_relaxed) == ::pthread_self();
  }
};

Registry& GetRegistry() {
  // Static storage, never destroyed: next to the other fork-time state in
  // .bss rather than on the heap, so that the pages written around every
  // fork (each a copy-on-write fault in parent and child) are fewer.
  alignas(Registry) static unsigned char storage[sizeof(Registry)];
  static Registry* const registry = new (storage) Registry;
  return *registry;
}

void Run(const std::function<void()>& handler) noexcept {
  if (handler) handler();
}

void PrepareAll() {
  Registry& registry = GetRegistry();
  // The lock is this thread's already: it would deadlock.
  CHECK(!registry.InHandlers())
      << "fork() called from an at-fork or child-exit handler";
  registry.mu.lock();
  registry.handler_thread.store(::pthread_self(), std::memory_order_relaxed);
  for (auto it = registry.entries.rbegin(); it != registry.entries.rend();
       ++it) {
    Run(it->handlers.prepare);
  }
}

void ParentAll() {
  Registry& registry = GetRegistry();
  for (const Entry& entry : registry.entries) Run(entry.handlers.parent);
  registry.handler_thread.store(0, std::memory_order_relaxed);
  registry.mu.unlock();
}

void ChildAll() {
  // Only this thread exists now; the lock is held by it (copied from the
  // parent's forking thread) and nobody can be waiting for it, so an
  // unlocked mutex written over it is all the repair it needs (as glibc
  // repairs its own locks in the child), without pthread_mutex_unlock's
  // code: a page fault in every child (fork/internal/child_syscalls.h).
  Registry& registry = GetRegistry();
  for (const Entry& entry : registry.entries) Run(entry.handlers.child);
  registry.handler_thread.store(0, std::memory_order_relaxed);
  fork_internal::ResetHeldMutexInChild(&registry.mu);
}

void InstallOnce() {
  static const bool installed = [] {
    const int error = ::pthread_atfork(&PrepareAll, &ParentAll, &ChildAll);
    CHECK_EQ(error, 0) << "pthread_atfork failed";
    return true;
  }();
  (void)installed;
}

void Unregister(uint64_t id) {
  Registry& registry = GetRegistry();
  CHECK(!registry.InHandlers())
      << "AtForkRegistration::Reset() called from an at-fork handler";
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = std::find_if(registry.entries.begin(), registry.entries.end(),
                         [id](const Entry& e) { return e.id == id; });
  CHECK(it != registry.entries.end()) << "at-fork registration " << id
                                      << " is not registered";
  if (it->handlers.child_exit) {
    registry.child_exit_count.fetch_sub(1, std::memory_order_relaxed);
  }
  registry.entries.erase(it);
}

}  // namespace

AtForkRegistration::AtForkRegistration(AtForkRegistration&& other) noexcept
    : id_(std::exchange(other.id_, 0)) {}

AtForkRegistration& AtForkRegistration::operator=(
    AtForkRegistration&& other) noexcept {
  if (this != &other) {
    Reset();
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

AtForkRegistration::~AtForkRegistration() { Reset(); }

void AtForkRegistration::Reset() {
  if (id_ == 0) return;
  Unregister(std::exchange(id_, 0));
}

AtForkRegistration RegisterAtFork(int priority, AtForkHandlers handlers) {
  Registry& registry = GetRegistry();
  CHECK(!registry.InHandlers())
      << "RegisterAtFork() called from an at-fork handler";
  InstallOnce();
  std::lock_guard<std::mutex> lock(registry.mu);
  const uint64_t id = registry.next_id++;
  // After every entry of the same priority: ties run in registration order.
  auto pos = std::upper_bound(
      registry.entries.begin(), registry.entries.end(), priority,
      [](int p, const Entry& e) { return p < e.priority; });
  if (handlers.child_exit) {
    registry.child_exit_count.fetch_add(1, std::memory_order_relaxed);
  }
  registry.entries.insert(pos, Entry{priority, id, std::move(handlers)});
  return AtForkRegistration(id);
}

int AtForkRegistrationCount() {
  Registry& registry = GetRegistry();
  CHECK(!registry.InHandlers())
      << "AtForkRegistrationCount() called from an at-fork handler";
  std::lock_guard<std::mutex> lock(registry.mu);
  return static_cast<int>(registry.entries.size());
}

void RunChildExitHooks() {
  Registry& registry = GetRegistry();
  if (registry.child_exit_count.load(std::memory_order_relaxed) == 0) return;
  CHECK(!registry.InHandlers())
      << "RunChildExitHooks() called from an at-fork or child-exit handler";
  std::lock_guard<std::mutex> lock(registry.mu);
  const pid_t self = ::getpid();
  if (registry.child_exit_ran_in == self) return;
  registry.child_exit_ran_in = self;
  registry.handler_thread.store(::pthread_self(), std::memory_order_relaxed);
  for (auto it = registry.entries.rbegin(); it != registry.entries.rend();
       ++it) {
    Run(it->handlers.child_exit);
  }
  registry.handler_thread.store(0, std::memory_order_relaxed);
}

void ExitChild(int code) {
  RunChildExitHooks();
  FlushPendingStdio();
  fork_internal::child_syscalls::Exit(code);
}

void FlushPendingStdio() {
  // Asked of glibc's FILE, not __fpending: in a fork child its code would
  // be one more page to fault in (fork/internal/child_syscalls.h).
  if (fork_internal::child_syscalls::HasPendingOutput(stdout)) {
    std::fflush(stdout);
  }
  if (fork_internal::child_syscalls::HasPendingOutput(stderr)) {
    std::fflush(stderr);
  }
}

}  // namespace taskfork
