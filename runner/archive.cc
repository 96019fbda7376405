#include "runner/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <archive.h>
#include <archive_entry.h>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "glog/logging.h"

namespace taskfork::runner {
namespace {

constexpr size_t kBufferSize = 64 * 1024;

// Writes all of `data` to `fd`; errors name `path`.
absl::Status WriteAll(int fd, const char* data, size_t size,
                      const std::string& path) {
  while (size > 0) {
    const ssize_t n = RetryOnEintr([&] { return ::write(fd, data, size); });
    if (n < 0) return ErrnoError(errno, "write", path);
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// A libarchive writer of a gzip-compressed pax (ustar where it suffices)
// stream into a descriptor; a write error keeps its errno-named status.
// Not movable: libarchive holds a pointer to it.
class ArchiveOut {
 public:
  ArchiveOut(int fd, std::string path)
      : fd_(fd), path_(std::move(path)), archive_(archive_write_new()) {}
  ArchiveOut(const ArchiveOut&) = delete;
  ArchiveOut& operator=(const ArchiveOut&) = delete;
  ~ArchiveOut() {
    if (archive_ != nullptr) archive_write_free(archive_);
  }

  absl::Status Open() {
    if (archive_ == nullptr) {
      return absl::ResourceExhaustedError("archive_write_new: out of memory");
    }
    TASKFORK_RETURN_IF_ERROR(
        Check(archive_write_set_format_pax_restricted(archive_), "format"));
    TASKFORK_RETURN_IF_ERROR(
        Check(archive_write_add_filter_gzip(archive_), "gzip filter"));
    // No NUL padding after the gzip stream (gzip -d calls it trailing
    // garbage); the tar stream inside ends with its two zero blocks.
    TASKFORK_RETURN_IF_ERROR(
        Check(archive_write_set_bytes_in_last_block(archive_, 1), "blocking"));
    return Check(archive_write_open2(archive_, this, nullptr, &ArchiveOut::Write,
                                     nullptr, nullptr),
                 "open");
  }

  absl::Status Header(archive_entry* entry) {
    return Check(archive_write_header(archive_, entry), "write header to");
  }

  absl::Status Data(const char* data, size_t size) {
    while (size > 0) {
      const la_ssize_t n = archive_write_data(archive_, data, size);
      if (n < 0) return Check(ARCHIVE_FATAL, "write");
      data += n;
      size -= static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  absl::Status Close() { return Check(archive_write_close(archive_), "close"); }

 private:
  static la_ssize_t Write(archive* a, void* self, const void* data,
                          size_t size) {
    auto* out = static_cast<ArchiveOut*>(self);
    out->status_ =
        WriteAll(out->fd_, static_cast<const char*>(data), size, out->path_);
    if (!out->status_.ok()) {
      archive_set_error(a, EIO, "%s", "write failed");
      return -1;
    }
    return static_cast<la_ssize_t>(size);
  }

  // ARCHIVE_OK and ARCHIVE_WARN (e.g. a name not in the locale's charset,
  // stored as raw bytes) go on; a write error's own status wins.
  absl::Status Check(int rc, absl::string_view operation) {
    if (rc == ARCHIVE_OK || rc == ARCHIVE_WARN) return absl::OkStatus();
    if (!status_.ok()) return status_;
    const char* message = archive_error_string(archive_);
    return absl::InternalError(absl::StrCat(
        "libarchive ", operation, " ", path_, ": ",
        message != nullptr ? message : "unknown error"));
  }

  int fd_;
  std::string path_;
  archive* archive_;
  absl::Status status_;
};

// An archive_entry freed on scope exit.
struct EntryDeleter {
  void operator()(archive_entry* entry) const { archive_entry_free(entry); }
};
using Entry = std::unique_ptr<archive_entry, EntryDeleter>;

class TarWriter {
 public:
  TarWriter(ArchiveOut* out, dev_t skip_dev, ino_t skip_ino)
      : out_(out), skip_dev_(skip_dev), skip_ino_(skip_ino) {}

  // Adds the directory open as `fd` (named `archive_name`, ending in '/')
  // and everything under it. `disk_path` names it in errors.
  absl::Status AddDirectory(int fd, const struct stat& st,
                            const std::string& archive_name,
                            const std::string& disk_path) {
    TASKFORK_RETURN_IF_ERROR(
        out_->Header(FromStat(st, archive_name, AE_IFDIR).get()));

    const int list_fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (list_fd < 0) return ErrnoError(errno, "dup", disk_path);
    DIR* dir = ::fdopendir(list_fd);
    if (dir == nullptr) {
      const int error = errno;
      ::close(list_fd);
      return ErrnoError(error, "fdopendir", disk_path);
    }
    std::vector<std::string> names;
    errno = 0;
    while (const dirent* entry = ::readdir(dir)) {
      const absl::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
      errno = 0;
    }
    const int read_error = errno;
    ::closedir(dir);
    if (read_error != 0) return ErrnoError(read_error, "readdir", disk_path);
    std::sort(names.begin(), names.end());

    for (const std::string& name : names) {
      TASKFORK_RETURN_IF_ERROR(AddEntry(fd, name, archive_name + name,
                                        absl::StrCat(disk_path, "/", name)));
    }
    return absl::OkStatus();
  }

  // Two zero blocks, the end of the gzip stream.
  absl::Status Finish() { return out_->Close(); }

 private:
  // One entry `name` of the directory `dir_fd`.
  absl::Status AddEntry(int dir_fd, const std::string& name,
                        const std::string& archive_name,
                        const std::string& disk_path) {
    struct stat st;
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return absl::OkStatus();  // gone meanwhile
      return ErrnoError(errno, "lstat", disk_path);
    }
    if (st.st_dev == skip_dev_ && st.st_ino == skip_ino_) {
      return absl::OkStatus();  // the archive being written
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR: {
        const int fd = ::openat(
            dir_fd, name.c_str(),
            O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
          if (errno == ENOENT) return absl::OkStatus();
          return ErrnoError(errno, "open", disk_path);
        }
        OwnedFd owned(fd);
        if (::fstat(fd, &st) != 0) return ErrnoError(errno, "fstat", disk_path);
        return AddDirectory(fd, st, archive_name + "/", disk_path);
      }
      case S_IFREG:
        return AddFile(dir_fd, name, archive_name, disk_path);
      case S_IFLNK: {
        std::string target(256, '\0');
        while (true) {
          const ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(),
                                         target.size());
          if (n < 0) {
            if (errno == ENOENT) return absl::OkStatus();
            return ErrnoError(errno, "readlink", disk_path);
          }
          if (static_cast<size_t>(n) < target.size()) {
            target.resize(static_cast<size_t>(n));
            break;
          }
          target.resize(target.size() * 2);
        }
        Entry entry = FromStat(st, archive_name, AE_IFLNK);
        archive_entry_copy_symlink(entry.get(), target.c_str());
        return out_->Header(entry.get());
      }
      case S_IFIFO:
        return out_->Header(FromStat(st, archive_name, AE_IFIFO).get());
      default:  // sockets, devices: not archived
        return absl::OkStatus();
    }
  }

  absl::Status AddFile(int dir_fd, const std::string& name,
                       const std::string& archive_name,
                       const std::string& disk_path) {
    // O_NONBLOCK: if a FIFO took the file's place, do not wait for a writer.
    const int fd = ::openat(dir_fd, name.c_str(),
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return absl::OkStatus();
      return ErrnoError(errno, "open", disk_path);
    }
    OwnedFd owned(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0) return ErrnoError(errno, "fstat", disk_path);
    if (!S_ISREG(st.st_mode)) return absl::OkStatus();  // replaced meanwhile
    Entry entry = FromStat(st, archive_name, AE_IFREG);
    archive_entry_set_size(entry.get(), st.st_size);
    TASKFORK_RETURN_IF_ERROR(out_->Header(entry.get()));

    // Exactly st_size bytes, whatever happens to the file meanwhile.
    uint64_t left = static_cast<uint64_t>(st.st_size);
    buffer_.resize(kBufferSize);
    while (left > 0) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(left, buffer_.size()));
      const ssize_t n =
          RetryOnEintr([&] { return ::read(fd, buffer_.data(), want); });
      if (n < 0) return ErrnoError(errno, "read", disk_path);
      if (n == 0) {  // it shrank: NULs for what is missing
        std::fill(buffer_.begin(), buffer_.end(), '\0');
        while (left > 0) {
          const size_t zeros =
              static_cast<size_t>(std::min<uint64_t>(left, buffer_.size()));
          TASKFORK_RETURN_IF_ERROR(out_->Data(buffer_.data(), zeros));
          left -= zeros;
        }
        break;
      }
      TASKFORK_RETURN_IF_ERROR(
          out_->Data(buffer_.data(), static_cast<size_t>(n)));
      left -= static_cast<uint64_t>(n);
    }
    return absl::OkStatus();
  }

  // An entry `name` of type `type` (AE_IF*) with `st`'s mode bits, owner
  // (numbers and names) and mtime in whole seconds.
  Entry FromStat(const struct stat& st, const std::string& name,
                 unsigned int type) {
    Entry entry(archive_entry_new());
    CHECK(entry != nullptr) << "archive_entry_new: out of memory";
    archive_entry_copy_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), st.st_mode & 07777);
    archive_entry_set_uid(entry.get(), st.st_uid);
    archive_entry_set_gid(entry.get(), st.st_gid);
    archive_entry_copy_uname(entry.get(), UserName(st.st_uid).c_str());
    archive_entry_copy_gname(entry.get(), GroupName(st.st_gid).c_str());
    archive_entry_set_mtime(entry.get(), st.st_mtim.tv_sec, 0);
    return entry;
  }

