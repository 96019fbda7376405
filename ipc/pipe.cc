#include "ipc/pipe.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <new>

#include "absl/strings/str_cat.h"
#include "base/errno.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc {

using ipc_internal::Deadline;
using ipc_internal::RingIndices;
using ipc_internal::RingView;
using ipc_internal::WaitResult;

namespace {

// The header of a pipe's segment: one ring per direction (ring[0] carries
// messages from the first end to the second). The rings' bytes follow.
struct PipeShared {
  uint64_t capacity = 0;
  RingIndices ring[2];
};

constexpr size_t kDataOffset = (sizeof(PipeShared) + 4095) & ~size_t{4095};
constexpr uint64_t kMaxCapacity = ipc_internal::kMaxRingCapacity;

absl::Status ClosedEnd(absl::string_view op) {
  return absl::FailedPreconditionError(
      absl::StrCat("Pipe::", op, ": this end is closed"));
}

absl::Status PeerGone(absl::string_view op) {
  return absl::UnavailableError(absl::StrCat(
      "Pipe::", op, ": the other end was closed or its process exited"));
}

}  // namespace

struct Pipe::State {
  std::shared_ptr<SharedMemory> shm;  // both ends in one process share it
  OwnedFd liveness;                   // our end of the socketpair
};

Pipe::Pipe() = default;
Pipe::Pipe(Pipe&&) noexcept = default;
Pipe& Pipe::operator=(Pipe&&) noexcept = default;
Pipe::~Pipe() = default;

absl::StatusOr<std::pair<Pipe, Pipe>> Pipe::Create(PipeOptions options) {
  if (options.capacity_bytes > kMaxCapacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("PipeOptions::capacity_bytes ", options.capacity_bytes,
                     " is over the limit of ", kMaxCapacity));
  }
  uint64_t capacity = 64;
  while (capacity < options.capacity_bytes) capacity <<= 1;
  TASKFORK_ASSIGN_OR_RETURN(
      SharedMemory shm, SharedMemory::CreateAnonymous(kDataOffset + 2 * capacity));
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    return ErrnoError(errno, "socketpair for a Pipe");
  }
  ipc_internal::CurrentWakeupMode();  // decided before the first message
  auto* shared = new (shm.data()) PipeShared;
  shared->capacity = capacity;
  char* data = static_cast<char*>(shm.data()) + kDataOffset;
  auto mapping = std::make_shared<SharedMemory>(std::move(shm));

  std::pair<Pipe, Pipe> ends;
  Pipe* both[2] = {&ends.first, &ends.second};
  for (int i = 0; i < 2; ++i) {
    Pipe& end = *both[i];
    end.state_ = std::make_unique<State>();
    end.state_->shm = mapping;
    end.state_->liveness.Reset(fds[i]);
    end.send_ = RingView(&shared->ring[i], data + i * capacity, capacity);
    end.recv_ = RingView(&shared->ring[1 - i], data + (1 - i) * capacity, capacity);
  }
  return ends;
}

bool Pipe::PeerAlive() const {
  if (state_ == nullptr) return false;
  pollfd pfd{state_->liveness.get(), POLLIN | POLLRDHUP, 0};
  const int rc = ::poll(&pfd, 1, 0);
  // Nobody ever writes to the socket: readability means end-of-file.
  return !(rc > 0 && (pfd.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR)));
}

void Pipe::Close() {
  state_.reset();
  send_ = RingView();
  recv_ = RingView();
}

absl::Status Pipe::Send(absl::string_view message, absl::Duration timeout) {
  if (state_ == nullptr) return ClosedEnd("Send");
  if (message.size() > send_.max_message_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Pipe::Send: message of ", message.size(),
        " bytes is larger than the maximum of ", send_.max_message_size(),
        " bytes: raise PipeOptions::capacity_bytes"));
  }
  if (ABSL_PREDICT_FALSE(!send_.TryPush(message))) {
    return SendSlow(message, timeout);
  }
  send_.indices()->readable.Notify();
  return absl::OkStatus();
}

