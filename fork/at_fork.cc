#include "fork/at_fork.h"

#include <pthread.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <mutex>  // NOLINT: std::mutex is a plain pthread mutex, unlockable in the child.
#include <new>
#include <utility>
#include <vector>

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
};

Registry& GetRegistry() {
  // Static storage, never destroyed: next to the other fork-time state in
  // .bss rather than on the heap, so that the pages written around every
  // fork (each a copy-on-write fault in parent and child) are fewer.
  alignas(Registry) static unsigned char storage[sizeof(Registry)];
  static Registry* const registry = new (storage) Registry;
  return *registry;
}

// True in the thread that runs the at-fork handlers, from the start of
// prepare to the end of parent/child: a handler that registers or unregisters
// would deadlock on the registry lock; we CHECK-fail instead.
thread_local bool t_in_fork_handlers = false;

void Run(const std::function<void()>& handler) noexcept {
  if (handler) handler();
}

void PrepareAll() {
  Registry& registry = GetRegistry();
  registry.mu.lock();
  t_in_fork_handlers = true;
  for (auto it = registry.entries.rbegin(); it != registry.entries.rend();
       ++it) {
    Run(it->handlers.prepare);
  }
}

void ParentAll() {
  Registry& registry = GetRegistry();
  for (const Entry& entry : registry.entries) Run(entry.handlers.parent);
  t_in_fork_handlers = false;
  registry.mu.unlock();
}

void ChildAll() {
  // Only this thread exists now; the lock is held by it (copied from the
  // parent's forking thread), so unlocking is all the repair it needs.
  Registry& registry = GetRegistry();
  for (const Entry& entry : registry.entries) Run(entry.handlers.child);
  t_in_fork_handlers = false;
  registry.mu.unlock();
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
  CHECK(!t_in_fork_handlers)
      << "AtForkRegistration::Reset() called from an at-fork handler";
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  auto it = std::find_if(registry.entries.begin(), registry.entries.end(),
                         [id](const Entry& e) { return e.id == id; });
  CHECK(it != registry.entries.end()) << "at-fork registration " << id
                                      << " is not registered";
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
  CHECK(!t_in_fork_handlers) << "RegisterAtFork() called from an at-fork handler";
  InstallOnce();
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  const uint64_t id = registry.next_id++;
  // After every entry of the same priority: ties run in registration order.
  auto pos = std::upper_bound(
      registry.entries.begin(), registry.entries.end(), priority,
      [](int p, const Entry& e) { return p < e.priority; });
  registry.entries.insert(pos, Entry{priority, id, std::move(handlers)});
  return AtForkRegistration(id);
}

int AtForkRegistrationCount() {
  CHECK(!t_in_fork_handlers)
      << "AtForkRegistrationCount() called from an at-fork handler";
  Registry& registry = GetRegistry();
  std::lock_guard<std::mutex> lock(registry.mu);
  return static_cast<int>(registry.entries.size());
}

}  // namespace taskfork
