#include "ipc/internal/ring.h"

#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace taskfork::ipc_internal {
namespace {

// A ring in ordinary memory (the protocol does not care where it lives).
struct TestRing {
  explicit TestRing(uint64_t capacity)
      : indices(std::make_unique<RingIndices>()),
        words(capacity / 8, 0),
        view(indices.get(), reinterpret_cast<char*>(words.data()), capacity) {}

  char* data() { return reinterpret_cast<char*>(words.data()); }
  uint64_t WordAt(uint64_t position) { return words[(position % view.capacity()) / 8]; }

  std::unique_ptr<RingIndices> indices;
  std::vector<uint64_t> words;
  RingView view;
};

// The header format documented in ring.h.
uint64_t Header(uint64_t position, uint64_t capacity, uint64_t length) {
  int shift = 0;
  while ((uint64_t{1} << shift) < capacity) ++shift;
  return uint64_t{1} << 63 | ((position >> shift) & ((1 << 22) - 1)) << 41 | length;
}

std::string Message(std::mt19937& rng, size_t size) {
  std::string m(size, '\0');
  for (char& c : m) c = static_cast<char>(rng());
  return m;
}

TEST(Ring, FifoOverManyLapsWithVariedSizes) {
  TestRing ring(256);
  std::mt19937 rng(1);
  std::deque<std::string> expected;
  std::string out;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 2 == 0) {
      const std::string m = Message(rng, rng() % 100);
      const bool fits = ring.view.Writable(m.size());
      ASSERT_EQ(ring.view.TryPush(m), fits) << step;
      if (fits) expected.push_back(m);
    } else {
      ASSERT_EQ(ring.view.Readable(), !expected.empty()) << step;
      ASSERT_EQ(ring.view.TryPop(&out), !expected.empty()) << step;
      if (!expected.empty()) {
        ASSERT_EQ(out, expected.front()) << step;
        expected.pop_front();
      }
    }
  }
  EXPECT_GT(ring.indices->tail.load(), 100 * ring.view.capacity());  // many laps
}

TEST(Ring, PeekReadsInPlaceInOneOrTwoPiecesUntilFree) {
  TestRing ring(256);
  std::mt19937 rng(5);
  std::deque<std::string> expected;
  int wrapped = 0;
  for (int step = 0; step < 20000; ++step) {
    if (rng() % 2 == 0) {
      const std::string m = Message(rng, rng() % 120);
      const bool fits = ring.view.Writable(m.size());
      ASSERT_EQ(ring.view.TryPush(m), fits) << step;
      if (fits) expected.push_back(m);
      continue;
    }
    absl::string_view first, second;
    const uint64_t next = ring.view.Peek(&first, &second);
    ASSERT_EQ(next != 0, !expected.empty()) << step;
    if (next == 0) continue;
    const std::string got = absl::StrCat(first, second);
    ASSERT_EQ(got, expected.front()) << step;
    // The pieces are the ring's own bytes, the second from its start.
    ASSERT_GE(first.data(), ring.data());
    ASSERT_LE(first.data() + first.size(), ring.data() + 256);
    if (!second.empty()) {
      ++wrapped;
      ASSERT_EQ(second.data(), ring.data());
      ASSERT_EQ(first.data() + first.size(), ring.data() + 256);
    }
    // Until Free() the message stays: peeking again finds it, and it
    // counts against the room producers see.
    absl::string_view again_first, again_second;
    ASSERT_EQ(ring.view.Peek(&again_first, &again_second), next);
    ASSERT_EQ(again_first.data(), first.data());
    ASSERT_FALSE(ring.view.Writable(ring.view.max_message_size()));
    ring.view.Free(next);
    expected.pop_front();
  }
  EXPECT_GT(wrapped, 100);
}

