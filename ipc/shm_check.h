// CheckSharedMemory: a preflight of /dev/shm before anything relies on it.
//
//   ShmReport report;
//   absl::Status status = CheckSharedMemory(ShmCheckOptions(), &report);
//   if (!status.ok()) LOG(ERROR) << status;   // says what is wrong and the fix
#ifndef TASKFORK_IPC_SHM_CHECK_H_
#define TASKFORK_IPC_SHM_CHECK_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace taskfork::ipc {

struct ShmCheckOptions {
  // The directory to check; POSIX shared memory lives in /dev/shm on Linux.
  std::string path = "/dev/shm";
  // Fail with kResourceExhausted when less than this many bytes are free.
  uint64_t min_free_bytes = 1 << 20;
};

// What CheckSharedMemory found (filled as far as it got, also on failure).
struct ShmReport {
  std::string path;
  bool exists = false;
  mode_t mode = 0;  // permission bits, e.g. 01777
  bool is_tmpfs = false;
  bool writable = false;     // a probe file could be created and sized
  uint64_t total_bytes = 0;  // size of the file system
  uint64_t free_bytes = 0;   // bytes available to this user
};

// Checks, in this order, that `options.path` exists (else kNotFound), is a
// directory (else kFailedPrecondition), has mode 1777 like drwxrwxrwt (else
// kPermissionDenied), is writable by this user: a probe file can be created
// and 4 KiB reserved in it (else kPermissionDenied for EACCES/EROFS,
// kResourceExhausted for ENOSPC), and has at least `options.min_free_bytes`
// free (else kResourceExhausted). Every error message names the path, what is
// wrong and the command that fixes it. If `report` is not null it is filled.
// Leaves nothing behind in `options.path`. Thread-safe; not async-signal-safe.
absl::Status CheckSharedMemory(const ShmCheckOptions& options = {},
                               ShmReport* report = nullptr);

// One line per field of `report`, for humans ("mode: 1777 (drwxrwxrwt)").
std::string FormatShmReport(const ShmReport& report);

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_SHM_CHECK_H_
