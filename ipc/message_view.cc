#include "ipc/message_view.h"

#include <string>

#include "absl/strings/string_view.h"

namespace taskfork::ipc {

absl::string_view MessageView::Flatten(std::string* scratch) const {
  if (contiguous()) return first_;
  CopyTo(scratch);
  return *scratch;
}

void MessageView::CopyTo(std::string* out) const {
  out->reserve(size());
  out->assign(first_.data(), first_.size());
  out->append(second_.data(), second_.size());
}

}  // namespace taskfork::ipc
