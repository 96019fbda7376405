// SharedMemory: a mapped POSIX shared-memory segment (anonymous or named).
//
//   TASKFORK_ASSIGN_OR_RETURN(SharedMemory shm, SharedMemory::CreateAnonymous(1 << 20));
//   std::memcpy(shm.data(), "hi", 2);   // a child forked now sees the same bytes
//   // unmapped (and, for a named segment, unlinked by its creator) on destruction
#ifndef TASKFORK_IPC_SHARED_MEMORY_H_
#define TASKFORK_IPC_SHARED_MEMORY_H_

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork::ipc {

// The directory that backs POSIX shared memory on Linux (glibc's shm_open
// creates its objects here; anonymous segments are O_TMPFILE files here).
inline constexpr char kSharedMemoryDir[] = "/dev/shm";

// A mapping of a shared-memory segment (MAP_SHARED, read-write).
//
// Space is reserved up front with posix_fallocate, so a full /dev/shm is a
// kResourceExhausted error from Create*(), never a SIGBUS on first touch.
//
// Ownership and fork: move-only. A forked child inherits the mapping (same
// physical pages); each process unmaps its own copy on destruction. A named
// segment is unlinked on destruction only by the SharedMemory that created it
// and only in the creating process (a child's inherited copy never unlinks),
// unless set_unlink_on_destroy(false) was called.
// Thread safety: thread-compatible (the bytes themselves are shared: the
// caller synchronises access to them).
class SharedMemory {
 public:
  // An empty handle (data() == nullptr, size() == 0).
  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept;
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory();

  // Creates a zero-filled segment of `size` bytes with no name (an O_TMPFILE
  // file in /dev/shm: nothing is ever left in /dev/shm, even after a crash).
  // Only processes forked after this call (which inherit it) can use it.
  // Errors: kInvalidArgument (size 0), kNotFound (/dev/shm missing),
  // kPermissionDenied (/dev/shm not writable or read-only), kResourceExhausted
  // (/dev/shm full, too many open files, address space). Messages name the fix.
  static absl::StatusOr<SharedMemory> CreateAnonymous(size_t size);

  // Creates the named segment `name` ("/name" or "name"; no other '/', at
  // most 255 bytes) of `size` zero-filled bytes with permission `mode`, for
  // unrelated processes to OpenNamed(). Errors as CreateAnonymous, plus
  // kAlreadyExists (the name is taken) and kInvalidArgument (bad name).
  static absl::StatusOr<SharedMemory> CreateNamed(absl::string_view name,
                                                  size_t size,
                                                  mode_t mode = 0600);

  // Maps the existing named segment `name` (its whole size). Errors:
  // kNotFound (no such segment), kPermissionDenied, kInvalidArgument (bad
  // name), kFailedPrecondition (the segment has size 0: its creator has not
  // sized it yet).
  static absl::StatusOr<SharedMemory> OpenNamed(absl::string_view name);

  // Removes the name `name` from /dev/shm (mappings stay valid). Errors:
  // kNotFound, kPermissionDenied, kInvalidArgument.
  static absl::Status Unlink(absl::string_view name);

  // A fresh name "/taskfork-<prefix>-<pid>-<counter>-<random>" that no other
  // call in any process returns. Thread-safe.
  static std::string UniqueName(absl::string_view prefix);

  // The first byte of the mapping (page-aligned), or nullptr if empty.
  void* data() const { return data_; }
  // The mapped size in bytes.
  size_t size() const { return size_; }
  // The segment's name with its leading '/', or "" for an anonymous segment.
  const std::string& name() const { return name_; }

  // Whether destruction (in the creating process) unlinks the name. Default:
  // true for CreateNamed, false for OpenNamed and anonymous segments.
  void set_unlink_on_destroy(bool unlink) { unlink_on_destroy_ = unlink; }

 private:
  SharedMemory(void* data, size_t size, std::string name, bool unlink);
  void Reset();

  void* data_ = nullptr;
  size_t size_ = 0;
  std::string name_;
  bool unlink_on_destroy_ = false;
  pid_t creator_pid_ = 0;
};

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_SHARED_MEMORY_H_
