// Small OS helpers shared by //fork's Process and Supervisor: pidfd system
// calls (Linux >= 5.3, called through syscall(2): glibc 2.36 has no
// wrappers) and reading a small /proc file.
//
//   long pidfd = fork_internal::PidfdOpen(pid);       // -1 and errno on error
//   fork_internal::PidfdSendSignal(pidfd, SIGTERM);
//   std::string children = fork_internal::ReadSmallFile("/proc/self/task/1/children");
#ifndef TASKFORK_FORK_INTERNAL_OS_H_
#define TASKFORK_FORK_INTERNAL_OS_H_

#include <sys/types.h>

#include <string>

namespace taskfork::fork_internal {

// pidfd_open(pid, 0): an O_CLOEXEC pidfd, or -1 with errno set (ENOSYS
// before Linux 5.3, ESRCH when there is no such process). Thread-safe.
long PidfdOpen(pid_t pid);

// pidfd_send_signal(pidfd, signo, nullptr, 0): 0, or -1 with errno set
// (ESRCH once the process has exited). Thread-safe; async-signal-safe.
int PidfdSendSignal(int pidfd, int signo);

// The whole content of a small file (e.g. under /proc), read through an
// O_CLOEXEC descriptor (std::ifstream does not set O_CLOEXEC, so a concurrent
// fork+exec could leak it). Empty when it cannot be opened; what was read
// before a read error. Thread-safe.
std::string ReadSmallFile(const std::string& path);

}  // namespace taskfork::fork_internal

#endif  // TASKFORK_FORK_INTERNAL_OS_H_
