#include "tasklog/internal/glog_lock.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/single_threaded.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <thread>  // NOLINT: the probe needs a thread of its own.

#include "absl/base/attributes.h"
#include "glog/logging.h"

namespace taskfork::tasklog_internal {
namespace {

// glibc's rwlock state bits (nptl/pthread_rwlock_common.c): __readers holds
// WRPHASE (1), WRLOCKED (2), RWAITING (4) and the reader count from bit 3.
constexpr unsigned kWrLocked = 2;

constexpr int kMaxCandidates = 8;

struct Candidates {
  pthread_rwlock_t* address[kMaxCandidates];
  int count = 0;
  bool overflow = false;
};

pid_t Gettid() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// Whether `lock` looks write-locked by thread `tid`.
ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS __attribute__((no_sanitize("thread"))) bool
WriteHeldBy(const pthread_rwlock_t* lock, pid_t tid) {
  const volatile auto* data = &lock->__data;
  return data->__cur_writer == tid && (data->__readers & kWrLocked) != 0 &&
         data->__shared == 0 && data->__flags <= 2;
}

struct ScanRequest {
  const void* code_address;  // an address inside glog's code
  pid_t tid;
  Candidates* out;
};

// dl_iterate_phdr callback: in the object whose segments contain
// request->code_address, records every 8-aligned rwlock in a writable
// segment that is write-held by request->tid.
ABSL_ATTRIBUTE_NO_SANITIZE_ADDRESS __attribute__((no_sanitize("thread"))) int
ScanObject(dl_phdr_info* info, size_t, void* data) {
  auto* request = static_cast<ScanRequest*>(data);
  const auto code = reinterpret_cast<uintptr_t>(request->code_address);
  bool contains_code = false;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    if (code >= start && code < start + ph.p_memsz) contains_code = true;
  }
  if (!contains_code) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    const uintptr_t start =
        (info->dlpi_addr + ph.p_vaddr + alignof(pthread_rwlock_t) - 1) &
        ~(uintptr_t{alignof(pthread_rwlock_t)} - 1);
    const uintptr_t end = info->dlpi_addr + ph.p_vaddr + ph.p_memsz;
    for (uintptr_t p = start; p + sizeof(pthread_rwlock_t) <= end;
         p += alignof(pthread_rwlock_t)) {
      auto* lock = reinterpret_cast<pthread_rwlock_t*>(p);
      if (!WriteHeldBy(lock, request->tid)) continue;
      if (request->out->count == kMaxCandidates) {
        request->out->overflow = true;
        return 1;
      }
      request->out->address[request->out->count++] = lock;
    }
  }
  return 1;  // the object was found: stop iterating
}

// Receives the probe message: glog calls send() with its lock held.
class ProbeSink : public google::LogSink {
 public:
  void send(google::LogSeverity, const char*, const char*, int,
            const google::LogMessageTime&, const char*, size_t) override {
    // The caller is glog's LogMessage code, so the return address lies in
    // the object (libglog.so, or the executable if linked statically) whose
    // data holds the lock.
    ScanRequest request{__builtin_return_address(0), Gettid(), &found};
    ::dl_iterate_phdr(&ScanObject, &request);
  }
  Candidates found;
};

// One probe round in the calling thread: the candidates write-held by this
// thread inside send() and released after it returned.
Candidates ProbeOnce() {
  ProbeSink sink;
  LOG_TO_SINK_BUT_NOT_TO_LOGFILE(&sink, INFO) << "taskfork tasklog probe";
  Candidates released;
  if (sink.found.overflow) {
    released.overflow = true;
    return released;
  }
  const pid_t tid = Gettid();
  for (int i = 0; i < sink.found.count; ++i) {
    if (!WriteHeldBy(sink.found.address[i], tid)) {
      released.address[released.count++] = sink.found.address[i];
    }
  }
  return released;
}

// Both probe rounds, in the calling thread; the one candidate, or nullptr.
pthread_rwlock_t* Probe() {
  // LogMessage::Flush drops messages below --minloglevel before locking.
  const int32_t saved_minloglevel = FLAGS_minloglevel;
  if (saved_minloglevel > 0) FLAGS_minloglevel = 0;
  const Candidates first = ProbeOnce();
  const Candidates second = ProbeOnce();
  if (saved_minloglevel > 0) FLAGS_minloglevel = saved_minloglevel;
  if (first.overflow || second.overflow) return nullptr;
  int matches = 0;
  pthread_rwlock_t* result = nullptr;
  for (int i = 0; i < first.count; ++i) {
    for (int j = 0; j < second.count; ++j) {
      if (first.address[i] == second.address[j]) {
        ++matches;
        result = first.address[i];
      }
    }
  }
  return matches == 1 ? result : nullptr;
}

// The probe in a forked child (whose thread id is a fresh one too), which
// sends the address back through a pipe. Only for a single-threaded process:
// no other thread can hold glog's lock (or the time-zone lock glog's LOG
// takes) at this fork. Returns false if the child could not be made or
// answer, so that the caller falls back to the thread probe.
bool ProbeInChild(pthread_rwlock_t** result) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return false;
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return false;
  }
  if (pid == 0) {
    ::close(fds[0]);
    pthread_rwlock_t* found = Probe();
    const ssize_t n = ::write(fds[1], &found, sizeof(found));
    ::_exit(n == sizeof(found) ? 0 : 1);
  }
  ::close(fds[1]);
  pthread_rwlock_t* found = nullptr;
  size_t got = 0;
  while (got < sizeof(found)) {
    const ssize_t n =
        ::read(fds[0], reinterpret_cast<char*>(&found) + got, sizeof(found) - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fds[0]);
  // ECHILD (SIGCHLD ignored: reaped by the kernel) changes nothing.
  while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  if (got != sizeof(found)) return false;
  *result = found;
  return true;
}

}  // namespace

GlogLock GlogLock::Find() {
  pthread_rwlock_t* result = nullptr;
  // A fresh thread id is needed: the process id, which glog may keep in its
  // data, must not pass for the writer. A single-threaded process probes in
  // a forked child rather than in a new thread: once a process made a
  // thread, glibc treats it as multi-threaded for good, and its every fork()
  // then locks and resets malloc's arenas (the thread's new one too), the
  // stdio list and nss state in parent and child, which for a runner that
  // forks a process per task costs pages written (copy-on-write faults) in
  // both at each fork.
  if (__libc_single_threaded && ProbeInChild(&result)) {
    return GlogLock(result);
  }
  std::thread probe([&result] { result = Probe(); });
  probe.join();
  return GlogLock(result);
}

bool GlogLock::LockForFork() const {
  if (lock_ == nullptr) return false;
  // EDEADLK: this thread already holds it (fork from inside a LogSink).
  return ::pthread_rwlock_wrlock(lock_) == 0;
}

void GlogLock::UnlockInParent() const { ::pthread_rwlock_unlock(lock_); }

void GlogLock::UnlockInChild() const {
  // glibc's unlock takes the writer path only when __cur_writer is the
  // caller's thread id; the child's thread has a new one.
  lock_->__data.__cur_writer = static_cast<int>(Gettid());
  ::pthread_rwlock_unlock(lock_);
}

}  // namespace taskfork::tasklog_internal