TEST(Ring, PeekedRecordIsNotOverwrittenByAFullRing) {
  // The producer fills every byte the peeked record does not hold; the
  // peeked bytes do not change.
  TestRing ring(256);
  ASSERT_TRUE(ring.view.TryPush(std::string(100, 'a')));
  absl::string_view first, second;
  const uint64_t next = ring.view.Peek(&first, &second);
  ASSERT_NE(next, 0u);
  ASSERT_TRUE(ring.view.TryPush(std::string(256 - 8 - 104 - 8, 'b')));
  EXPECT_FALSE(ring.view.TryPush(""));
  EXPECT_EQ(absl::StrCat(first, second), std::string(100, 'a'));
  ring.view.Free(next);
  std::string out;
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, std::string(256 - 8 - 104 - 8, 'b'));
  EXPECT_EQ(ring.view.Peek(&first, &second), 0u);
}

TEST(Ring, RecordEndingExactlyOneCapacityAfterHeadNeedsNoTerminator) {
  // A 56-byte message fills a 64-byte ring: the next header's place is the
  // record's own header, one lap older, so no terminator can be written.
  TestRing small(64);
  std::string out;
  for (int lap = 0; lap < 10; ++lap) {
    const std::string m(56, static_cast<char>('a' + lap));
    ASSERT_TRUE(small.view.TryPush(m));
    EXPECT_FALSE(small.view.TryPush(""));  // full
    ASSERT_TRUE(small.view.TryPop(&out));
    EXPECT_EQ(out, m);
    EXPECT_FALSE(small.view.Readable());
    EXPECT_FALSE(small.view.TryPop(&out));
  }
  // Two records that together fill the ring exactly, head != tail.
  TestRing ring(128);
  ASSERT_TRUE(ring.view.TryPush(std::string(24, 'x')));  // 32 bytes at 0
  ASSERT_TRUE(ring.view.TryPush(std::string(88, 'y')));  // 96 bytes at 32
  EXPECT_EQ(ring.WordAt(128), Header(0, 128, 24));  // not overwritten
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, std::string(24, 'x'));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, std::string(88, 'y'));
  // At position 128 the consumer finds the lap-0 header: not ready.
  EXPECT_FALSE(ring.view.Readable());
  EXPECT_FALSE(ring.view.TryPop(&out));
  ASSERT_TRUE(ring.view.TryPush("z"));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "z");
}

TEST(Ring, StalePayloadThatLooksLikeHeadersIsNeverReadAsOne) {
  // Fill the ring with payload words that are valid headers for positions
  // of later laps, then move the record boundaries over them: without the
  // terminator rule the consumer would take such a word for a record.
  constexpr uint64_t kCapacity = 1024;
  TestRing ring(kCapacity);
  std::mt19937 rng(7);
  std::string out;
  for (int round = 0; round < 300; ++round) {
    const uint64_t tail = ring.indices->tail.load();
    std::string bait;
    for (uint64_t p = tail + 8; bait.size() < 400; p += 8) {
      uint64_t word = Header(p + kCapacity * (1 + rng() % 3), kCapacity, 8);
      if (rng() % 2) word = Header(p, kCapacity, 8);
      bait.append(reinterpret_cast<const char*>(&word), 8);
    }
    ASSERT_TRUE(ring.view.TryPush(bait));
    ASSERT_TRUE(ring.view.TryPop(&out));
    ASSERT_EQ(out, bait);
    // Records of other sizes, so that later headers land inside old bait.
    const std::string m = Message(rng, rng() % 200);
    ASSERT_TRUE(ring.view.TryPush(m));
    ASSERT_TRUE(ring.view.TryPop(&out));
    ASSERT_EQ(out, m);
    ASSERT_FALSE(ring.view.Readable()) << round;
    ASSERT_FALSE(ring.view.TryPop(&out)) << round;
  }
}

