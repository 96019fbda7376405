// The system calls a forked child makes between fork() and the body, made
// without calling into libc on x86-64.
//
// Why: fork() copies the parent's page-table entries only for memory that
// has anonymous pages; the pages of libc's (and our) code are file-backed,
// so the child maps each 64 KiB window of code it runs afresh, one page
// fault per window (the kernel maps the rest of the window with it). Each
// libc wrapper the setup called (sigaction, close, __fpending,
// pthread_mutex_unlock) was such a window: about a third of a trivial
// Process child's 16 page faults, and one fault costs 0.3 to 35 us
// depending on the machine (35 on a VM without nested paging). An inline
// `syscall` instruction runs from the caller's own code.
//
// Every function returns what the kernel returns: >= 0 on success, -errno on
// failure (errno is not set). Async-signal-safe. Elsewhere than x86-64 they
// call the libc wrappers (same results, the faults stay).
//
//   if (long rc = child_syscalls::SetPgid(0, 0); rc < 0) Fail(-rc);
#ifndef TASKFORK_FORK_INTERNAL_CHILD_SYSCALLS_H_
#define TASKFORK_FORK_INTERNAL_CHILD_SYSCALLS_H_

#include <fcntl.h>
#include <signal.h>
#include <stdio_ext.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <mutex>  // NOLINT: std::mutex is a plain pthread mutex.
#include <new>

#include "base/sanitizers.h"

namespace taskfork::fork_internal::child_syscalls {

#if defined(__x86_64__)

inline long Syscall(long nr, long a1 = 0, long a2 = 0, long a3 = 0,
                    long a4 = 0) {
  long ret;
  register long r10 asm("r10") = a4;
  asm volatile("syscall"
               : "=a"(ret)
               : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10)
               : "rcx", "r11", "memory");
  return ret;
}

// The kernel's struct sigaction on x86-64 (not libc's: its mask is 8 bytes).
struct KernelSigaction {
  void (*handler)(int);
  unsigned long flags;
  void (*restorer)();
  uint64_t mask;
};

inline long SetPgid(pid_t pid, pid_t pgid) {
  return Syscall(SYS_setpgid, pid, pgid);
}
// SIG_DFL, no flags, nothing blocked during a handler (there is none).
inline long SetSignalDefault(int signo) {
  KernelSigaction action{SIG_DFL, 0, nullptr, 0};
  return Syscall(SYS_rt_sigaction, signo, reinterpret_cast<long>(&action), 0,
                 sizeof(action.mask));
}
inline long UnblockAllSignals() {
  uint64_t none = 0;
  return Syscall(SYS_rt_sigprocmask, SIG_SETMASK,
                 reinterpret_cast<long>(&none), 0, sizeof(none));
}
inline long Prctl(int option, unsigned long arg) {
  return Syscall(SYS_prctl, option, static_cast<long>(arg));
}
inline pid_t GetPid() { return static_cast<pid_t>(Syscall(SYS_getpid)); }
inline pid_t GetPpid() { return static_cast<pid_t>(Syscall(SYS_getppid)); }
inline long Kill(pid_t pid, int signo) {
  return Syscall(SYS_kill, pid, signo);
}
inline long Open(const char* path, int flags) {
  return Syscall(SYS_openat, AT_FDCWD, reinterpret_cast<long>(path), flags);
}
inline long Dup2(int from, int to) { return Syscall(SYS_dup2, from, to); }
inline long Close(int fd) { return Syscall(SYS_close, fd); }
inline long Fcntl(int fd, int command, long arg) {
  return Syscall(SYS_fcntl, fd, command, arg);
}
inline long Write(int fd, const void* data, size_t size) {
  return Syscall(SYS_write, fd, reinterpret_cast<long>(data),
                 static_cast<long>(size));
}
inline long Writev(int fd, const iovec* parts, int count) {
  return Syscall(SYS_writev, fd, reinterpret_cast<long>(parts), count);
}
[[noreturn]] inline void Exit(int code) {
  for (;;) Syscall(SYS_exit_group, code);
}

#else  // The libc wrappers.

inline long Result(long rc) { return rc < 0 ? -errno : rc; }
inline long SetPgid(pid_t pid, pid_t pgid) {
  return Result(::setpgid(pid, pgid));
}
inline long SetSignalDefault(int signo) {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  return Result(::sigaction(signo, &action, nullptr));
}
inline long UnblockAllSignals() {
  sigset_t none;
  sigemptyset(&none);
  return Result(::sigprocmask(SIG_SETMASK, &none, nullptr));
}
inline long Prctl(int option, unsigned long arg) {
  return Result(::prctl(option, arg));
}
inline pid_t GetPid() { return ::getpid(); }
inline pid_t GetPpid() { return ::getppid(); }
inline long Kill(pid_t pid, int signo) { return Result(::kill(pid, signo)); }
inline long Open(const char* path, int flags) {
  return Result(::open(path, flags));
}
inline long Dup2(int from, int to) { return Result(::dup2(from, to)); }
inline long Close(int fd) { return Result(::close(fd)); }
inline long Fcntl(int fd, int command, long arg) {
  return Result(::fcntl(fd, command, arg));
}
inline long Write(int fd, const void* data, size_t size) {
  return Result(::write(fd, data, size));
}
inline long Writev(int fd, const iovec* parts, int count) {
  return Result(::writev(fd, parts, count));
}
[[noreturn]] inline void Exit(int code) { ::_exit(code); }

#endif

// Whether `stream` holds buffered output (what __fpending tells), read from
// glibc's FILE without calling it; a wide-oriented stream asks __fpending.
inline bool HasPendingOutput(FILE* stream) {
#if defined(__GLIBC__)
  if (stream->_mode <= 0) return stream->_IO_write_ptr > stream->_IO_write_base;
#endif
  return ::__fpending(stream) > 0;
}

}  // namespace taskfork::fork_internal::child_syscalls

namespace taskfork::fork_internal {

// Unlocks `mu` in a fresh fork child, where the one thread left holds it
// (taken in a prepare handler) and nobody can be waiting for it: an unlocked
// std::mutex (all zero, constant-initialized) is written over it, as glibc
// repairs its own locks in the child, instead of calling
// pthread_mutex_unlock, whose code would be faulted in. Under TSan, which
// tracks who holds what, it is unlocked.
inline void ResetHeldMutexInChild(std::mutex* mu) {
  if constexpr (kThreadSanitizer) {
    mu->unlock();
  } else {
    new (mu) std::mutex;
  }
}

}  // namespace taskfork::fork_internal

#endif  // TASKFORK_FORK_INTERNAL_CHILD_SYSCALLS_H_
