// A fork gate around glibc's time-zone functions (internal to //tasklog).
//
//   TimeGate::CloseForFork();      // at-fork prepare: no thread is inside
//   ...fork()...                   // localtime_r & co. from here on
//   TimeGate::ReopenInParent();    // or ReopenInChild() in the child
//
// Why: glibc's localtime_r, gmtime_r, mktime, ... take a private lock
// (tzset_lock) that glibc does not reset in a fork child. glog calls
// localtime_r, gmtime_r and mktime for every message, outside its own lock,
// so a child forked while another thread is in one of them hangs at its
// first LOG(). This file defines those functions (localtime_r, localtime,
// gmtime_r, gmtime, mktime, timelocal, timegm, tzset) so that they interpose
// on glibc's (a definition in the program or in a library loaded before
// libc wins, as LD_PRELOAD libraries do): each call passes a gate, then calls
// the next definition (glibc's, or a sanitizer's interceptor, found with
// dlsym(RTLD_NEXT)). TaskLog's prepare handler closes the gate and waits
// until no thread is inside, so the child never inherits tzset_lock held.
// Callers inside glibc (strftime, ctime) do not pass the gate.
//
// Cost: two atomic read-modify-writes per call while no fork is running.
#ifndef TASKFORK_TASKLOG_INTERNAL_TIME_GATE_H_
#define TASKFORK_TASKLOG_INTERNAL_TIME_GATE_H_

#include <cstdint>

namespace taskfork::tasklog_internal {

class TimeGate {
 public:
  // Resolves the interposed functions' next definitions now (they are
  // otherwise resolved at first use). Call before threads race to fork.
  static void Resolve();
  // Prepare handler: makes new callers wait and waits until no caller is
  // inside. Must not be called by a thread that is inside (none can be: the
  // gated functions do not fork).
  static void CloseForFork();
  // Parent handler: lets waiting callers in.
  static void ReopenInParent();
  // Child handler: the child has no other thread, so nobody is inside or
  // waiting. Async-signal-safe.
  static void ReopenInChild();
  // Calls that passed the gate since the process started (for tests).
  static uint64_t passes();
};

}  // namespace taskfork::tasklog_internal

#endif  // TASKFORK_TASKLOG_INTERNAL_TIME_GATE_H_
