#include "base/errno.h"

#include <string.h>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace taskfork {

const char* ErrnoName(int errno_value) {
  const char* name = ::strerrorname_np(errno_value);
  return name != nullptr ? name : "unknown errno";
}

absl::Status ErrnoError(int errno_value, absl::string_view operation,
                        absl::string_view subject) {
  CHECK_NE(errno_value, 0) << "ErrnoError(0) for " << operation << " "
                           << subject;
  char buffer[256];
  const char* description = ::strerror_r(errno_value, buffer, sizeof(buffer));
  const absl::Status mapped = absl::ErrnoToStatus(errno_value, "");
  return absl::Status(
      mapped.code(),
      absl::StrCat(operation, subject.empty() ? "" : " ", subject, ": ",
                   description, " [", ErrnoName(errno_value), "]"));
}

}  // namespace taskfork
