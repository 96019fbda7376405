// Status propagation macros that Abseil 20220623 does not ship.
//
//   absl::StatusOr<Config> Load(absl::string_view path) {
//     TASKFORK_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
//     TASKFORK_RETURN_IF_ERROR(Validate(text));
//     return Parse(text);
//   }
#ifndef TASKFORK_BASE_STATUS_MACROS_H_
#define TASKFORK_BASE_STATUS_MACROS_H_

#include <utility>

#include "absl/base/optimization.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace taskfork::base_internal {

inline const absl::Status& AsStatus(const absl::Status& status) {
  return status;
}
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace taskfork::base_internal

// Evaluates `expr` (an absl::Status or absl::StatusOr<T>) once; if it is not
// OK, returns its status from the enclosing function.
#define TASKFORK_RETURN_IF_ERROR(expr)                                  \
  do {                                                                  \
    auto&& taskfork_status_ = (expr);                                   \
    if (ABSL_PREDICT_FALSE(!taskfork_status_.ok())) {                   \
      return ::taskfork::base_internal::AsStatus(taskfork_status_);     \
    }                                                                   \
  } while (false)

// Evaluates `rexpr` (an absl::StatusOr<T>) once; if it is not OK, returns its
// status from the enclosing function, else moves the value into `lhs`, which
// may be a declaration (`auto x`, `std::string s`) or an existing lvalue.
// A `lhs` containing commas must be parenthesised:
//   TASKFORK_ASSIGN_OR_RETURN((std::pair<int, int> p), MakePair());
#define TASKFORK_ASSIGN_OR_RETURN(lhs, rexpr)                             \
  TASKFORK_ASSIGN_OR_RETURN_IMPL_(                                        \
      TASKFORK_STATUS_CONCAT_(taskfork_status_or_, __LINE__), lhs, rexpr)

#define TASKFORK_ASSIGN_OR_RETURN_IMPL_(status_or, lhs, rexpr) \
  auto status_or = (rexpr);                                     \
  if (ABSL_PREDICT_FALSE(!status_or.ok())) {                    \
    return std::move(status_or).status();                       \
  }                                                             \
  TASKFORK_STATUS_UNPAREN_(lhs) = std::move(status_or).value()

#define TASKFORK_STATUS_CONCAT_INNER_(a, b) a##b
#define TASKFORK_STATUS_CONCAT_(a, b) TASKFORK_STATUS_CONCAT_INNER_(a, b)
// Removes one pair of parentheses if there is one: (a, b) -> a, b; a -> a.
#define TASKFORK_STATUS_UNPAREN_(x) \
  TASKFORK_STATUS_ESCAPE_(TASKFORK_STATUS_ISH_ x)
#define TASKFORK_STATUS_ISH_(...) TASKFORK_STATUS_ISH_ __VA_ARGS__
#define TASKFORK_STATUS_ESCAPE_(...) TASKFORK_STATUS_ESCAPE_INNER_(__VA_ARGS__)
#define TASKFORK_STATUS_ESCAPE_INNER_(...) TASKFORK_STATUS_VAN##__VA_ARGS__
#define TASKFORK_STATUS_VANTASKFORK_STATUS_ISH_

#endif  // TASKFORK_BASE_STATUS_MACROS_H_
