// Finding and holding glog 0.6.0's global logging lock across fork (internal).
//
//   GlogLock lock = GlogLock::Find();          // once, outside any LogSink
//   // at-fork prepare:        bool held = lock.LockForFork();
//   // at-fork parent / child: lock.UnlockInParent() / lock.UnlockInChild();
//
// Why: every LOG() holds glog's `log_mutex` (a static pthread_rwlock_t in
// libglog, not exported) while it writes. If another thread holds it at the
// moment of fork, the child inherits it locked by a thread that does not exist
// there, and its first LOG() blocks forever. An at-fork prepare handler must
// take that lock so that no other thread holds it at the fork, and the child
// must release it. glog has no API for that, so Find() identifies the lock by
// its state: inside a LogSink::send() call the calling thread holds exactly
// that rwlock for writing, and glibc's rwlock records the writer's thread id
// (`__data.__cur_writer`) next to its WRLOCKED bit. Find() scans glog's
// writable data for a rwlock write-held by a fresh probe thread while it is
// inside send(), twice, keeps the addresses that are released after each
// send() returned, and accepts exactly one. Anything else (another glog
// version, a std::mutex-based glog, glog linked without pthreads) yields an
// empty GlogLock, and fork safety against concurrently logging threads is then
// not provided (TaskLog says so in its README and through
// TaskLog::glog_lock_found()).
#ifndef TASKFORK_TASKLOG_INTERNAL_GLOG_LOCK_H_
#define TASKFORK_TASKLOG_INTERNAL_GLOG_LOCK_H_

#include <pthread.h>

namespace taskfork::tasklog_internal {

// A handle on glog's logging lock. Copyable (it is an address). The Lock /
// Unlock calls are for at-fork handlers only: glog's own code takes this lock
// in every LOG(), so holding it anywhere else deadlocks LOG() callers.
class GlogLock {
 public:
  GlogLock() = default;

  // Runs the probe described above (starts and joins one thread; logs one
  // INFO message twice to a private sink only, never to glog's files or
  // stderr). Must not be called from a LogSink or while holding a lock that a
  // LogSink takes. Thread-safe, but meant to be called once per process.
  static GlogLock Find();

  // Whether Find() identified the lock.
  bool found() const { return lock_ != nullptr; }

  // Prepare handler: takes the lock for writing (waits for in-flight LOG()
  // calls). Returns false (and takes nothing) when not found, or when the
  // calling thread already holds it (fork called from inside a LogSink).
  bool LockForFork() const;
  // Parent handler, after LockForFork() returned true.
  void UnlockInParent() const;
  // Child handler, after LockForFork() returned true: the writer id glibc
  // recorded is the parent's thread id, so it is set to this thread's id
  // before the ordinary unlock. Async-signal-safe.
  void UnlockInChild() const;

  // The lock's address (for tests); nullptr when not found.
  pthread_rwlock_t* address() const { return lock_; }

 private:
  explicit GlogLock(pthread_rwlock_t* lock) : lock_(lock) {}
  pthread_rwlock_t* lock_ = nullptr;
};

}  // namespace taskfork::tasklog_internal

#endif  // TASKFORK_TASKLOG_INTERNAL_GLOG_LOCK_H_