  // The user name of `uid` (tar records it beside the number), "" if none.
  const std::string& UserName(uint64_t uid) {
    auto [it, inserted] = user_names_.try_emplace(uid);
    if (inserted) {
      char buffer[4096];
      struct passwd entry;
      struct passwd* found = nullptr;
      if (::getpwuid_r(static_cast<uid_t>(uid), &entry, buffer, sizeof(buffer),
                       &found) == 0 &&
          found != nullptr && std::strlen(found->pw_name) < 32) {
        it->second = found->pw_name;
      }
    }
    return it->second;
  }

  const std::string& GroupName(uint64_t gid) {
    auto [it, inserted] = group_names_.try_emplace(gid);
    if (inserted) {
      char buffer[4096];
      struct group entry;
      struct group* found = nullptr;
      if (::getgrgid_r(static_cast<gid_t>(gid), &entry, buffer, sizeof(buffer),
                       &found) == 0 &&
          found != nullptr && std::strlen(found->gr_name) < 32) {
        it->second = found->gr_name;
      }
    }
    return it->second;
  }

  ArchiveOut* out_;
  dev_t skip_dev_;
  ino_t skip_ino_;
  std::string buffer_;
  std::map<uint64_t, std::string> user_names_;
  std::map<uint64_t, std::string> group_names_;
};