absl::Status Pipe::SendSlow(absl::string_view message, absl::Duration timeout) {
  RingIndices& ix = *send_.indices();
  thread_local ipc_internal::Spinner spinner;
  const Deadline deadline = Deadline::After(timeout);
  const size_t size = message.size();
  do {
    const WaitResult result = ipc_internal::WaitFor(
        ix.writable, [&] { return send_.Writable(size); }, deadline,
        &spinner, [&] { return !PeerAlive(); });
    if (result == WaitResult::kAborted) return PeerGone("Send");
    if (result == WaitResult::kTimedOut) {
      return absl::DeadlineExceededError(
          "Pipe::Send: the pipe is still full at the deadline");
    }
  } while (!send_.TryPush(message));
  ix.readable.Notify();
  spinner.Learn(send_.Writable(size));
  return absl::OkStatus();
}

absl::Status Pipe::RecvInto(std::string* message, absl::Duration timeout) {
  if (state_ == nullptr) return ClosedEnd("Recv");
  if (ABSL_PREDICT_FALSE(!recv_.TryPop(message))) {
    return RecvSlow(message, timeout);
  }
  recv_.indices()->writable.Notify();
  return absl::OkStatus();
}

template <typename Take>
absl::Status Pipe::AwaitMessage(const char* op, absl::Duration timeout,
                                ipc_internal::Spinner* spinner, Take take) {
  RingIndices& ix = *recv_.indices();
  const Deadline deadline = Deadline::After(timeout);
  do {
    const WaitResult result = ipc_internal::WaitFor(
        ix.readable, [&] { return recv_.Readable(); }, deadline, spinner,
        [&] { return !PeerAlive(); });
    if (result != WaitResult::kReady) {
      // A peer may send and then exit: what it sent is still delivered.
      if (take()) break;
      if (result == WaitResult::kAborted) return PeerGone(op);
      return absl::DeadlineExceededError(absl::StrCat(
          "Pipe::", op, ": no message arrived before the deadline"));
    }
  } while (!take());
  return absl::OkStatus();
}

absl::Status Pipe::RecvSlow(std::string* message, absl::Duration timeout) {
  thread_local ipc_internal::Spinner spinner;
  TASKFORK_RETURN_IF_ERROR(AwaitMessage(
      "Recv", timeout, &spinner, [&] { return recv_.TryPop(message); }));
  recv_.indices()->writable.Notify();
  spinner.Learn(recv_.Readable());
  return absl::OkStatus();
}

absl::Status Pipe::Consume(
    absl::FunctionRef<absl::Status(const MessageView&)> fn,
    absl::Duration timeout) {
  if (state_ == nullptr) return ClosedEnd("Consume");
  thread_local ipc_internal::Spinner spinner;
  absl::string_view first, second;
  auto peek = [&] { return recv_.Peek(&first, &second); };
  uint64_t next = peek();
  const bool waited = next == 0;
  if (ABSL_PREDICT_FALSE(waited)) {
    TASKFORK_RETURN_IF_ERROR(AwaitMessage(
        "Consume", timeout, &spinner, [&] { return (next = peek()) != 0; }));
  }
  absl::Status status = fn(MessageView(first, second));
  recv_.Free(next);
  recv_.indices()->writable.Notify();
  if (waited) spinner.Learn(recv_.Readable());
  return status;
}

absl::StatusOr<std::string> Pipe::Recv(absl::Duration timeout) {
  std::string message;
  TASKFORK_RETURN_IF_ERROR(RecvInto(&message, timeout));
  return message;
}

absl::StatusOr<bool> Pipe::Poll(absl::Duration timeout) {
  if (state_ == nullptr) return ClosedEnd("Poll");
  if (recv_.Readable()) return true;
  thread_local ipc_internal::Spinner spinner;
  const WaitResult result = ipc_internal::WaitFor(
      recv_.indices()->readable, [&] { return recv_.Readable(); },
      Deadline::After(timeout), &spinner, [&] { return !PeerAlive(); });
  if (recv_.Readable()) return true;
  if (result == WaitResult::kAborted) return PeerGone("Poll");
  return false;
}

}  // namespace taskfork::ipc
