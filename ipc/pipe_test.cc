#include "ipc/pipe.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipc/internal/test_util.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::ipc_internal::CopyMessageTo;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

PipeOptions Capacity(size_t bytes) {
  PipeOptions options;
  options.capacity_bytes = bytes;
  return options;
}

int WaitExit(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(Pipe, BothDirectionsInOneProcess) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  EXPECT_EQ(a.max_message_size(), 4088);
  ASSERT_THAT(a.Send("to b"), IsOk());
  ASSERT_THAT(b.Send("to a"), IsOk());
  ASSERT_THAT(a.Send(""), IsOk());
  EXPECT_THAT(b.Recv(), IsOkAndHolds("to b"));
  EXPECT_THAT(b.Recv(), IsOkAndHolds(""));
  EXPECT_THAT(a.Recv(), IsOkAndHolds("to a"));
  EXPECT_TRUE(a.PeerAlive());
}

TEST(Pipe, EchoThroughAForkedChild) {
  auto ends = Pipe::Create(Capacity(8192));
  ASSERT_THAT(ends, IsOk());
  auto& [parent, child] = *ends;
  const pid_t pid = ::fork();
  if (pid == 0) {
    parent.Close();
    std::string m;
    while (child.RecvInto(&m).ok()) {
      if (!child.Send(absl::StrCat("echo ", m)).ok()) ::_exit(1);
    }
    ::_exit(0);  // the parent closed its end
  }
  child.Close();
  for (int i = 0; i < 1000; ++i) {
    const std::string m(static_cast<size_t>(i * 37 % 3000), static_cast<char>('a' + i % 26));
    ASSERT_THAT(parent.Send(m), IsOk());
    ASSERT_THAT(parent.Recv(absl::Seconds(30)), IsOkAndHolds(absl::StrCat("echo ", m)));
  }
  parent.Close();
  EXPECT_EQ(WaitExit(pid), 0);
}

TEST(Pipe, OneMebibyteMessagesArriveIntact) {
  auto ends = Pipe::Create(Capacity(4 << 20));
  ASSERT_THAT(ends, IsOk());
  auto& [parent, child] = *ends;
  auto big = [](int i) {
    std::string m(1 << 20, '\0');
    for (size_t j = 0; j < m.size(); j += 97) m[j] = static_cast<char>(i + j);
    return m;
  };
  const pid_t pid = ::fork();
  if (pid == 0) {
    parent.Close();
    for (int i = 0; i < 16; ++i) {
      if (!child.Send(big(i)).ok()) ::_exit(1);
    }
    ::_exit(0);
  }
  child.Close();
  for (int i = 0; i < 16; ++i) {
    auto m = parent.Recv(absl::Seconds(30));
    ASSERT_THAT(m, IsOk());
    ASSERT_TRUE(*m == big(i)) << i;
  }
  EXPECT_EQ(WaitExit(pid), 0);
}

TEST(Pipe, OversizeMessageIsInvalidArgument) {
  auto ends = Pipe::Create(Capacity(64));
  ASSERT_THAT(ends, IsOk());
  EXPECT_THAT(ends->first.Send(std::string(57, 'x')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("57 bytes")));
  EXPECT_THAT(ends->first.Send(std::string(56, 'x')), IsOk());
}

