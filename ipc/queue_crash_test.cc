// The random-kill test: producers and consumers of one Queue are killed with
// SIGKILL at random points (also while they hold a lock or are half-way
// through a message) over and over; the survivors must never see a corrupt,
// partial or duplicated message, and the queue must stay usable.
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipc/internal/queue_shared.h"
#include "ipc/internal/test_util.h"
#include "ipc/queue.h"
#include "ipc/shared_memory.h"

namespace taskfork::ipc {

// Reaches into a Queue to stop a producer between the steps of a Put.
class QueueTestPeer {
 public:
  static ipc_internal::QueueShared& shared(Queue& queue) { return *queue.shared_; }
  static ipc_internal::RingView& ring(Queue& queue) { return queue.ring_; }
};

namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;

constexpr uint32_t kMaxIds = 4096;     // producer incarnations
constexpr uint32_t kMaxSeq = 1 << 13;  // messages per producer incarnation

// Test bookkeeping shared by every process (an anonymous segment).
struct Board {
  std::atomic<uint32_t> errors{0};
  char first_error[256];
  std::atomic<uint64_t> produced{0};
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> seen[kMaxIds * kMaxSeq / 64];  // one bit per message
};

struct Header {
  uint32_t id;
  uint32_t seq;
  uint32_t size;
  uint32_t checksum;
};

uint32_t Checksum(const char* data, size_t size, uint32_t seed) {
  uint32_t h = seed * 2654435761u;
  for (size_t i = 0; i < size; ++i) h = (h ^ static_cast<uint8_t>(data[i])) * 16777619u;
  return h;
}

std::string MakeMessage(uint32_t id, uint32_t seq, std::mt19937& rng) {
  const uint32_t size = rng() % 2048;
  std::string m(sizeof(Header) + size, '\0');
  for (uint32_t i = 0; i < size; ++i) m[sizeof(Header) + i] = static_cast<char>(rng());
  const Header h{id, seq, size, Checksum(m.data() + sizeof(Header), size, id ^ seq)};
  std::memcpy(m.data(), &h, sizeof(h));
  return m;
}

void Fail(Board* board, const std::string& what) {
  if (board->errors.fetch_add(1) == 0) {
    std::snprintf(board->first_error, sizeof(board->first_error), "%s", what.c_str());
  }
}

// Checks that a delivered message is whole; sets *h to its header.
bool Verify(Board* board, absl::string_view m, Header* header) {
  Header& h = *header;
  if (m.size() < sizeof(h)) {
    Fail(board, absl::StrCat("short message of ", m.size(), " bytes"));
    return false;
  }
  std::memcpy(&h, m.data(), sizeof(h));
  if (h.size != m.size() - sizeof(h) || h.id >= kMaxIds || h.seq >= kMaxSeq ||
      h.checksum != Checksum(m.data() + sizeof(h), h.size, h.id ^ h.seq)) {
    Fail(board, absl::StrCat("corrupt message: id ", h.id, " seq ", h.seq,
                             " size ", h.size, " of ", m.size()));
    return false;
  }
  return true;
}

// Records a verified message as seen. False if it was seen before.
bool MarkSeen(Board* board, const Header& h) {
  const uint64_t bit = uint64_t{h.id} * kMaxSeq + h.seq;
  const uint64_t mask = uint64_t{1} << (bit % 64);
  if (board->seen[bit / 64].fetch_or(mask) & mask) {
    Fail(board, absl::StrCat("duplicate message: id ", h.id, " seq ", h.seq));
    return false;
  }
  board->consumed.fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Checks one delivered message; records it as seen. False on any problem.
bool Check(Board* board, absl::string_view m) {
  Header h;
  return Verify(board, m, &h) && MarkSeen(board, h);
}

[[noreturn]] void Producer(Queue& queue, Board* board, uint32_t id) {
  std::mt19937 rng(id);
  for (uint32_t seq = 0; seq < kMaxSeq; ++seq) {
    const absl::Status s = queue.Put(MakeMessage(id, seq, rng));
    if (!s.ok()) {
      Fail(board, absl::StrCat("producer ", id, ": ", s.ToString()));
      ::_exit(3);
    }
    board->produced.fetch_add(1, std::memory_order_relaxed);
  }
  for (;;) ::pause();  // done: wait to be killed
}

// Takes messages with Get (a copy) and with the zero-copy Consume, at
// random. A message read in place is verified there (where a kill leaves it
// in the queue for the next consumer) and marked seen once Consume has
// removed it.
[[noreturn]] void Consumer(Queue& queue, Board* board, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string m, scratch;
  for (;;) {
    absl::Status s;
    Header h;
    bool whole = true;
    if (rng() % 2 == 0) {
      s = queue.GetInto(&m);
      whole = s.ok() && Verify(board, m, &h);
    } else {
      s = queue.Consume([&](const MessageView& view) {
        whole = Verify(board, view.Flatten(&scratch), &h);
        return absl::OkStatus();
      });
    }
    if (!s.ok()) {
      Fail(board, absl::StrCat("consumer: ", s.ToString()));
      ::_exit(3);
    }
    if (!whole || !MarkSeen(board, h)) ::_exit(3);
  }
}

int KillCount() {
  const char* env = std::getenv("TASKFORK_QUEUE_KILLS");
  return env != nullptr ? std::atoi(env) : 1000;
}

TEST(QueueCrash, RandomKillsNeverCorruptOrWedgeTheQueue) {
  // Small enough that producers block on a full queue and records wrap.
  QueueOptions options;
  options.capacity_bytes = 16 << 10;
  auto queue = Queue::Create(options);
  ASSERT_THAT(queue, IsOk());
  auto board_shm = SharedMemory::CreateAnonymous(sizeof(Board));
  ASSERT_THAT(board_shm, IsOk());
  Board* board = new (board_shm->data()) Board;

  uint32_t next_id = 0;
  auto spawn = [&](bool producer) {
    const uint32_t id = next_id;
    if (producer) ++next_id;
    const pid_t pid = ::fork();
    if (pid == 0) {
      if (producer) Producer(*queue, board, id);
      Consumer(*queue, board, static_cast<uint32_t>(::getpid()));
    }
    return pid;
  };
  struct Child {
    pid_t pid;
    bool producer;
  };
  std::vector<Child> children;
  for (int i = 0; i < 4; ++i) children.push_back({spawn(i % 2 == 0), i % 2 == 0});

  std::mt19937 rng(12345);
  const int kills = KillCount();
  int unexpected_exits = 0;
  for (int k = 0; k < kills && board->errors.load() == 0; ++k) {
    Child& victim = children[rng() % children.size()];
    if (victim.producer && next_id >= kMaxIds) break;
    // Let the victim run for a random while (this is the random kill point,
    // not synchronisation).
    const timespec pause{0, static_cast<long>(rng() % 300000)};
    ::nanosleep(&pause, nullptr);
    ::kill(victim.pid, SIGKILL);
    int status = 0;
    ::waitpid(victim.pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) ++unexpected_exits;
    victim.pid = spawn(victim.producer);
  }
  for (Child& c : children) {
    ::kill(c.pid, SIGKILL);
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    if (!WIFSIGNALED(status)) ++unexpected_exits;
  }
  EXPECT_EQ(board->errors.load(), 0) << board->first_error;
  EXPECT_EQ(unexpected_exits, 0) << board->first_error;

  // Whatever is left is whole and new; then the queue still works both ways.
  int left = 0;
  for (auto m = queue->TryGet(); m.ok(); m = queue->TryGet(), ++left) {
    EXPECT_TRUE(Check(board, *m)) << board->first_error;
  }
  ASSERT_THAT(queue->Put("after", absl::Seconds(10)), IsOk());
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("after"));
  EXPECT_GT(board->consumed.load(), 0);
  std::printf("kills: %d, producer incarnations: %u, produced: %lu, consumed: "
              "%lu, drained at the end: %d, locks recovered from dead owners: %lu\n",
              kills, next_id, static_cast<unsigned long>(board->produced.load()),
              static_cast<unsigned long>(board->consumed.load()), left,
              static_cast<unsigned long>(queue->recovered_lock_count()));
  EXPECT_GT(queue->recovered_lock_count(), 0)
      << "no kill hit a lock holder; the test did not test recovery";
}

// A child takes the producers' lock, writes `message` (and publishes it, or
// not), and is killed before it advances tail and unlocks.
void KillProducerInsidePut(Queue& queue, absl::string_view message,
                           bool publish) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    QueueTestPeer::shared(queue).producer_mu.Lock();
    if (QueueTestPeer::ring(queue).Write(message, publish) == 0) ::_exit(3);
    ::raise(SIGKILL);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
}