// The last path component of `dir` ("runs/x/" -> "x").
std::string BaseName(const std::string& dir) {
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

absl::Status WriteTarGz(const std::string& dir, const std::string& out_path) {
  if (dir.empty() || out_path.empty()) {
    return absl::InvalidArgumentError(
        "WriteTarGz needs a directory and an output path");
  }
  // Resolves "latest", ".", "..": the top-level entry is the real name.
  std::string top = BaseName(dir);
  if (top == "." || top == ".." || top == "/" || top.empty()) {
    char* real = ::realpath(dir.c_str(), nullptr);
    if (real == nullptr) return ErrnoError(errno, "realpath", dir);
    top = BaseName(real);
    std::free(real);
    if (top == "/") {
      return absl::InvalidArgumentError("cannot archive the root directory /");
    }
  }
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError(errno, "open directory to archive", dir);
  OwnedFd owned_dir(dir_fd);
  struct stat dir_stat;
  if (::fstat(dir_fd, &dir_stat) != 0) return ErrnoError(errno, "fstat", dir);

  std::string temp_path = absl::StrCat(out_path, ".tmp-XXXXXX");
  const int out_fd = ::mkostemp(temp_path.data(), O_CLOEXEC);
  if (out_fd < 0) {
    return ErrnoError(errno, "create archive", temp_path);
  }
  OwnedFd out(out_fd);
  bool keep = false;
  absl::Cleanup remove_temp = [&] {
    if (!keep) ::unlink(temp_path.c_str());
  };
  struct stat out_stat;
  if (::fstat(out_fd, &out_stat) != 0) {
    return ErrnoError(errno, "fstat", temp_path);
  }
  if (::fchmod(out_fd, 0644) != 0) return ErrnoError(errno, "chmod", temp_path);

  ArchiveOut archive(out_fd, temp_path);
  TASKFORK_RETURN_IF_ERROR(archive.Open());
  TarWriter tar(&archive, out_stat.st_dev, out_stat.st_ino);
  TASKFORK_RETURN_IF_ERROR(tar.AddDirectory(dir_fd, dir_stat, top + "/", dir));
  TASKFORK_RETURN_IF_ERROR(tar.Finish());
  if (::fsync(out_fd) != 0) return ErrnoError(errno, "fsync", temp_path);
  if (::close(out.Release()) != 0 && errno != EINTR) {
    return ErrnoError(errno, "close", temp_path);
  }
  if (::rename(temp_path.c_str(), out_path.c_str()) != 0) {
    return ErrnoError(errno, absl::StrCat("rename ", temp_path, " to"),
                      out_path);
  }
  keep = true;
  return absl::OkStatus();
}

}  // namespace taskfork::runner
