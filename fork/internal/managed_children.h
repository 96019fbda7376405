// The set of child pids that a Process owns (and will reap itself), so that a
// Supervisor reaping orphans never steals a Process's zombie.
//
//   fork_internal::ForkLock lock;             // arms the at-fork handler
//   pid_t pid = ::fork();  ...  lock.AddAndUnlock(pid);
//   if (!fork_internal::IsManagedChild(pid)) ReapOrphan(pid);
#ifndef TASKFORK_FORK_INTERNAL_MANAGED_CHILDREN_H_
#define TASKFORK_FORK_INTERNAL_MANAGED_CHILDREN_H_

#include <sys/types.h>

#include <string>

namespace taskfork::fork_internal {

// Keeps the set's lock held from the at-fork prepare handler of the next
// fork() in this thread until the new pid is in the set, so that a Supervisor
// never sees a Process's child as an orphan. (The lock is taken in the
// prepare handler, after the registry's lock, never before it: taking it
// before fork() would invert the lock order with a fork in another thread.)
// The child's handler resets it. Not movable; one per ::fork() call, made
// right before it in the same thread.
class ForkLock {
 public:
  ForkLock();
  ForkLock(const ForkLock&) = delete;
  ForkLock& operator=(const ForkLock&) = delete;
  // Unlocks if AddAndUnlock() was not called (fork failed: glibc runs the
  // parent handlers then too).
  ~ForkLock();
  // Records `pid` (the parent's fork() result, > 0) and unlocks.
  void AddAndUnlock(pid_t pid);
  // In the child: the lock is released by the at-fork child handler already;
  // this only disarms the destructor.
  void ReleaseInChild() { held_ = false; }

 private:
  bool held_ = true;
};

// Thread-safe. The set is emptied in a fork child (its parent's children are
// not its children).
void RemoveManagedChild(pid_t pid);
bool IsManagedChild(pid_t pid);

// The string a result child writes its result into (why: StartWithResultInto
// in process.h). Its buffer (512 bytes) is reserved by the first call, which
// must be made in the parent before the fork; the parent never writes it
// afterwards, every child writes its own copy-on-write copy. The string
// object is a member of the state above, whose page every fork child writes
// anyway, rather than on a heap page of its own: one page fault less per
// result child. Thread-safe in the parent.
std::string& ChildResultBuffer();

}  // namespace taskfork::fork_internal

#endif  // TASKFORK_FORK_INTERNAL_MANAGED_CHILDREN_H_