QueueOptions SmallQueue() {
  QueueOptions options;
  options.capacity_bytes = 4096;
  return options;
}

TEST(QueueCrash, ConsumerKilledInsideConsumeLeavesTheMessageForTheNext) {
  auto queue = Queue::Create(SmallQueue());
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put("first"), IsOk());
  ASSERT_THAT(queue->Put("second"), IsOk());
  const pid_t pid = ::fork();
  if (pid == 0) {
    (void)queue->Consume([](const MessageView& view) -> absl::Status {
      if (view.first() == "first") ::raise(SIGKILL);
      ::_exit(3);
    });
    ::_exit(4);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;
  // The dead consumer held the consumers' lock and had not freed "first".
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("first"));
  EXPECT_EQ(queue->recovered_lock_count(), 1);
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("second"));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(QueueCrash, ProducerKilledAfterPublishingBeforeTailIsAdopted) {
  auto queue = Queue::Create(SmallQueue());
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put("before"), IsOk());
  KillProducerInsidePut(*queue, "orphan", /*publish=*/true);
  // The next producer recovers the lock and must not write over "orphan".
  ASSERT_THAT(queue->Put("next", absl::Seconds(10)), IsOk());
  EXPECT_EQ(queue->recovered_lock_count(), 1u);
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("before"));
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("orphan"));
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("next"));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(queue->used_bytes(), 0u);
}

