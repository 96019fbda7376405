#include "reporter/frame.h"

#include <string>

#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

ClientMessage Start(uint64_t id, const std::string& name) {
  ClientMessage m;
  m.mutable_section_start()->set_id(id);
  m.mutable_section_start()->set_name(name);
  return m;
}

TEST(FrameTest, HeaderIsLittleEndianLength) {
  ClientMessage m = Start(7, "x");
  std::string out;
  AppendFrame(m, &out);
  const size_t payload = m.ByteSizeLong();
  ASSERT_EQ(out.size(), kFrameHeaderSize + payload);
  EXPECT_EQ(static_cast<unsigned char>(out[0]), payload);
  EXPECT_EQ(out[1], 0);
  EXPECT_EQ(out[2], 0);
  EXPECT_EQ(out[3], 0);
}

TEST(FrameTest, DecodesFramesSplitAtEveryByte) {
  std::string stream;
  for (int i = 1; i <= 5; ++i) AppendFrame(Start(i, std::string(i * 50, 'a')), &stream);
  FrameDecoder decoder;
  ClientMessage m;
  int seen = 0;
  for (char c : stream) {
    decoder.Append(absl::string_view(&c, 1));
    for (;;) {
      auto got = decoder.Next(&m);
      ASSERT_THAT(got, IsOk());
      if (!*got) break;
      ++seen;
      EXPECT_EQ(m.section_start().id(), static_cast<uint64_t>(seen));
      EXPECT_EQ(m.section_start().name().size(), seen * 50u);
    }
  }
  EXPECT_EQ(seen, 5);
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_THAT(decoder.Finish(), IsOk());
}

TEST(FrameTest, EmptyPayloadIsAFrame) {
  std::string stream(4, '\0');
  FrameDecoder decoder;
  decoder.Append(stream);
  ClientMessage m;
  EXPECT_THAT(decoder.Next(&m), IsOkAndHolds(true));
  EXPECT_EQ(m.kind_case(), ClientMessage::KIND_NOT_SET);
}

TEST(FrameTest, OversizeFrameIsRejectedFromItsHeaderAndSticks) {
  FrameDecoder decoder(100);
  std::string header = {101, 0, 0, 0};
  decoder.Append(header);
  ClientMessage m;
  EXPECT_THAT(decoder.Next(&m),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("frame of 101 bytes exceeds the maximum of 100")));
  EXPECT_THAT(decoder.Next(&m), StatusIs(absl::StatusCode::kResourceExhausted));
  EXPECT_THAT(decoder.Finish(), StatusIs(absl::StatusCode::kResourceExhausted));
}

TEST(FrameTest, HugeLengthIsRejected) {
  FrameDecoder decoder;
  decoder.Append(std::string("\xff\xff\xff\xff", 4));
  EXPECT_THAT(decoder.NextPayload(),
              StatusIs(absl::StatusCode::kResourceExhausted,
                       HasSubstr("4294967295")));
}

TEST(FrameTest, MalformedPayloadIsDataLoss) {
  FrameDecoder decoder;
  // Field 1, wire type 2 (length-delimited) with a length past the end.
  decoder.Append(std::string("\x03\x00\x00\x00\x0a\x7f\x01", 7));
  ClientMessage m;
  EXPECT_THAT(decoder.Next(&m),
              StatusIs(absl::StatusCode::kDataLoss,
                       HasSubstr("malformed frame: 3-byte payload")));
  EXPECT_THAT(decoder.Next(&m), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(FrameTest, FinishReportsAPartialFrame) {
  std::string stream;
  AppendFrame(Start(1, "abcdef"), &stream);
  {
    FrameDecoder decoder;
    decoder.Append(stream.substr(0, 2));
    EXPECT_THAT(decoder.Finish(),
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr("got 2 of 4 header bytes")));
  }
  {
    FrameDecoder decoder;
    decoder.Append(stream.substr(0, stream.size() - 1));
    ClientMessage m;
    EXPECT_THAT(decoder.Next(&m), IsOkAndHolds(false));
    EXPECT_THAT(decoder.Finish(),
                StatusIs(absl::StatusCode::kDataLoss,
                         HasSubstr(absl::StrCat("got ", stream.size() - 5, " of ",
                                                stream.size() - 4,
                                                " payload bytes"))));
  }
}

TEST(FrameTest, WritableSpaceCompactsAndGrows) {
  std::string stream;
  for (int i = 1; i <= 100; ++i) AppendFrame(Start(i, "n"), &stream);
  FrameDecoder decoder;
  ClientMessage m;
  size_t fed = 0;
  int seen = 0;
  while (fed < stream.size()) {
    absl::Span<char> space = decoder.WritableSpace(7);
    ASSERT_GE(space.size(), 7u);
    const size_t n = std::min<size_t>(7, stream.size() - fed);
    std::memcpy(space.data(), stream.data() + fed, n);
    decoder.Commit(n);
    fed += n;
    while (*decoder.Next(&m)) ++seen;
  }
  EXPECT_EQ(seen, 100);
}

}  // namespace
}  // namespace taskfork::reporter
