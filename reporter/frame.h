// Length-prefixed protobuf frames: the reporter's wire format.
//
//   std::string out;
//   AppendFrame(message, &out);                 // 4-byte LE length + payload
//   FrameDecoder decoder(kDefaultMaxFrameSize);  decoder.Append(bytes);
//   while (auto frame = decoder.Next(&msg); frame.ok() && *frame) Use(msg);
//
// Grammar (reporter/README.md):
//   stream  := frame*
//   frame   := length:uint32-little-endian payload:byte[length]
//   payload := a serialized ClientMessage / ServerMessage / ControlRequest /
//              ControlReply (which one depends on the channel and direction)
// A frame whose length exceeds the receiver's maximum is rejected before its
// payload is read; the connection is then closed.
#ifndef TASKFORK_REPORTER_FRAME_H_
#define TASKFORK_REPORTER_FRAME_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "google/protobuf/message_lite.h"

namespace taskfork::reporter {

// Bytes in a frame header.
inline constexpr size_t kFrameHeaderSize = 4;
// Default largest payload a server or client accepts (16 MiB).
inline constexpr uint32_t kDefaultMaxFrameSize = 16u << 20;

// Appends one frame holding `message` to `*out`. CHECK-fails if the message
// is 4 GiB or larger (the length would not fit). Thread-compatible.
void AppendFrame(const google::protobuf::MessageLite& message, std::string* out);

// Incremental decoder of a frame stream (one per connection). Bytes go in
// with Append() or WritableSpace()+Commit() (to read(2) into it directly);
// complete frames come out with Next(). The first error is sticky: Next()
// keeps returning it. Thread-compatible; not async-signal-safe.
class FrameDecoder {
 public:
  // `max_frame_size`: the largest payload accepted (> 0).
  explicit FrameDecoder(uint32_t max_frame_size = kDefaultMaxFrameSize);

  FrameDecoder(FrameDecoder&&) = default;
  FrameDecoder& operator=(FrameDecoder&&) = default;

  // Copies `bytes` to the end of the buffer.
  void Append(absl::string_view bytes);
  // Returns at least `min_size` writable bytes at the end of the buffer;
  // call Commit(n) with how many of them were filled. Invalidated by any
  // other call.
  absl::Span<char> WritableSpace(size_t min_size);
  void Commit(size_t n);

  // The next complete frame's payload, or std::nullopt if the buffer holds
  // only part of one. The view is valid until the next non-const call.
  // Errors: kResourceExhausted when the header announces more than the
  // maximum frame size (the payload is never buffered).
  absl::StatusOr<std::optional<absl::string_view>> NextPayload();

  // Like NextPayload(), and parses the payload into `*message` (cleared
  // first). Returns true when a message was parsed, false when more bytes
  // are needed. Errors: kResourceExhausted (oversize), kDataLoss (the
  // payload is not a valid `message`).
  absl::StatusOr<bool> Next(google::protobuf::MessageLite* message);

  // Call at end of stream: OK when no partial frame is buffered, kDataLoss
  // ("connection closed in the middle of a frame: got 7 of 130 bytes")
  // otherwise, or the sticky error.
  absl::Status Finish() const;

  // Bytes buffered and not yet returned as frames.
  size_t buffered() const { return end_ - begin_; }

 private:
  uint32_t max_frame_size_;
  std::string buffer_;
  size_t begin_ = 0;  // first unconsumed byte
  size_t end_ = 0;    // one past the last valid byte
  absl::Status status_;
};

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_FRAME_H_
