#include "ipc/shm_check.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/errno.h"
#include "base/fd.h"

namespace taskfork::ipc {
namespace {

std::string ModeString(mode_t mode) {
  std::string s = "d---------";
  const char kBits[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (mode & (0400 >> i)) s[1 + i] = kBits[i];
  }
  if (mode & S_ISVTX) s[9] = (mode & S_IXOTH) ? 't' : 'T';
  return s;
}

// Creates a nameless probe file in `path` and reserves 4 KiB in it.
absl::Status Probe(const std::string& path) {
  OwnedFd fd(::open(path.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  std::string named;
  if (!fd.valid() && (errno == EOPNOTSUPP || errno == EISDIR)) {
    named = absl::StrCat(path, "/.taskfork-shm-check-", ::getpid());
    fd.Reset(::open(named.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600));
    if (fd.valid()) ::unlink(named.c_str());
  }
  if (!fd.valid()) {
    const int error = errno;
    const absl::Status base = ErrnoError(error, "create a file in", path);
    if (error == EROFS) {
      return absl::PermissionDeniedError(absl::StrCat(
          base.message(), "; it is mounted read-only: mount -o remount,rw ",
          path));
    }
    if (error == EACCES || error == EPERM) {
      return absl::PermissionDeniedError(absl::StrCat(
          base.message(), "; this user (uid ", ::getuid(),
          ") may not write there: chmod 1777 ", path));
    }
    if (error == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          base.message(), "; it is full: remove stale files from it or ",
          "mount -o remount,size=<bytes> ", path));
    }
    return base;
  }
  const int rc = ::posix_fallocate(fd.get(), 0, 4096);
  if (rc != 0) {
    const absl::Status base = ErrnoError(rc, "reserve 4096 bytes in", path);
    if (rc == ENOSPC) {
      return absl::ResourceExhaustedError(absl::StrCat(
          base.message(), "; it is full: remove stale files from it or ",
          "mount -o remount,size=<bytes> ", path));
    }
    return base;
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckSharedMemory(const ShmCheckOptions& options,
                               ShmReport* report) {
  ShmReport local;
  ShmReport& r = report != nullptr ? *report : local;
  r = ShmReport();
  r.path = options.path;
  const std::string& path = options.path;

  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) {
      return absl::NotFoundError(absl::StrCat(
          path, " does not exist; POSIX shared memory needs it: mkdir -p ",
          path, " && mount -t tmpfs -o mode=1777 tmpfs ", path));
    }
    return ErrnoError(errno, "stat", path);
  }
  r.exists = true;
  r.mode = st.st_mode & 07777;
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " is not a directory: rm ", path, " && mkdir ", path,
        " && mount -t tmpfs -o mode=1777 tmpfs ", path));
  }
  if (r.mode != 01777) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "%s has mode %04o (%s) but needs 1777 (drwxrwxrwt) so that every user "
        "can create shared memory: chmod 1777 %s",
        path, r.mode, ModeString(r.mode), path));
  }
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) == 0) r.is_tmpfs = fs.f_type == TMPFS_MAGIC;
  struct statvfs vfs;
  if (::statvfs(path.c_str(), &vfs) != 0) {
    return ErrnoError(errno, "statvfs", path);
  }
  r.total_bytes = static_cast<uint64_t>(vfs.f_blocks) * vfs.f_frsize;
  r.free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;

  if (absl::Status probe = Probe(path); !probe.ok()) return probe;
  r.writable = true;

  if (r.free_bytes < options.min_free_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, " has ", r.free_bytes, " bytes free of ", r.total_bytes,
        ", fewer than the ", options.min_free_bytes,
        " required: remove stale files from it or mount -o remount,size=<bytes> ",
        path));
  }
  return absl::OkStatus();
}

std::string FormatShmReport(const ShmReport& r) {
  std::string out = absl::StrCat("path: ", r.path, "\n");
  if (!r.exists) return absl::StrCat(out, "exists: no\n");
  absl::StrAppend(&out, "exists: yes\n",
                  absl::StrFormat("mode: %04o (%s)\n", r.mode, ModeString(r.mode)),
                  "tmpfs: ", r.is_tmpfs ? "yes" : "no", "\n",
                  "writable: ", r.writable ? "yes" : "no", "\n",
                  "total_bytes: ", r.total_bytes, "\n",
                  "free_bytes: ", r.free_bytes, "\n");
  return out;
}

}  // namespace taskfork::ipc
