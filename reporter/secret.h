// The per-run reporter secret: what a client connecting over TCP proves it
// may report with (a Unix-socket client is checked by uid instead).
//
//   TASKFORK_ASSIGN_OR_RETURN(std::string s, CreateSecretFile(dir + "/reporter.secret"));
//   TASKFORK_ASSIGN_OR_RETURN(std::string t, ReadSecretFile(dir + "/reporter.secret"));
//   bool same = SecretsEqual(s, t);  // constant time
//
// The file holds kSecretBytes from getrandom(2), hex-encoded, and a newline.
// It is created with mode 0600, so only its owner (and root) can read it on
// every host that mounts the directory. It is not encryption: the secret and
// the reports travel in clear text over TCP.
#ifndef TASKFORK_REPORTER_SECRET_H_
#define TASKFORK_REPORTER_SECRET_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork::reporter {

// The secret file's name in the runinfo directory.
inline constexpr char kSecretFileName[] = "reporter.secret";
// Random bytes in a secret (twice as many hex digits in the file).
inline constexpr size_t kSecretBytes = 32;

// Creates `path` (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600) holding a fresh
// secret and returns the secret (hex). Never overwrites: an existing file is
// kAlreadyExists naming the path. Other errors: the errno's code naming the
// path (kPermissionDenied, kNotFound for a missing directory, ...) or
// getrandom.
absl::StatusOr<std::string> CreateSecretFile(const std::string& path);

// Reads the secret (hex) from `path`. Errors: the errno's code naming the
// path (kNotFound, kPermissionDenied); kInvalidArgument naming the path when
// it does not hold 2 * kSecretBytes hex digits.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path);

// Whether `a` and `b` are equal, in time that depends only on their sizes.
bool SecretsEqual(absl::string_view a, absl::string_view b);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_SECRET_H_
