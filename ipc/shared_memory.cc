#include "ipc/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <random>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"

namespace taskfork::ipc {
namespace {

// An error for a failed /dev/shm operation, with the code the style guide
// asks for and the fix in the message.
absl::Status ShmError(int errno_value, absl::string_view operation,
                      absl::string_view subject) {
  const absl::Status base = ErrnoError(errno_value, operation, subject);
  switch (errno_value) {
    case ENOSPC:
      return absl::ResourceExhaustedError(absl::StrCat(
          base.message(), "; /dev/shm is full: remove stale files from it or ",
          "enlarge it (mount -o remount,size=<bytes> /dev/shm)"));
    case EROFS:
      return absl::PermissionDeniedError(
          absl::StrCat(base.message(),
                       "; /dev/shm is read-only: mount -o remount,rw /dev/shm"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(
          base.message(), "; /dev/shm must be writable by every user: ",
          "chmod 1777 /dev/shm"));
    case ENOMEM:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(base.message());
    default:
      return base;
  }
}

absl::StatusOr<std::string> NormalizeName(absl::string_view name) {
  std::string normalized =
      absl::StartsWith(name, "/") ? std::string(name) : absl::StrCat("/", name);
  if (normalized.size() < 2 || normalized.size() > 255 ||
      normalized.find('/', 1) != std::string::npos ||
      normalized.find('\0') != std::string::npos || normalized == "/." ||
      normalized == "/..") {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid shared-memory name \"", name,
        "\": use 1 to 254 characters other than '/' and NUL, optionally "
        "after one leading '/'"));
  }
  return normalized;
}

absl::Status Reserve(int fd, size_t size, absl::string_view what) {
  // posix_fallocate returns the error number instead of setting errno.
  const int error = RetryOnEintr([&] {
    const int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (rc == 0) return 0;
    errno = rc;
    return -1;
  });
  if (error != 0) {
    return ShmError(errno, absl::StrCat("posix_fallocate ", size, " bytes for"),
                    what);
  }
  return absl::OkStatus();
}

absl::StatusOr<void*> Map(int fd, size_t size, absl::string_view what) {
  // MAP_POPULATE: the pages are allocated already (posix_fallocate); map
  // them now so the first pass over the segment takes no page faults.
  void* data = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, fd, 0);
  if (data == MAP_FAILED) return ShmError(errno, "mmap", what);
  return data;
}

}  // namespace

SharedMemory::SharedMemory(void* data, size_t size, std::string name,
                           bool unlink)
    : data_(data),
      size_(size),
      name_(std::move(name)),
      unlink_on_destroy_(unlink),
      creator_pid_(::getpid()) {}

SharedMemory::SharedMemory(SharedMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      name_(std::move(other.name_)),
      unlink_on_destroy_(std::exchange(other.unlink_on_destroy_, false)),
      creator_pid_(other.creator_pid_) {
  other.name_.clear();
}

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    name_ = std::move(other.name_);
    other.name_.clear();
    unlink_on_destroy_ = std::exchange(other.unlink_on_destroy_, false);
    creator_pid_ = other.creator_pid_;
  }
  return *this;
}

SharedMemory::~SharedMemory() { Reset(); }

void SharedMemory::Reset() {
  if (data_ != nullptr) ::munmap(data_, size_);
  if (unlink_on_destroy_ && !name_.empty() && ::getpid() == creator_pid_) {
    ::shm_unlink(name_.c_str());
  }
  data_ = nullptr;
  size_ = 0;
  name_.clear();
  unlink_on_destroy_ = false;
}

absl::StatusOr<SharedMemory> SharedMemory::CreateAnonymous(size_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError("shared-memory segment of size 0");
  }
  OwnedFd fd(::open(kSharedMemoryDir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid() && (errno == EOPNOTSUPP || errno == EISDIR)) {
    // No O_TMPFILE on this file system: a named file unlinked at once.
    const std::string name = UniqueName("anon");
    fd.Reset(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600));
    if (fd.valid()) ::shm_unlink(name.c_str());
  }
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          kSharedMemoryDir, " does not exist: mkdir -p /dev/shm && mount -t ",
          "tmpfs -o mode=1777 tmpfs /dev/shm"));
    }
    return ShmError(errno, "create anonymous segment in", kSharedMemoryDir);
  }
  const std::string what =
      absl::StrCat("anonymous segment in ", kSharedMemoryDir);
  TASKFORK_RETURN_IF_ERROR(Reserve(fd.get(), size, what));
  TASKFORK_ASSIGN_OR_RETURN(void* data, Map(fd.get(), size, what));
  return SharedMemory(data, size, "", false);
}

absl::StatusOr<SharedMemory> SharedMemory::CreateNamed(absl::string_view name,
                                                       size_t size,
                                                       mode_t mode) {
  TASKFORK_ASSIGN_OR_RETURN(std::string normalized, NormalizeName(name));
  if (size == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared-memory segment ", normalized, " of size 0"));
  }
  OwnedFd fd(::shm_open(normalized.c_str(), O_RDWR | O_CREAT | O_EXCL, mode));
  if (!fd.valid()) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(
          "shm_open ", normalized, ": a segment of that name exists (remove ",
          kSharedMemoryDir, normalized, " if it is stale)"));
    }
    return ShmError(errno, "shm_open", normalized);
  }
  // From here on the name is ours: remove it again if anything fails.
  SharedMemory result(nullptr, 0, normalized, true);
  TASKFORK_RETURN_IF_ERROR(Reserve(fd.get(), size, normalized));
  TASKFORK_ASSIGN_OR_RETURN(result.data_, Map(fd.get(), size, normalized));
  result.size_ = size;
  return result;
}

absl::StatusOr<SharedMemory> SharedMemory::OpenNamed(absl::string_view name) {
  TASKFORK_ASSIGN_OR_RETURN(std::string normalized, NormalizeName(name));
  OwnedFd fd(::shm_open(normalized.c_str(), O_RDWR, 0));
  if (!fd.valid()) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("shm_open ", normalized, ": no such segment in ",
                       kSharedMemoryDir));
    }
    return ShmError(errno, "shm_open", normalized);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ShmError(errno, "fstat", normalized);
  if (st.st_size == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "shared-memory segment ", normalized,
        " has size 0: its creator has not finished creating it"));
  }
  const size_t size = static_cast<size_t>(st.st_size);
  TASKFORK_ASSIGN_OR_RETURN(void* data, Map(fd.get(), size, normalized));
  return SharedMemory(data, size, normalized, false);
}

absl::Status SharedMemory::Unlink(absl::string_view name) {
  TASKFORK_ASSIGN_OR_RETURN(std::string normalized, NormalizeName(name));
  if (::shm_unlink(normalized.c_str()) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("shm_unlink ", normalized, ": no such segment"));
    }
    return ShmError(errno, "shm_unlink", normalized);
  }
  return absl::OkStatus();
}

std::string SharedMemory::UniqueName(absl::string_view prefix) {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = std::random_device{}();
  return absl::StrCat("/taskfork-", prefix, "-", ::getpid(), "-",
                      counter.fetch_add(1, std::memory_order_relaxed), "-",
                      absl::Hex(salt ^ reinterpret_cast<uintptr_t>(&counter)));
}

}  // namespace taskfork::ipc
