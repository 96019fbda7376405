#include "runner/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"

namespace taskfork::runner {
namespace {

constexpr size_t kBlockSize = 512;
constexpr size_t kRecordSize = 10240;  // 20 blocks: tar's default record
constexpr size_t kBufferSize = 64 * 1024;

// Largest values of the octal fields: 11 digits (size, mtime), 7 (ids).
constexpr uint64_t kMaxOctal11 = 077777777777ULL;
constexpr uint64_t kMaxOctal7 = 07777777ULL;

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

// A gzip stream into a descriptor. Not movable: zlib's state points back at
// the z_stream.
class GzipWriter {
 public:
  GzipWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  GzipWriter(const GzipWriter&) = delete;
  GzipWriter& operator=(const GzipWriter&) = delete;
  ~GzipWriter() {
    if (initialized_) ::deflateEnd(&stream_);
  }

  absl::Status Init() {
    std::memset(&stream_, 0, sizeof(stream_));
    // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
    const int rc = ::deflateInit2(&stream_, Z_DEFAULT_COMPRESSION, Z_DEFLATED,
                                  15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (rc != Z_OK) return ZlibError("deflateInit2", rc);
    initialized_ = true;
    out_.resize(kBufferSize);
    return absl::OkStatus();
  }

  // Compresses `data` (uncompressed bytes) into the file.
  absl::Status Write(absl::string_view data) {
    stream_.next_in =
        reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    stream_.avail_in = static_cast<uInt>(data.size());
    while (stream_.avail_in > 0) {
      TASKFORK_RETURN_IF_ERROR(Deflate(Z_NO_FLUSH));
    }
    uncompressed_ += data.size();
    return absl::OkStatus();
  }

  // `count` NUL bytes.
  absl::Status WriteZeros(size_t count) {
    static const char kZeros[kBlockSize] = {};
    while (count > 0) {
      const size_t n = std::min(count, sizeof(kZeros));
      TASKFORK_RETURN_IF_ERROR(Write(absl::string_view(kZeros, n)));
      count -= n;
    }
    return absl::OkStatus();
  }

  // NULs up to the next multiple of `unit` uncompressed bytes.
  absl::Status PadTo(size_t unit) {
    const size_t rest = uncompressed_ % unit;
    return rest == 0 ? absl::OkStatus() : WriteZeros(unit - rest);
  }

  // Ends the gzip stream (trailer with CRC-32 and length).
  absl::Status Finish() {
    stream_.next_in = nullptr;
    stream_.avail_in = 0;
    while (true) {
      stream_.next_out = reinterpret_cast<Bytef*>(out_.data());
      stream_.avail_out = static_cast<uInt>(out_.size());
      const int rc = ::deflate(&stream_, Z_FINISH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
        return ZlibError("deflate", rc);
      }
      TASKFORK_RETURN_IF_ERROR(
          WriteAll(fd_, out_.data(), out_.size() - stream_.avail_out, path_));
      if (rc == Z_STREAM_END) return absl::OkStatus();
    }
  }

 private:
  absl::Status Deflate(int flush) {
    stream_.next_out = reinterpret_cast<Bytef*>(out_.data());
    stream_.avail_out = static_cast<uInt>(out_.size());
    const int rc = ::deflate(&stream_, flush);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return ZlibError("deflate", rc);
    return WriteAll(fd_, out_.data(), out_.size() - stream_.avail_out, path_);
  }

  absl::Status ZlibError(absl::string_view operation, int rc) const {
    return absl::InternalError(absl::StrCat(
        "zlib ", operation, " for ", path_, " failed: ",
        stream_.msg != nullptr ? stream_.msg : "", " (", rc, ")"));
  }

  int fd_;
  std::string path_;
  z_stream stream_;
  bool initialized_ = false;
  std::string out_;
  uint64_t uncompressed_ = 0;
};

// One tar member's header fields.
struct Member {
  std::string name;  // in the archive; directories end with '/'
  char type = '0';   // '0' file, '2' symlink, '5' directory, '6' FIFO
  mode_t mode = 0;
  uint64_t uid = 0;
  uint64_t gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;
  std::string link;  // symlink target
};

// Writes `value` as `width - 1` octal digits and a NUL into `field`.
// Returns false if it does not fit.
bool PutOctal(char* field, size_t width, uint64_t value) {
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = '\0';
  return value == 0;
}

void PutString(char* field, size_t width, absl::string_view value) {
  std::memcpy(field, value.data(), std::min(width, value.size()));
}

// Splits `name` into ustar's prefix (<= 155 bytes) and name (<= 100 bytes,
// not empty) at a '/'. False if no split fits.
bool SplitUstarName(const std::string& name, std::string* prefix,
                    std::string* rest) {
  if (name.size() <= 100) {
    prefix->clear();
    *rest = name;
    return true;
  }
  // The name part must not be empty: a directory's trailing '/' is not a
  // place to split.
  const size_t last = name.size() >= 2 ? name.size() - 2 : 0;
  for (size_t slash = name.rfind('/', last); slash != std::string::npos;
       slash = slash == 0 ? std::string::npos : name.rfind('/', slash - 1)) {
    if (name.size() - slash - 1 > 100) break;  // moving left only grows it
    if (slash <= 155) {
      *prefix = name.substr(0, slash);
      *rest = name.substr(slash + 1);
      return true;
    }
  }
  return false;
}

// "<length> <key>=<value>\n", the length counting itself.
std::string PaxRecord(absl::string_view key, absl::string_view value) {
  const size_t body = key.size() + value.size() + 3;  // ' ', '=', '\n'
  size_t length = body + 1;
  while (absl::StrCat(length).size() + body != length) {
    length = absl::StrCat(length).size() + body;
  }
  return absl::StrCat(length, " ", key, "=", value, "\n");
}

class TarWriter {
 public:
  TarWriter(GzipWriter* out, dev_t skip_dev, ino_t skip_ino)
      : out_(out), skip_dev_(skip_dev), skip_ino_(skip_ino) {}

