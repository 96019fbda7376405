#include "ipc/wait.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "ipc/internal/sync.h"

namespace taskfork::ipc {

using ipc_internal::Deadline;
using ipc_internal::Event;
using ipc_internal::FutexWaiter;

WaitTarget::WaitTarget(Queue& queue) : queue_(&queue) {}
WaitTarget::WaitTarget(Pipe& pipe) : pipe_(&pipe) {}

bool WaitTarget::ReadyWithoutSyscall() const {
  if (queue_ != nullptr) return queue_->ring_.PublishedTailAhead() || queue_->closed();
  return pipe_->recv_.Readable();
}

bool WaitTarget::valid() const {
  return queue_ != nullptr ? queue_->shared_ != nullptr : !pipe_->closed();
}

Event* WaitTarget::event() const {
  return queue_ != nullptr ? &queue_->ring_.indices()->readable
                           : &pipe_->recv_.indices()->readable;
}

bool WaitTarget::Ready() const {
  return ReadyWithoutSyscall() || (pipe_ != nullptr && !pipe_->PeerAlive());
}

absl::StatusOr<size_t> WaitAny(absl::Span<const WaitTarget> targets,
                               absl::Duration timeout) {
  constexpr size_t kMaxTargets = 128;
  if (targets.empty() || targets.size() > kMaxTargets) {
    return absl::InvalidArgumentError(absl::StrCat(
        "WaitAny: ", targets.size(), " targets; give 1 to ", kMaxTargets));
  }
  std::vector<Event*> events;
  events.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    const WaitTarget& t = targets[i];
    if (!t.valid()) {
      return absl::InvalidArgumentError(
          absl::StrCat("WaitAny: target ", i, " is a closed or empty handle"));
    }
    events.push_back(t.event());
  }
  const Deadline deadline = Deadline::After(timeout);
  auto first_ready = [&](bool syscalls) -> int {
    for (size_t i = 0; i < targets.size(); ++i) {
      if (syscalls ? targets[i].Ready() : targets[i].ReadyWithoutSyscall()) {
        return static_cast<int>(i);
      }
    }
    return -1;
  };
  for (int spin = 0; spin < ipc_internal::Spinner::kMinSpin * 16; ++spin) {
    if (const int i = first_ready(false); i >= 0) return static_cast<size_t>(i);
    ipc_internal::CpuRelax();
  }
  std::vector<FutexWaiter> waiters(targets.size());
  for (;;) {
    if (const int i = first_ready(true); i >= 0) return static_cast<size_t>(i);
    if (deadline.Expired()) {
      return absl::DeadlineExceededError(
          absl::StrCat("WaitAny: none of ", targets.size(),
                       " targets became ready before the deadline"));
    }
    for (Event* event : events) event->Announce();
    const bool fenced = ipc_internal::HeavyBarrier();
    for (size_t i = 0; i < events.size(); ++i) {
      waiters[i] = {&events[i]->seq,
                    events[i]->seq.load(std::memory_order_seq_cst)};
    }
    if (first_ready(false) < 0) {
      ipc_internal::FutexWaitAny(
          waiters, deadline.CappedAt(fenced ? ipc_internal::kRecheck
                                            : ipc_internal::kRecheckUnfenced));
    }
  }
}

}  // namespace taskfork::ipc
