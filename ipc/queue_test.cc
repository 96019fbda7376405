#include "ipc/queue.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "fork/process.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "fork/testing/run_in_child.h"
#include "gtest/gtest.h"
#include "ipc/internal/test_util.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::ipc_internal::CopyMessageTo;
using ::taskfork::ipc_internal::IsNamespaceRefused;
using ::taskfork::ipc_internal::MountPrivateTmpfs;
using ::taskfork::ipc_internal::RunfilePath;
using ::taskfork::testing::RunInChild;
using ::taskfork::ipc_internal::TestNamePrefix;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

QueueOptions Capacity(size_t bytes) {
  QueueOptions options;
  options.capacity_bytes = bytes;
  return options;
}

QueueOptions Named(const std::string& name, size_t bytes) {
  QueueOptions options = Capacity(bytes);
  options.name = name;
  return options;
}

// Deterministic message `i` of a run: varied sizes (0 .. ~3 KiB), contents
// derived from `i` so corruption is detectable.
std::string Message(int i) {
  const size_t size = (static_cast<size_t>(i) * 7919) % 3001;
  std::string m = absl::StrCat(i, ":");
  while (m.size() < size) m.push_back(static_cast<char>('a' + (m.size() + i) % 26));
  return m;
}

pid_t ForkChild(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(body());
  return pid;
}

int WaitExit(pid_t pid, rusage* usage = nullptr) {
  int status = 0;
  rusage local;
  ::wait4(pid, &status, 0, usage != nullptr ? usage : &local);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Queue, PutThenGetIsFifoAcrossVariedSizes) {
  auto queue = Queue::Create(Capacity(1 << 16));
  ASSERT_THAT(queue, IsOk());
  EXPECT_EQ(queue->capacity_bytes(), 1 << 16);
  EXPECT_EQ(queue->name(), "");
  for (int round = 0; round < 20; ++round) {
    for (int i = 0; i < 15; ++i) ASSERT_THAT(queue->Put(Message(round * 15 + i)), IsOk());
    for (int i = 0; i < 15; ++i) {
      ASSERT_THAT(queue->Get(), IsOkAndHolds(Message(round * 15 + i)));
    }
  }
  EXPECT_EQ(queue->used_bytes(), 0);
}

TEST(Queue, EmptyMessageAndMaximumMessage) {
  auto queue = Queue::Create(Capacity(100));  // rounds up to 128
  ASSERT_THAT(queue, IsOk());
  EXPECT_EQ(queue->capacity_bytes(), 128);
  EXPECT_EQ(queue->max_message_size(), 120);
  ASSERT_THAT(queue->Put(""), IsOk());
  EXPECT_THAT(queue->Get(), IsOkAndHolds(""));
  const std::string biggest(120, 'x');
  for (int i = 0; i < 5; ++i) {  // wraps around every time
    ASSERT_THAT(queue->TryPut(biggest), IsOk());
    EXPECT_THAT(queue->TryPut(""), StatusIs(absl::StatusCode::kResourceExhausted));
    EXPECT_THAT(queue->TryGet(), IsOkAndHolds(biggest));
  }
}

