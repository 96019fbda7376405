// MessageView: a message still in a queue's or pipe's shared memory, read in
// place by Queue::Consume and Pipe::Consume.
//
//   queue.Consume([&](const MessageView& m) {
//     return Use(m.Flatten(&scratch));  // copies only if the message wrapped
//   });
#ifndef TASKFORK_IPC_MESSAGE_VIEW_H_
#define TASKFORK_IPC_MESSAGE_VIEW_H_

#include <cstddef>
#include <string>

#include "absl/strings/string_view.h"

namespace taskfork::ipc {

// A message read in place from shared memory (Queue::Consume,
// Pipe::Consume): at most two pieces, because a message that wraps around
// the end of a ring is split there. Valid only during the callback it is
// passed to. Copyable; it owns nothing.
class MessageView {
 public:
  MessageView(absl::string_view first, absl::string_view second)
      : first_(first), second_(second) {}

  size_t size() const { return first_.size() + second_.size(); }
  bool empty() const { return size() == 0; }
  // The message's bytes: first() then second() (empty unless it wrapped).
  absl::string_view first() const { return first_; }
  absl::string_view second() const { return second_; }
  bool contiguous() const { return second_.empty(); }
  // The whole message as one view: first() itself when it is contiguous,
  // otherwise a copy into *scratch.
  absl::string_view Flatten(std::string* scratch) const;
  // Copies the message into *out (replacing its contents).
  void CopyTo(std::string* out) const;

 private:
  absl::string_view first_, second_;
};

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_MESSAGE_VIEW_H_