TEST(QueueCrash, PublishedRecordIsDeliveredOnceEvenBeforeTheRepair) {
  auto queue = Queue::Create(SmallQueue());
  ASSERT_THAT(queue, IsOk());
  KillProducerInsidePut(*queue, "orphan", /*publish=*/true);
  // Consumers do not read tail: the record is there already.
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("orphan"));
  EXPECT_EQ(queue->used_bytes(), 0u);  // tail lags head: clamped
  ASSERT_THAT(queue->Put("next", absl::Seconds(10)), IsOk());
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("next"));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(QueueCrash, WaitingConsumerGetsTheOrphanOnceTheNextProducerRepairs) {
  // A consumer waiting outside the lock looks at tail, which the dead
  // producer did not advance; the next Put adopts the record and wakes it.
  auto queue = Queue::Create(SmallQueue());
  ASSERT_THAT(queue, IsOk());
  absl::StatusOr<std::string> got;
  std::thread consumer([&] { got = queue->Get(absl::Seconds(30)); });
  KillProducerInsidePut(*queue, "orphan", /*publish=*/true);
  ASSERT_THAT(queue->Put("next", absl::Seconds(10)), IsOk());
  consumer.join();
  EXPECT_THAT(got, IsOkAndHolds("orphan"));
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("next"));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(QueueCrash, ProducerKilledBeforePublishingLeavesNothing) {
  auto queue = Queue::Create(SmallQueue());
  ASSERT_THAT(queue, IsOk());
  KillProducerInsidePut(*queue, std::string(1000, 'p'), /*publish=*/false);
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_THAT(queue->Put("next", absl::Seconds(10)), IsOk());
  EXPECT_EQ(queue->recovered_lock_count(), 1u);
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("next"));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace taskfork::ipc