TEST(Queue, OversizeMessageIsInvalidArgument) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  const std::string big(4096 - 8 + 1, 'x');
  EXPECT_THAT(queue->Put(big), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("4089 bytes is larger")));
  EXPECT_THAT(queue->TryPut(big), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->Put(big, absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(queue->Put(std::string(4088, 'x')), IsOk());
}

TEST(Queue, CapacityOverLimitIsInvalidArgument) {
  EXPECT_THAT(Queue::Create(Capacity(size_t{1} << 41)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(Queue, TryGetOnEmptyIsUnavailable) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(Queue, TryPutOnFullIsResourceExhausted) {
  auto queue = Queue::Create(Capacity(64));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->TryPut(std::string(40, 'x')), IsOk());
  EXPECT_THAT(queue->TryPut(std::string(9, 'y')),
              StatusIs(absl::StatusCode::kResourceExhausted, HasSubstr("full")));
  ASSERT_THAT(queue->TryPut(std::string(8, 'y')), IsOk());  // 16 bytes left
}

TEST(Queue, GetTimesOutWhenEmpty) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT(queue->Get(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(queue->Get(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  std::string out = "unchanged";
  EXPECT_THAT(queue->GetInto(&out, absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_EQ(out, "unchanged");
}

TEST(Queue, PutTimesOutWhenFull) {
  auto queue = Queue::Create(Capacity(64));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put(std::string(56, 'x')), IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT(queue->Put("y", absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("full")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(queue->Put("y", absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(Queue, CloseRejectsPutsAndDrainsGets) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put("a"), IsOk());
  ASSERT_THAT(queue->Put("b"), IsOk());
  EXPECT_FALSE(queue->closed());
  queue->Close();
  queue->Close();  // idempotent
  EXPECT_TRUE(queue->closed());
  EXPECT_THAT(queue->Put("c"), StatusIs(absl::StatusCode::kFailedPrecondition,
                                        HasSubstr("closed")));
  EXPECT_THAT(queue->TryPut("c"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(queue->Get(), IsOkAndHolds("a"));
  EXPECT_THAT(queue->TryGet(), IsOkAndHolds("b"));
  EXPECT_THAT(queue->Get(), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(Queue, CloseWakesBlockedGetterAndPutterInOtherProcesses) {
  auto empty = Queue::Create(Capacity(4096));
  auto full = Queue::Create(Capacity(64));
  auto ready = Queue::Create(Capacity(4096));
  ASSERT_THAT(empty, IsOk());
  ASSERT_THAT(full, IsOk());
  ASSERT_THAT(ready, IsOk());
  ASSERT_THAT(full->Put(std::string(56, 'x')), IsOk());
  const pid_t getter = ForkChild([&] {
    (void)ready->Put("g");
    return absl::IsOutOfRange(empty->Get().status()) ? 0 : 1;
  });
  const pid_t putter = ForkChild([&] {
    (void)ready->Put("p");
    return absl::IsFailedPrecondition(full->Put("y")) ? 0 : 1;
  });
  ASSERT_THAT(ready->Get(), IsOk());
  ASSERT_THAT(ready->Get(), IsOk());
  empty->Close();
  full->Close();
  EXPECT_EQ(WaitExit(getter), 0);
  EXPECT_EQ(WaitExit(putter), 0);
}

TEST(Queue, ForkedChildrenShareTheQueue) {
  auto queue = Queue::Create(Capacity(8192));  // forces blocking
  ASSERT_THAT(queue, IsOk());
  constexpr int kCount = 2000;
  const pid_t child = ForkChild([&] {
    for (int i = 0; i < kCount; ++i) {
      if (!queue->Put(Message(i)).ok()) return 1;
    }
    return 0;
  });
  for (int i = 0; i < kCount; ++i) {
    ASSERT_THAT(queue->Get(absl::Seconds(30)), IsOkAndHolds(Message(i)));
  }
  EXPECT_EQ(WaitExit(child), 0);
}

TEST(Queue, SharedWithAChildOfForkProcess) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  auto child = Process::Start(ProcessOptions(), [&] {
    return queue->Put("from a Process").ok() ? 0 : 1;
  });
  ASSERT_THAT(child, IsOk());
  EXPECT_THAT(queue->Get(absl::Seconds(30)), IsOkAndHolds("from a Process"));
  auto status = child->Join(absl::Seconds(30));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success()) << status->ToString();
}

TEST(Queue, ManyProducersAndConsumersAcrossProcesses) {
  auto queue = Queue::Create(Capacity(4096));
  auto results = Queue::Create(Capacity(1 << 20));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(results, IsOk());
  constexpr int kProducers = 3, kConsumers = 3, kEach = 1000;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProducers; ++p) {
    pids.push_back(ForkChild([&, p] {
      for (int i = 0; i < kEach; ++i) {
        if (!queue->Put(absl::StrCat(p, "/", i)).ok()) return 1;
      }
      return 0;
    }));
  }
  for (int c = 0; c < kConsumers; ++c) {
    pids.push_back(ForkChild([&] {
      // Each consumer must see every producer's messages in order.
      std::map<int, int> last;
      for (;;) {
        auto m = queue->Get();
        if (absl::IsOutOfRange(m.status())) return 0;
        if (!m.ok()) return 1;
        int p, i;
        if (std::sscanf(m->c_str(), "%d/%d", &p, &i) != 2) return 2;
        if (last.count(p) && last[p] >= i) return 3;
        last[p] = i;
        if (!results->Put(*m).ok()) return 4;
      }
    }));
  }
  for (int p = 0; p < kProducers; ++p) EXPECT_EQ(WaitExit(pids[p]), 0);
  queue->Close();
  for (int c = 0; c < kConsumers; ++c) EXPECT_EQ(WaitExit(pids[kProducers + c]), 0);
  std::vector<std::string> got;
  for (auto m = results->TryGet(); m.ok(); m = results->TryGet()) got.push_back(*m);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got.size(), kProducers * kEach);
  EXPECT_EQ(std::unique(got.begin(), got.end()), got.end());
}

TEST(Queue, ThreadsShareOneHandle) {
  auto queue = Queue::Create(Capacity(8192));
  ASSERT_THAT(queue, IsOk());
  constexpr int kEach = 2000;
  std::vector<std::thread> threads;
  std::atomic<int> received{0};
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) ASSERT_THAT(queue->Put(Message(i % 50)), IsOk());
    });
    threads.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        auto m = queue->Get();
        ASSERT_THAT(m, IsOk());
        ASSERT_EQ(*m, Message(std::stoi(*m) % 50));
        received.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(received.load(), 2 * kEach);
}

TEST(Queue, IdleWaiterUsesNoCpu) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  const pid_t child = ForkChild([&] {
    return absl::IsDeadlineExceeded(queue->Get(absl::Milliseconds(500)).status())
               ? 0 : 1;
  });
  rusage usage;
  ASSERT_EQ(WaitExit(child, &usage), 0);
  const double cpu = usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 +
                     usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6;
  EXPECT_LT(cpu, 0.05) << "a waiter blocked for 0.5 s used " << cpu << " s of CPU";
}

TEST(Queue, NamedQueueBetweenUnrelatedProcesses) {
  const std::string in_name = SharedMemory::UniqueName(TestNamePrefix());
  const std::string out_name = SharedMemory::UniqueName(TestNamePrefix());
  auto in = Queue::Create(Named(in_name, 4096));
  auto out = Queue::Create(Named(out_name, 4096));
  ASSERT_THAT(in, IsOk());
  ASSERT_THAT(out, IsOk());
  EXPECT_EQ(in->name(), in_name);
  const std::string helper = RunfilePath("ipc/shm_test_helper");
  // The helper (exec'ed: it shares only the names) gets 100 messages from
  // `in` and puts "echo <message>" for each into `out`.
  const pid_t pid = ForkChild([&] {
    ::execl(helper.c_str(), helper.c_str(), "queue-echo", in_name.c_str(),
            out_name.c_str(), static_cast<char*>(nullptr));
    return 127;
  });
  for (int i = 0; i < 100; ++i) ASSERT_THAT(in->Put(absl::StrCat("m", i)), IsOk());
  for (int i = 0; i < 100; ++i) {
    ASSERT_THAT(out->Get(absl::Seconds(30)), IsOkAndHolds(absl::StrCat("echo m", i)));
  }
  EXPECT_EQ(WaitExit(pid), 0);
}

TEST(Queue, OpenErrors) {
  const std::string name = SharedMemory::UniqueName(TestNamePrefix());
  EXPECT_THAT(Queue::Open(name), StatusIs(absl::StatusCode::kNotFound));
  auto not_a_queue = SharedMemory::CreateNamed(name, 64 * 1024);
  ASSERT_THAT(not_a_queue, IsOk());
  EXPECT_THAT(Queue::Open(name), StatusIs(absl::StatusCode::kFailedPrecondition,
                                          HasSubstr("not an initialised")));
  // A queue of format version 1 (an older release): named as such.
  const uint64_t version1 = 0x3171'6b72'6f66'6b74;  // "tkforkq1"
  std::memcpy(not_a_queue->data(), &version1, sizeof(version1));
  EXPECT_THAT(Queue::Open(name),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("format version 1"),
                             HasSubstr("reads only version 2"),
                             HasSubstr("same one"))));
  const std::string small = SharedMemory::UniqueName(TestNamePrefix());
  auto tiny = SharedMemory::CreateNamed(small, 64);
  ASSERT_THAT(tiny, IsOk());
  EXPECT_THAT(Queue::Open(small), StatusIs(absl::StatusCode::kFailedPrecondition,
                                           HasSubstr("too small")));
  auto queue = Queue::Create(Named(name, 4096));
  EXPECT_THAT(queue, StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST(Queue, OpenedHandleSharesState) {
  const std::string name = SharedMemory::UniqueName(TestNamePrefix());
  auto queue = Queue::Create(Named(name, 4096));
  ASSERT_THAT(queue, IsOk());
  auto opened = Queue::Open(name);
  ASSERT_THAT(opened, IsOk());
  EXPECT_EQ(opened->capacity_bytes(), 4096);
  ASSERT_THAT(queue->Put("x"), IsOk());
  EXPECT_THAT(opened->Get(), IsOkAndHolds("x"));
  opened->Close();
  EXPECT_TRUE(queue->closed());
}

TEST(Queue, ConsumeReadsInPlaceInFifoOrderAlsoWhenWrapped) {
  // 1 KiB ring, messages of varied sizes: many wrap around its end.
  auto queue = Queue::Create(Capacity(1024));
  ASSERT_THAT(queue, IsOk());
  int wrapped = 0;
  std::string scratch = "untouched";
  for (int i = 0; i < 500; ++i) {
    const std::string m = Message(i).substr(0, 300);
    ASSERT_THAT(queue->Put(m), IsOk());
    if (i % 3 == 0) {  // interleaved with copying Gets
      ASSERT_THAT(queue->Get(), IsOkAndHolds(m));
      continue;
    }
    ASSERT_THAT(queue->Consume([&](const MessageView& view) {
      EXPECT_EQ(view.size(), m.size());
      EXPECT_EQ(view.empty(), m.empty());
      EXPECT_EQ(absl::StrCat(view.first(), view.second()), m);
      std::string copy = "old contents";
      view.CopyTo(&copy);
      EXPECT_EQ(copy, m);
      if (view.contiguous()) {
        EXPECT_TRUE(view.second().empty());
        // In place: the view itself, no copy.
        EXPECT_EQ(view.Flatten(&scratch).data(), view.first().data());
      } else {
        ++wrapped;
        EXPECT_FALSE(view.first().empty());
        EXPECT_EQ(view.Flatten(&scratch), m);
        EXPECT_EQ(scratch, m);
      }
      return absl::OkStatus();
    }), IsOk()) << i;
  }
  EXPECT_GT(wrapped, 10);
  EXPECT_THAT(queue->TryGet(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(queue->used_bytes(), 0);
}

TEST(Queue, ConsumeReturnsTheCallbacksErrorAndRemovesTheMessage) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put("poison"), IsOk());
  ASSERT_THAT(queue->Put("next"), IsOk());
  EXPECT_THAT(queue->Consume([](const MessageView& view) {
    return absl::InvalidArgumentError(absl::StrCat("cannot use ", view.first()));
  }),
              StatusIs(absl::StatusCode::kInvalidArgument, "cannot use poison"));
  std::string out;
  EXPECT_THAT(queue->TryConsume(CopyMessageTo(&out)), IsOk());
  EXPECT_EQ(out, "next");
}

TEST(Queue, ConsumeCallbackThatThrowsLeavesTheMessageAndTheLock) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  ASSERT_THAT(queue->Put("kept"), IsOk());
  EXPECT_THROW((void)queue->Consume([](const MessageView&) -> absl::Status {
    throw std::runtime_error("callback failed");
  }),
               std::runtime_error);
  // The consumers' lock was released (no recovery needed), the message kept.
  EXPECT_THAT(queue->Get(absl::Seconds(10)), IsOkAndHolds("kept"));
  EXPECT_EQ(queue->recovered_lock_count(), 0);
}

TEST(Queue, ConsumeTimeoutsEmptyAndClosed) {
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  std::string out;
  const absl::Time start = absl::Now();
  EXPECT_THAT(queue->Consume(CopyMessageTo(&out), absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("Queue::Consume: still empty")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(queue->TryConsume(CopyMessageTo(&out)),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("Queue::TryConsume: the queue is empty")));
  ASSERT_THAT(queue->Put("last"), IsOk());
  queue->Close();
  EXPECT_THAT(queue->Consume(CopyMessageTo(&out)), IsOk());
  EXPECT_EQ(out, "last");
  EXPECT_THAT(queue->Consume(CopyMessageTo(&out)),
              StatusIs(absl::StatusCode::kOutOfRange, HasSubstr("closed and empty")));
  EXPECT_THAT(queue->TryConsume(CopyMessageTo(&out)),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(out, "last");
}

TEST(Queue, ConsumeFreesRoomForABlockedProducerInAnotherProcess) {
  // The queue holds one message at a time: each Consume must wake the child
  // waiting in Put.
  auto queue = Queue::Create(Capacity(4096));
  ASSERT_THAT(queue, IsOk());
  constexpr int kCount = 300;
  const pid_t child = ForkChild([&] {
    for (int i = 0; i < kCount; ++i) {
      std::string m = Message(i);
      m.resize(3000, '.');
      if (!queue->Put(m).ok()) return 1;
    }
    return 0;
  });
  for (int i = 0; i < kCount; ++i) {
    std::string out;
    ASSERT_THAT(queue->Consume(CopyMessageTo(&out), absl::Seconds(30)), IsOk());
    std::string m = Message(i);
    m.resize(3000, '.');
    ASSERT_EQ(out, m) << i;
  }
  EXPECT_EQ(WaitExit(child), 0);
}

TEST(Queue, FullShmIsResourceExhaustedAtCreate) {
  const absl::Status status = RunInChild([]() -> absl::Status {
    TASKFORK_RETURN_IF_ERROR(MountPrivateTmpfs("size=256k,mode=1777"));
    TASKFORK_RETURN_IF_ERROR(Queue::Create(Capacity(64 << 10)).status());
    return Queue::Create(Capacity(1 << 20)).status();
  });
  if (IsNamespaceRefused(status)) GTEST_SKIP() << status;
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kResourceExhausted,
                               HasSubstr("/dev/shm")));
}

}  // namespace
}  // namespace taskfork::ipc
