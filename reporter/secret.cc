#include "reporter/secret.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "base/fd.h"

namespace taskfork::reporter {

absl::StatusOr<std::string> CreateSecretFile(const std::string& path) {
  unsigned char bytes[kSecretBytes];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    const ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "getrandom for the reporter secret in", path);
    }
    got += static_cast<size_t>(n);
  }
  const std::string hex = absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(bytes), sizeof(bytes)));
  OwnedFd fd(RetryOnEintr([&] {
    return ::open(path.c_str(),
                  O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  }));
  if (!fd) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(absl::StrCat(
          "reporter secret file ", path,
          " exists (another run's?); it is never overwritten: remove it or "
          "use another runinfo directory"));
    }
    return ErrnoError(errno, "create reporter secret file", path);
  }
  // The umask cannot widen 0600, but a narrower one (0200 ...) would leave
  // the owner unable to read it.
  if (::fchmod(fd.get(), 0600) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    return ErrnoError(e, "chmod 0600", path);
  }
  const std::string line = hex + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fd.get(), line.data() + done, line.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::unlink(path.c_str());
      return ErrnoError(e, "write reporter secret file", path);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) {
    const int e = errno;
    ::unlink(path.c_str());
    return ErrnoError(e, "fsync reporter secret file", path);
  }
  return hex;
}

absl::StatusOr<std::string> ReadSecretFile(const std::string& path) {
  OwnedFd fd(RetryOnEintr(
      [&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); }));
  if (!fd) return ErrnoError(errno, "open reporter secret file", path);
  // A little more than a secret, to tell a longer file from a secret.
  char buf[2 * kSecretBytes + 16];
  size_t got = 0;
  while (got < sizeof(buf)) {
    const ssize_t n = ::read(fd.get(), buf + got, sizeof(buf) - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read reporter secret file", path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  const absl::string_view text =
      absl::StripAsciiWhitespace(absl::string_view(buf, got));
  if (text.size() != 2 * kSecretBytes ||
      !std::all_of(text.begin(), text.end(), absl::ascii_isxdigit)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reporter secret file ", path, " does not hold a secret (",
        2 * kSecretBytes, " hex digits); it is written by the reporter server"));
  }
  return absl::AsciiStrToLower(text);
}

bool SecretsEqual(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace taskfork::reporter
