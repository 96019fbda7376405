// At-fork registry: prepare / parent / child handlers, ordered by priority,
// that run around every fork() in the process and unregister on destruction,
// and child-exit handlers that a forked child runs just before it _exit()s.
//
//   AtForkHandlers h;
//   h.prepare = [&] { mu.lock(); };  h.parent = [&] { mu.unlock(); };
//   h.child = [&] { mu.unlock(); ReopenLogFile(); };
//   h.child_exit = [&] { FlushQueuedEvents(); };  // Process/Pcall children
//   AtForkRegistration reg = RegisterAtFork(kAtForkPriorityLogging, std::move(h));
//
// Semantics (those of pthread_atfork / os.register_at_fork, plus removal):
// - One pthread_atfork() triple, installed on the first RegisterAtFork() call,
//   dispatches to every registered handler. So handlers run for every glibc
//   fork() in the process, also forks made by other code (Process, Pcall,
//   a library, a test). They do not run for vfork(), posix_spawn(), clone()
//   or a raw clone3 syscall, which do not run pthread_atfork handlers either.
// - Order: handlers are sorted by ascending `priority`, ties in registration
//   order. `parent` and `child` run in that order; `prepare` runs in reverse.
//   So a low priority is a foundation: its prepare runs last and its child
//   handler first (logging before the report client that logs, for example).
// - The registry's own lock is held from the first prepare handler until the
//   last parent / child handler returned: forks from several threads are
//   serialised through the handlers, and once a registration's destructor (or
//   Reset()) returned, none of its handlers is running or will run again.
//
// What handlers may do (fork safety):
// - prepare and parent run in the parent with every thread alive; they may
//   allocate, lock and log. A prepare handler typically takes the locks that
//   guard state the child needs consistent (a logger's mutex, a client's
//   socket state), and the parent / child handlers release them.
// - child runs in the new process, where only the forking thread exists. If the
//   parent had other threads, any lock one of them held at fork time stays
//   locked forever in the child, so by POSIX a child handler must be
//   async-signal-safe except for state it protected with its own prepare
//   handler. glibc makes malloc/free fork-safe (its own at-fork handling), so
//   allocating in a child handler works on this platform; taking any lock that
//   no prepare handler took does not.
// - No handler may call fork(), RegisterAtFork() or AtForkRegistration::Reset()
//   / its destructor (CHECK-fails: the registry lock is held). Calling
//   RegisterAtFork() or Reset() from another thread while holding a lock a
//   prepare handler takes can deadlock with a concurrent fork, as with any
//   at-fork lock ordering.
// - Handlers must not throw (std::terminate).
// - fork() from a signal handler is not supported while handlers exist (the
//   registry lock is not async-signal-safe), as POSIX already warns.
//
// Child-exit handlers (AtForkHandlers::child_exit): a forked child ends with
// _exit(), which runs neither atexit handlers nor destructors (they belong to
// the parent), so state a child queued in an inherited object (a report
// client's unsent events) would be lost. RunChildExitHooks() runs the
// child_exit handler of every registration in the calling process, in the
// order of `prepare` (reverse priority order, ties in reverse registration
// order: higher layers first, logging last), at most once per process.
// - Who calls it: every Process / Pcall child after its body returned (or
//   threw) and before its result is sent and it _exit()s (fork/process.h),
//   hence also the runner's task processes; code that forks with ::fork()
//   itself calls ExitChild(code) (or RunChildExitHooks()) instead of _exit().
// - Never for the process that registered a handler when it ends normally
//   (exit() and destructors are its way), for a child that calls exit() /
//   _exit() / exec itself, nor for one killed by a signal or crashing: a
//   crash cannot run code safely, so what a child has not handed to the
//   kernel before it crashes is lost.
// - The handlers are inherited with the registry: a registration made in a
//   parent runs in each of its children that exits this way; one made in the
//   child runs there too.
// - A handler runs with the registry lock held (as at-fork handlers do): it
//   may allocate, log and take locks its own prepare handler protects across
//   fork, but must not fork, register or unregister (CHECK-fails), must not
//   throw, and must bound its time: a child's exit waits for it.
#ifndef TASKFORK_FORK_AT_FORK_H_
#define TASKFORK_FORK_AT_FORK_H_

