// Typed messages over a Queue or a Pipe: values encoded with //serialize
// (any T with serialize::kIsSerializable<T>). Kept apart from queue.h and
// pipe.h so that code moving bytes does not compile the codec.
//
//   TASKFORK_RETURN_IF_ERROR(ipc::PutValue(queue, std::make_pair(1, 2)));
//   TASKFORK_ASSIGN_OR_RETURN(auto pair,
//                             (ipc::GetValue<std::pair<int, int>>(queue)));
//
// Each message holds one Encode<T>() (header + value, serialize/FORMAT.md),
// so a receiver asking for another type gets kInvalidArgument, not garbage.
// Thread-safety, fork- and crash-behaviour are those of the Queue or Pipe.
#ifndef TASKFORK_IPC_TYPED_H_
#define TASKFORK_IPC_TYPED_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "ipc/pipe.h"
#include "ipc/queue.h"
#include "serialize/serialize.h"

namespace taskfork::ipc {

// Puts serialize::Encode(value) into `queue`; errors as Queue::Put's.
template <typename T>
absl::Status PutValue(Queue& queue, const T& value,
                      absl::Duration timeout = absl::InfiniteDuration()) {
  return queue.Put(serialize::Encode(value), timeout);
}

// Gets one message from `queue` and decodes it as a T. Errors: Queue::Get's,
// then serialize::Decode's (kInvalidArgument for bytes of another type,
// kDataLoss for corrupt bytes); the message is consumed either way. It copies
// the bytes out and decodes after releasing the consumers' lock, so
// consumers decode in parallel; to decode in place instead (one copy fewer,
// with the lock held), call serialize::Decode<T>(m.Flatten(&scratch)) in
// Queue::Consume.
template <typename T>
absl::StatusOr<T> GetValue(Queue& queue,
                           absl::Duration timeout = absl::InfiniteDuration()) {
  TASKFORK_ASSIGN_OR_RETURN(std::string bytes, queue.Get(timeout));
  return serialize::Decode<T>(bytes);
}

// Sends serialize::Encode(value) on `pipe`; errors as Pipe::Send's.
template <typename T>
absl::Status SendValue(Pipe& pipe, const T& value,
                       absl::Duration timeout = absl::InfiniteDuration()) {
  return pipe.Send(serialize::Encode(value), timeout);
}

// Receives one message on `pipe` and decodes it as a T. Errors: Pipe::Recv's,
// then serialize::Decode's (as GetValue); the message is consumed either way.
template <typename T>
absl::StatusOr<T> RecvValue(Pipe& pipe,
                            absl::Duration timeout = absl::InfiniteDuration()) {
  TASKFORK_ASSIGN_OR_RETURN(std::string bytes, pipe.Recv(timeout));
  return serialize::Decode<T>(bytes);
}

}  // namespace taskfork::ipc

#endif  // TASKFORK_IPC_TYPED_H_