  // Adds the directory open as `fd` (named `archive_name`, ending in '/')
  // and everything under it. `disk_path` names it in errors.
  absl::Status AddDirectory(int fd, const struct stat& st,
                            const std::string& archive_name,
                            const std::string& disk_path) {
    Member member = FromStat(st, archive_name, '5');
    TASKFORK_RETURN_IF_ERROR(WriteHeader(member));

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

  // Two zero blocks, then NULs to the end of the record.
  absl::Status Finish() {
    TASKFORK_RETURN_IF_ERROR(out_->WriteZeros(2 * kBlockSize));
    return out_->PadTo(kRecordSize);
  }

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
        Member member = FromStat(st, archive_name, '2');
        member.link = std::move(target);
        return WriteHeader(member);
      }
      case S_IFIFO:
        return WriteHeader(FromStat(st, archive_name, '6'));
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
    Member member = FromStat(st, archive_name, '0');
    member.size = static_cast<uint64_t>(st.st_size);
    TASKFORK_RETURN_IF_ERROR(WriteHeader(member));

    // Exactly member.size bytes, whatever happens to the file meanwhile.
    uint64_t left = member.size;
    buffer_.resize(kBufferSize);
    while (left > 0) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(left, buffer_.size()));
      const ssize_t n =
          RetryOnEintr([&] { return ::read(fd, buffer_.data(), want); });
      if (n < 0) return ErrnoError(errno, "read", disk_path);
      if (n == 0) {  // it shrank: NULs for what is missing
        TASKFORK_RETURN_IF_ERROR(out_->WriteZeros(static_cast<size_t>(left)));
        break;
      }
      TASKFORK_RETURN_IF_ERROR(
          out_->Write(absl::string_view(buffer_.data(), n)));
      left -= static_cast<uint64_t>(n);
    }
    return out_->PadTo(kBlockSize);
  }

  Member FromStat(const struct stat& st, const std::string& name, char type) {
    Member member;
    member.name = name;
    member.type = type;
    member.mode = st.st_mode & 07777;
    member.uid = st.st_uid;
    member.gid = st.st_gid;
    member.mtime = st.st_mtim.tv_sec;
    return member;
  }

