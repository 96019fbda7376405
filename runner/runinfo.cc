#include "runner/runinfo.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"

extern char** environ;

namespace taskfork::runner {
namespace {

std::string AbsolutePath(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return path.empty() ? cwd : absl::StrCat(cwd, "/", path);
}


}  // namespace

bool IsValidRunInfoName(absl::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' ||
                  c == ':';
         });
}

absl::Status MakeDirectories(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    const std::string prefix =
        slash == std::string::npos ? path : path.substr(0, slash);
    if (::mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError(errno, "mkdir", prefix);
    }
    if (slash == std::string::npos) break;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat", path);
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<RunInfo> RunInfo::Create(const RunInfoOptions& options) {
  const std::string root = AbsolutePath(options.root);
  TASKFORK_RETURN_IF_ERROR(MakeDirectories(root));
  const std::string stamp = absl::FormatTime("%Y%m%d-%H%M%E6S", options.start,
                                             absl::LocalTimeZone());
  std::string uid = absl::StrCat(options.job_name, ".", stamp);
  std::string dir = absl::StrCat(root, "/", uid);
  for (int attempt = 2; ::mkdir(dir.c_str(), 0755) != 0; ++attempt) {
    if (errno != EEXIST || attempt > 1000) return ErrnoError(errno, "mkdir", dir);
    uid = absl::StrCat(options.job_name, ".", stamp, "-", attempt);
    dir = absl::StrCat(root, "/", uid);
  }
  // latest -> uid, replaced atomically (symlink to a temporary name, rename).
  const std::string latest = absl::StrCat(root, "/latest");
  const std::string temporary = absl::StrCat(latest, ".", ::getpid());
  ::unlink(temporary.c_str());
  if (::symlink(uid.c_str(), temporary.c_str()) != 0) {
    return ErrnoError(errno, "symlink", temporary);
  }
  if (::rename(temporary.c_str(), latest.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return ErrnoError(error, "rename to", latest);
  }
  return RunInfo(std::move(uid), std::move(dir));
}

std::string RunInfo::Path(absl::string_view name) const {
  return absl::StrCat(dir_, "/", name);
}

absl::Status RunInfo::WriteFile(absl::string_view name,
                                absl::string_view contents) const {
  return WriteFileAtomically(Path(name), contents);
}

absl::Status RunInfo::WriteEnvironment(
    const std::vector<std::string>& argv) const {
  std::string text;
  absl::StrAppend(&text, "argv: ", absl::StrJoin(argv, " "), "\n");
  const passwd* user = ::getpwuid(::getuid());
  absl::StrAppend(&text, "user: ", user != nullptr ? user->pw_name : "?",
                  " (uid ", ::getuid(), ")\n");
  utsname host;
  if (::uname(&host) == 0) {
    absl::StrAppend(&text, "host: ", host.nodename, "\n", "kernel: ",
                    host.sysname, " ", host.release, " ", host.machine, "\n");
  }
  absl::StrAppend(&text, "cwd: ", AbsolutePath(""), "\n");
  absl::StrAppend(&text, "cpus: ", ::sysconf(_SC_NPROCESSORS_ONLN), "\n");
  absl::StrAppend(&text, "started: ",
                  absl::FormatTime(absl::RFC3339_full, absl::Now(),
                                   absl::LocalTimeZone()),
                  "\n\nenvironment:\n");
  std::vector<std::string> variables;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    variables.emplace_back(*entry);
  }
  std::sort(variables.begin(), variables.end());
  absl::StrAppend(&text, absl::StrJoin(variables, "\n"), "\n");
  return WriteFile("env.txt", text);
}

}  // namespace taskfork::runner