TEST(Pipe, RecvAndPollTimeOut) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  const absl::Time start = absl::Now();
  EXPECT_THAT(a.Recv(absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  EXPECT_THAT(a.Recv(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(a.Poll(), IsOkAndHolds(false));
  EXPECT_THAT(a.Poll(absl::Milliseconds(20)), IsOkAndHolds(false));
  ASSERT_THAT(b.Send("x"), IsOk());
  EXPECT_THAT(a.Poll(), IsOkAndHolds(true));
  EXPECT_THAT(a.Poll(absl::Seconds(1)), IsOkAndHolds(true));
  EXPECT_THAT(a.Recv(), IsOkAndHolds("x"));
}

TEST(Pipe, SendTimesOutWhenFull) {
  auto ends = Pipe::Create(Capacity(64));
  ASSERT_THAT(ends, IsOk());
  ASSERT_THAT(ends->first.Send(std::string(56, 'x')), IsOk());
  const absl::Time start = absl::Now();
  EXPECT_THAT(ends->first.Send("y", absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr("full")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
}

TEST(Pipe, ClosedPeerIsUnavailableAfterDraining) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  ASSERT_THAT(b.Send("last words"), IsOk());
  b.Close();
  b.Close();  // idempotent
  EXPECT_FALSE(a.PeerAlive());
  EXPECT_THAT(a.Poll(), IsOkAndHolds(true));
  EXPECT_THAT(a.Recv(), IsOkAndHolds("last words"));
  EXPECT_THAT(a.Recv(), StatusIs(absl::StatusCode::kUnavailable, HasSubstr("exited")));
  EXPECT_THAT(a.Poll(absl::Seconds(10)), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(Pipe, ClosedEndIsFailedPrecondition) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  Pipe& a = ends->first;
  a.Close();
  EXPECT_TRUE(a.closed());
  EXPECT_THAT(a.Send("x"), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(a.Recv(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(a.Poll(), StatusIs(absl::StatusCode::kFailedPrecondition));
  Pipe moved_from;
  EXPECT_THAT(moved_from.Send("x"), StatusIs(absl::StatusCode::kFailedPrecondition));
}

// The receiving side: the child sends, then dies by SIGKILL; the parent,
// blocked in Recv, gets what was sent and then kUnavailable.
TEST(Pipe, ChildKilledWhileParentReceives) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [parent, child] = *ends;
  const pid_t pid = ::fork();
  if (pid == 0) {
    parent.Close();
    (void)child.Send("before dying");
    ::raise(SIGKILL);
  }
  child.Close();
  EXPECT_THAT(parent.Recv(absl::Seconds(30)), IsOkAndHolds("before dying"));
  EXPECT_THAT(parent.Recv(absl::Seconds(30)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(WaitExit(pid), 128 + SIGKILL);
}

// The sending side: the child dies without reading; the parent's Send that
// has to wait for room gets kUnavailable instead of blocking forever.
TEST(Pipe, SenderBlockedOnDeadReceiverIsUnavailable) {
  auto ends = Pipe::Create(Capacity(64));
  ASSERT_THAT(ends, IsOk());
  auto& [parent, child] = *ends;
  const pid_t pid = ::fork();
  if (pid == 0) {
    parent.Close();
    ::raise(SIGKILL);
  }
  child.Close();
  ASSERT_THAT(parent.Send(std::string(56, 'x')), IsOk());  // fits: no check
  EXPECT_THAT(parent.Send("more", absl::Seconds(30)),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(WaitExit(pid), 128 + SIGKILL);
}

// The other side of the fork: the parent dies; its child, blocked in Recv,
// gets kUnavailable. (A middle process plays the parent so that the test
// process survives to check the result, which the child reports through a
// second pipe.)
TEST(Pipe, ParentKilledWhileChildReceives) {
  auto report = Pipe::Create(Capacity(4096));
  ASSERT_THAT(report, IsOk());
  const pid_t middle = ::fork();
  if (middle == 0) {
    report->first.Close();
    auto ends = Pipe::Create(Capacity(4096));
    if (!ends.ok()) ::_exit(1);
    auto& [parent, child] = *ends;
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      parent.Close();
      auto first = child.Recv(absl::Seconds(30));
      auto second = child.Recv(absl::Seconds(30));
      (void)report->second.Send(absl::StrCat(
          first.ok() ? *first : first.status().ToString(), "|",
          absl::StatusCodeToString(second.status().code())));
      ::_exit(0);
    }
    report->second.Close();
    child.Close();
    (void)parent.Send("hello from the parent");
    ::raise(SIGKILL);
  }
  report->second.Close();
  EXPECT_EQ(WaitExit(middle), 128 + SIGKILL);
  EXPECT_THAT(report->first.Recv(absl::Seconds(30)),
              IsOkAndHolds("hello from the parent|UNAVAILABLE"));
}

TEST(Pipe, ConsumeReadsInPlaceFromAForkedSenderAlsoWhenWrapped) {
  // A 4 KiB ring and messages of up to 1500 bytes: many wrap, and the
  // sender blocks on a full ring, so each Consume must wake it.
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [parent, child] = *ends;
  auto message = [](int i) {
    std::string m = absl::StrCat(i, ":");
    m.resize((i * 7919) % 1500, static_cast<char>('a' + i % 26));
    return m;
  };
  constexpr int kCount = 2000;
  const pid_t pid = ::fork();
  if (pid == 0) {
    parent.Close();
    for (int i = 0; i < kCount; ++i) {
      if (!child.Send(message(i)).ok()) ::_exit(1);
    }
    ::_exit(0);
  }
  child.Close();
  int wrapped = 0;
  std::string scratch;
  for (int i = 0; i < kCount; ++i) {
    std::string got;
    ASSERT_THAT(parent.Consume(
                    [&](const MessageView& view) {
                      if (!view.contiguous()) ++wrapped;
                      got = std::string(view.Flatten(&scratch));
                      return absl::OkStatus();
                    },
                    absl::Seconds(30)),
                IsOk());
    ASSERT_EQ(got, message(i)) << i;
  }
  EXPECT_GT(wrapped, 10);
  EXPECT_EQ(WaitExit(pid), 0);
  // The sender exited: nothing is left.
  std::string out;
  EXPECT_THAT(parent.Consume(CopyMessageTo(&out), absl::Seconds(10)),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("Pipe::Consume: the other end")));
}

TEST(Pipe, ConsumeErrorsTimeoutAndClosedEnd) {
  auto ends = Pipe::Create(Capacity(4096));
  ASSERT_THAT(ends, IsOk());
  auto& [a, b] = *ends;
  std::string out;
  const absl::Time start = absl::Now();
  EXPECT_THAT(a.Consume(CopyMessageTo(&out), absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded,
                       HasSubstr("Pipe::Consume: no message")));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(50));
  // The callback's error is returned and the message removed.
  ASSERT_THAT(b.Send("poison"), IsOk());
  ASSERT_THAT(b.Send("next"), IsOk());
  EXPECT_THAT(a.Consume([](const MessageView& view) {
    return absl::DataLossError(absl::StrCat("bad ", view.first()));
  }),
              StatusIs(absl::StatusCode::kDataLoss, "bad poison"));
  // A callback that throws leaves the message.
  EXPECT_THROW((void)a.Consume([](const MessageView&) -> absl::Status {
    throw std::runtime_error("callback failed");
  }),
               std::runtime_error);
  EXPECT_THAT(a.Recv(), IsOkAndHolds("next"));
  // The peer sends its last words and closes: they are still delivered.
  ASSERT_THAT(b.Send("last words"), IsOk());
  b.Close();
  EXPECT_THAT(a.Consume(CopyMessageTo(&out)), IsOk());
  EXPECT_EQ(out, "last words");
  EXPECT_THAT(a.Consume(CopyMessageTo(&out)), StatusIs(absl::StatusCode::kUnavailable));
  a.Close();
  EXPECT_THAT(a.Consume(CopyMessageTo(&out)),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("Pipe::Consume: this end is closed")));
}

}  // namespace
}  // namespace taskfork::ipc
