#include "reporter/frame.h"

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace taskfork::reporter {
namespace {

uint32_t DecodeLength(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint32_t>(u[0]) | (static_cast<uint32_t>(u[1]) << 8) |
         (static_cast<uint32_t>(u[2]) << 16) |
         (static_cast<uint32_t>(u[3]) << 24);
}

}  // namespace

void AppendFrame(const google::protobuf::MessageLite& message,
                 std::string* out) {
  const size_t size = message.ByteSizeLong();
  CHECK_LE(size, std::numeric_limits<uint32_t>::max())
      << "frame payload too large: " << size << " bytes";
  const size_t old_size = out->size();
  out->resize(old_size + kFrameHeaderSize + size);
  char* p = &(*out)[old_size];
  p[0] = static_cast<char>(size & 0xff);
  p[1] = static_cast<char>((size >> 8) & 0xff);
  p[2] = static_cast<char>((size >> 16) & 0xff);
  p[3] = static_cast<char>((size >> 24) & 0xff);
  message.SerializeWithCachedSizesToArray(
      reinterpret_cast<uint8_t*>(p + kFrameHeaderSize));
}

FrameDecoder::FrameDecoder(uint32_t max_frame_size)
    : max_frame_size_(max_frame_size) {
  CHECK_GT(max_frame_size, 0u);
}

absl::Span<char> FrameDecoder::WritableSpace(size_t min_size) {
  if (begin_ == end_) begin_ = end_ = 0;
  if (buffer_.size() - end_ < min_size) {
    // Compact first; grow only if that is not enough.
    if (begin_ > 0) {
      std::memmove(&buffer_[0], &buffer_[begin_], end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    if (buffer_.size() - end_ < min_size) buffer_.resize(end_ + min_size);
  }
  return absl::Span<char>(&buffer_[end_], buffer_.size() - end_);
}

void FrameDecoder::Commit(size_t n) {
  CHECK_LE(end_ + n, buffer_.size());
  end_ += n;
}

void FrameDecoder::Append(absl::string_view bytes) {
  if (bytes.empty()) return;
  absl::Span<char> space = WritableSpace(bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  Commit(bytes.size());
}

absl::StatusOr<std::optional<absl::string_view>> FrameDecoder::NextPayload() {
  if (!status_.ok()) return status_;
  if (end_ - begin_ < kFrameHeaderSize) return std::nullopt;
  const uint32_t length = DecodeLength(&buffer_[begin_]);
  if (length > max_frame_size_) {
    status_ = absl::ResourceExhaustedError(
        absl::StrCat("frame of ", length, " bytes exceeds the maximum of ",
                     max_frame_size_, " bytes"));
    return status_;
  }
  if (end_ - begin_ - kFrameHeaderSize < length) return std::nullopt;
  const absl::string_view payload(&buffer_[begin_ + kFrameHeaderSize], length);
  begin_ += kFrameHeaderSize + length;
  return payload;
}

absl::StatusOr<bool> FrameDecoder::Next(google::protobuf::MessageLite* message) {
  auto payload = NextPayload();
  if (!payload.ok()) return payload.status();
  if (!payload->has_value()) return false;
  if (!message->ParseFromArray((*payload)->data(),
                               static_cast<int>((*payload)->size()))) {
    status_ = absl::DataLossError(
        absl::StrCat("malformed frame: ", (*payload)->size(),
                     "-byte payload is not a valid ", message->GetTypeName()));
    return status_;
  }
  return true;
}

absl::Status FrameDecoder::Finish() const {
  if (!status_.ok()) return status_;
  const size_t have = end_ - begin_;
  if (have == 0) return absl::OkStatus();
  if (have < kFrameHeaderSize) {
    return absl::DataLossError(
        absl::StrCat("connection closed in the middle of a frame: got ", have,
                     " of ", kFrameHeaderSize, " header bytes"));
  }
  return absl::DataLossError(absl::StrCat(
      "connection closed in the middle of a frame: got ",
      have - kFrameHeaderSize, " of ", DecodeLength(&buffer_[begin_]),
      " payload bytes"));
}

}  // namespace taskfork::reporter