#include <cstdint>
#include <functional>

namespace taskfork {

// Suggested priorities for the packages of this repository; any int works.
// Lower runs first after fork (and its prepare runs last).
inline constexpr int kAtForkPriorityFork = -1000;      // //fork's own state
inline constexpr int kAtForkPriorityLogging = 0;       // //tasklog
inline constexpr int kAtForkPriorityIpc = 100;         // //ipc
inline constexpr int kAtForkPriorityReporter = 200;    // //reporter client
inline constexpr int kAtForkPriorityDefault = 1000;    // everything else

// The three handlers of one registration; any member may be empty.
struct AtForkHandlers {
  // Before fork, in the parent (reverse priority order).
  std::function<void()> prepare;
  // After fork, in the parent (priority order).
  std::function<void()> parent;
  // After fork, in the child (priority order). See the fork-safety notes above.
  std::function<void()> child;
  // In a forked child just before it _exit()s (RunChildExitHooks(), reverse
  // priority order). See "Child-exit handlers" above.
  std::function<void()> child_exit;
};

// A registered set of handlers. Move-only RAII handle: the destructor (or
// Reset()) unregisters, and blocks while a fork in another thread is running
// handlers, so that after it returns none of its handlers runs again.
// A default-constructed or moved-from registration holds nothing.
// Thread-compatible (one registration is not shared between threads; distinct
// registrations may be created and destroyed from any threads concurrently).
// After fork the child has its own copy of the registry: destroying a
// registration there unregisters from the child's registry only.
class AtForkRegistration {
 public:
  AtForkRegistration() = default;
  AtForkRegistration(AtForkRegistration&& other) noexcept;
  AtForkRegistration& operator=(AtForkRegistration&& other) noexcept;
  AtForkRegistration(const AtForkRegistration&) = delete;
  AtForkRegistration& operator=(const AtForkRegistration&) = delete;
  ~AtForkRegistration();

  // Unregisters now (no-op when empty). CHECK-fails inside an at-fork handler.
  void Reset();
  // Whether this handle holds a registration.
  bool registered() const { return id_ != 0; }

 private:
  friend AtForkRegistration RegisterAtFork(int priority,
                                           AtForkHandlers handlers);
  explicit AtForkRegistration(uint64_t id) : id_(id) {}
  uint64_t id_ = 0;
};

// Registers `handlers` at `priority` (see the ordering above) until the
// returned handle is destroyed. The first call installs the dispatching
// pthread_atfork() handlers (never removed; they are no-ops with an empty
// registry). Thread-safe. CHECK-fails when called from an at-fork handler or
// when pthread_atfork() fails (ENOMEM at process start).
[[nodiscard]] AtForkRegistration RegisterAtFork(int priority,
                                                AtForkHandlers handlers);

// Number of live registrations (for tests and diagnostics). Thread-safe.
int AtForkRegistrationCount();

// Runs the child_exit handler of every registration in this process (see
// "Child-exit handlers" above); a no-op when this process ran them already
// or none has one (then nothing is locked or written). Call it in a forked
// child right before _exit(). Thread-safe; CHECK-fails when called from a
// handler.
void RunChildExitHooks();

// RunChildExitHooks(), then FlushPendingStdio() and _exit(code): the way for
// a child made with ::fork() to end.
[[noreturn]] void ExitChild(int code);

// fflush of stdout and of stderr, each only when it holds buffered output:
// fflush writes the stream's lock and state, so around a fork it would cost
// a copy-on-write fault (in parent and child) for nothing. What callers use
// before a fork (so that no output is written twice) and before a child's
// _exit(). Thread-safe as fflush is.
void FlushPendingStdio();

}  // namespace taskfork

#endif  // TASKFORK_FORK_AT_FORK_H_