TEST(Ring, PublishedRecordWithoutTailIsDeliveredOnceAndAdopted) {
  // A producer killed between publishing a record and advancing tail.
  TestRing ring(256);
  ASSERT_TRUE(ring.view.TryPush("first"));
  const uint64_t next = ring.view.Write("orphan");
  ASSERT_NE(next, 0u);
  std::string out;
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "first");
  ASSERT_TRUE(ring.view.TryPop(&out));  // consumers never need tail
  EXPECT_EQ(out, "orphan");
  // head is past tail now; the ring is empty, not over-full.
  EXPECT_FALSE(ring.view.PublishedTailAhead());
  EXPECT_TRUE(ring.view.Writable(0));
  EXPECT_TRUE(ring.view.Writable(ring.view.max_message_size()));
  // The next producer adopts it instead of writing over it.
  EXPECT_EQ(ring.view.RepairTail(), 1);
  EXPECT_EQ(ring.indices->tail.load(), next);
  EXPECT_EQ(ring.view.RepairTail(), 0);
  ASSERT_TRUE(ring.view.TryPush("after"));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "after");
  EXPECT_FALSE(ring.view.TryPop(&out));

  // The same when no consumer took it before the repair: until then only
  // the header says it is there.
  ASSERT_NE(ring.view.Write("orphan 2"), 0u);
  EXPECT_TRUE(ring.view.Readable());
  EXPECT_FALSE(ring.view.PublishedTailAhead());
  EXPECT_EQ(ring.view.RepairTail(), 1);
  EXPECT_TRUE(ring.view.PublishedTailAhead());
  ASSERT_TRUE(ring.view.TryPush("after 2"));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "orphan 2");
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "after 2");
}

TEST(Ring, UnpublishedRecordLeavesNoTrace) {
  // A producer killed after writing a payload and its terminator but before
  // the header: the next producer writes at the same place.
  TestRing ring(256);
  ASSERT_NE(ring.view.Write(std::string(100, 'p'), /*publish=*/false), 0u);
  std::string out;
  EXPECT_FALSE(ring.view.Readable());
  EXPECT_FALSE(ring.view.TryPop(&out));
  EXPECT_EQ(ring.view.RepairTail(), 0);
  ASSERT_TRUE(ring.view.TryPush("short"));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, "short");
  EXPECT_FALSE(ring.view.TryPop(&out));  // not the stale 100-byte one
  ASSERT_TRUE(ring.view.TryPush(std::string(150, 'q')));
  ASSERT_TRUE(ring.view.TryPop(&out));
  EXPECT_EQ(out, std::string(150, 'q'));
}

TEST(Ring, LargeMessagesUseStreamingStoresAndWrap) {
  // Messages over kStreamingCopyMin at odd offsets, wrapping the ring.
  constexpr uint64_t kCapacity = 1 << 18;
  TestRing ring(kCapacity);
  std::mt19937 rng(3);
  std::string out;
  for (int i = 0; i < 40; ++i) {
    const size_t size = kStreamingCopyMin + rng() % 60000;
    const std::string m = Message(rng, size);
    ASSERT_TRUE(ring.view.TryPush(m)) << i;
    ASSERT_TRUE(ring.view.TryPop(&out)) << i;
    ASSERT_EQ(out.size(), m.size());
    ASSERT_TRUE(out == m) << i;
  }
  EXPECT_GT(ring.indices->tail.load(), 8 * kCapacity);
}

TEST(Ring, PrefetchForWriteIsOnlyAHint) {
  TestRing ring(256);
  std::string out;
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(ring.view.TryPush(std::to_string(i)));
    ring.view.PrefetchForWrite(4096);
    ASSERT_TRUE(ring.view.TryPop(&out));
    ASSERT_EQ(out, std::to_string(i));
  }
}

TEST(RingDeathTest, CorruptHeaderIsFatal) {
  TestRing ring(256);
  ring.words[0] = Header(0, 256, 300);  // a length over the maximum
  std::string out;
  EXPECT_DEATH(ring.view.TryPop(&out), "corrupt ring record at 0");
  ring.words[0] = Header(5 * 256, 256, 8);  // a lap that cannot be there
  EXPECT_DEATH(ring.view.TryPop(&out), "corrupt ring header at 0");
}

}  // namespace
}  // namespace taskfork::ipc_internal
