#include "ipc/message_view.h"

#include <string>

#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace taskfork::ipc {
namespace {

TEST(MessageView, ContiguousMessageFlattensToItselfWithoutACopy) {
  const std::string ring = "..hello..";
  const MessageView view(absl::string_view(ring).substr(2, 5), {});
  EXPECT_EQ(view.size(), 5);
  EXPECT_FALSE(view.empty());
  EXPECT_TRUE(view.contiguous());
  std::string scratch = "untouched";
  const absl::string_view flat = view.Flatten(&scratch);
  EXPECT_EQ(flat, "hello");
  EXPECT_EQ(flat.data(), ring.data() + 2);
  EXPECT_EQ(scratch, "untouched");
}

TEST(MessageView, WrappedMessageIsJoinedInTheScratchBuffer) {
  // "llo" at a ring's start, "he" at its end.
  const std::string ring = "llo....he";
  const absl::string_view bytes(ring);
  const MessageView view(bytes.substr(7), bytes.substr(0, 3));
  EXPECT_EQ(view.size(), 5);
  EXPECT_FALSE(view.contiguous());
  EXPECT_EQ(view.first(), "he");
  EXPECT_EQ(view.second(), "llo");
  std::string scratch = "previous contents, longer than the message";
  EXPECT_EQ(view.Flatten(&scratch), "hello");
  EXPECT_EQ(scratch, "hello");
  std::string out = "x";
  view.CopyTo(&out);
  EXPECT_EQ(out, "hello");
}

TEST(MessageView, EmptyMessage) {
  const MessageView view({}, {});
  EXPECT_TRUE(view.empty());
  EXPECT_TRUE(view.contiguous());
  std::string scratch;
  EXPECT_EQ(view.Flatten(&scratch), "");
  std::string out = "old";
  view.CopyTo(&out);
  EXPECT_EQ(out, "");
}

}  // namespace
}  // namespace taskfork::ipc