  // A pax extended header for what ustar cannot hold, then the ustar header.
  absl::Status WriteHeader(const Member& member) {
    std::string prefix, name;
    std::string pax;
    if (!SplitUstarName(member.name, &prefix, &name)) {
      absl::StrAppend(&pax, PaxRecord("path", member.name));
      prefix.clear();
      name = member.name.substr(0, 100);
    }
    if (member.link.size() > 100) {
      absl::StrAppend(&pax, PaxRecord("linkpath", member.link));
    }
    if (member.size > kMaxOctal11) {
      absl::StrAppend(&pax, PaxRecord("size", absl::StrCat(member.size)));
    }
    if (member.uid > kMaxOctal7) {
      absl::StrAppend(&pax, PaxRecord("uid", absl::StrCat(member.uid)));
    }
    if (member.gid > kMaxOctal7) {
      absl::StrAppend(&pax, PaxRecord("gid", absl::StrCat(member.gid)));
    }
    if (member.mtime < 0 || static_cast<uint64_t>(member.mtime) > kMaxOctal11) {
      absl::StrAppend(&pax, PaxRecord("mtime", absl::StrCat(member.mtime)));
    }
    if (!pax.empty()) {
      Member extended;
      // Readers that do not know pax extract it as a plain file; name it
      // after the member (as GNU tar does: <dir>/PaxHeaders/<base>).
      extended.name = absl::StrCat(
          "PaxHeaders/", absl::string_view(member.name).substr(
                             member.name.size() > 80
                                 ? member.name.size() - 80
                                 : 0));
      extended.type = 'x';
      extended.mode = 0644;
      extended.mtime = std::max<int64_t>(0, member.mtime);
      extended.size = pax.size();
      TASKFORK_RETURN_IF_ERROR(WriteUstarHeader(extended, "", extended.name));
      TASKFORK_RETURN_IF_ERROR(out_->Write(pax));
      TASKFORK_RETURN_IF_ERROR(out_->PadTo(kBlockSize));
    }
    return WriteUstarHeader(member, prefix, name);
  }

  // The 512-byte ustar header; fields that overflow are 0 (a pax record
  // before it holds the real value).
  absl::Status WriteUstarHeader(const Member& member, const std::string& prefix,
                                const std::string& name) {
    char header[kBlockSize] = {};
    PutString(header + 0, 100, name);
    PutOctal(header + 100, 8, member.mode);
    if (!PutOctal(header + 108, 8, member.uid)) PutOctal(header + 108, 8, 0);
    if (!PutOctal(header + 116, 8, member.gid)) PutOctal(header + 116, 8, 0);
    if (!PutOctal(header + 124, 12, member.size)) PutOctal(header + 124, 12, 0);
    if (member.mtime < 0 ||
        !PutOctal(header + 136, 12, static_cast<uint64_t>(member.mtime))) {
      PutOctal(header + 136, 12, 0);
    }
    header[156] = member.type;
    PutString(header + 157, 100, member.link);
    std::memcpy(header + 257, "ustar", 6);  // with its NUL
    std::memcpy(header + 263, "00", 2);
    PutString(header + 265, 32, UserName(member.uid));
    PutString(header + 297, 32, GroupName(member.gid));
    PutOctal(header + 329, 8, 0);
    PutOctal(header + 337, 8, 0);
    PutString(header + 345, 155, prefix);
    // Checksum: the header's bytes with the checksum field as spaces, as six
    // octal digits, NUL, space.
    std::memset(header + 148, ' ', 8);
    uint64_t sum = 0;
    for (unsigned char byte : header) sum += byte;
    PutOctal(header + 148, 7, sum);
    header[155] = ' ';
    return out_->Write(absl::string_view(header, sizeof(header)));
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

  GzipWriter* out_;
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

  GzipWriter gzip(out_fd, temp_path);
  TASKFORK_RETURN_IF_ERROR(gzip.Init());
  TarWriter tar(&gzip, out_stat.st_dev, out_stat.st_ino);
  TASKFORK_RETURN_IF_ERROR(tar.AddDirectory(dir_fd, dir_stat, top + "/", dir));
  TASKFORK_RETURN_IF_ERROR(tar.Finish());
  TASKFORK_RETURN_IF_ERROR(gzip.Finish());
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
