#include "fork/process_set.h"

#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "fork/testing/gate.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::Gate;
using ::taskfork::testing::IsOk;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

Process StartWaitingFor(const Gate& gate, int code) {
  auto process = Process::Start({}, [&gate, code] {
    gate.Wait();
    return code;
  });
  CHECK(process.ok()) << process.status();
  return *std::move(process);
}

TEST(ProcessSet, ReportsTheProcessThatExitedAndOnlyThat) {
  Gate first_gate, second_gate;
  Process first = StartWaitingFor(first_gate, 1);
  Process second = StartWaitingFor(second_gate, 2);
  ProcessSet set;
  set.Add(&first);
  set.Add(&second);
  second_gate.Open();
  absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfiniteFuture());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, ElementsAre(&second));
  EXPECT_THAT(ready->fds, IsEmpty());
  EXPECT_EQ(second.Join(absl::ZeroDuration())->exit_code, 2);

  // The reaped one is dropped; the other is still waited for.
  ready = set.Wait(absl::Now() + absl::Milliseconds(20));
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, IsEmpty());
  EXPECT_EQ(set.process_count(), 1u);
  first_gate.Open();
  ready = set.Wait(absl::InfiniteFuture());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, ElementsAre(&first));
  EXPECT_EQ(first.Join()->exit_code, 1);
}

TEST(ProcessSet, AnExitedProcessIsReportedUntilReaped) {
  Process done = *Process::Start({}, [] { return 0; });
  ProcessSet set;
  set.Add(&done);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfiniteFuture());
    ASSERT_THAT(ready, IsOk());
    EXPECT_THAT(ready->exited, ElementsAre(&done));
  }
  ASSERT_THAT(done.Join(), IsOk());
  absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfinitePast());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, IsEmpty());
  EXPECT_TRUE(set.empty());
}

TEST(ProcessSet, ExtraDescriptorsAreReported) {
  Gate gate;
  Process running = StartWaitingFor(gate, 0);
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  ProcessSet set;
  set.Add(&running);
  set.AddFd(pipe->read.get());
  ASSERT_EQ(::write(pipe->write.get(), "x", 1), 1);
  absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfiniteFuture());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, IsEmpty());
  EXPECT_THAT(ready->fds, ElementsAre(pipe->read.get()));

  // A hang-up counts as ready too; a removed descriptor is not watched.
  pipe->write.Reset();
  set.RemoveFd(pipe->read.get());
  ready = set.Wait(absl::InfinitePast());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->fds, IsEmpty());
  gate.Open();
  ASSERT_THAT(running.Join(), IsOk());
}

TEST(ProcessSet, DeadlinePassesWithNothingReady) {
  Gate gate;
  Process running = StartWaitingFor(gate, 0);
  ProcessSet set;
  set.Add(&running);
  const absl::Time start = absl::Now();
  absl::StatusOr<ProcessSet::Ready> ready =
      set.Wait(start + absl::Milliseconds(30));
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, IsEmpty());
  EXPECT_THAT(ready->fds, IsEmpty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(30));
  gate.Open();
  ASSERT_THAT(running.Join(), IsOk());
}

TEST(ProcessSet, DrainsLargeResultsWhileWaiting) {
  // 8 MiB does not fit in a pipe: the child finishes only if the set drains.
  constexpr size_t kSize = 8u << 20;
  auto big = Process::StartWithResultBytes(
      {}, [] { return std::string(kSize, 'r'); });
  ASSERT_THAT(big, IsOk());
  Gate gate;
  Process other = StartWaitingFor(gate, 0);
  ProcessSet set;
  set.Add(&*big);
  set.Add(&other);
  absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfiniteFuture());
  ASSERT_THAT(ready, IsOk());
  EXPECT_THAT(ready->exited, ElementsAre(&*big));
  ASSERT_THAT(big->Join(absl::ZeroDuration()), IsOk());
  absl::StatusOr<std::string> bytes = big->TakeResultBytes();
  ASSERT_THAT(bytes, IsOk());
  EXPECT_EQ(bytes->size(), kSize);
  gate.Open();
  ASSERT_THAT(other.Join(), IsOk());
}

TEST(ProcessSet, ManyExitsAtOnceAreAllReported) {
  Gate gate;
  Process a = StartWaitingFor(gate, 0);
  Process b = StartWaitingFor(gate, 0);
  Process c = StartWaitingFor(gate, 0);
  ProcessSet set;
  set.Add(&a);
  set.Add(&b);
  set.Add(&c);
  for (int i = 0; i < 3; ++i) gate.Open();  // one byte for each child
  std::vector<Process*> seen;
  while (seen.size() < 3) {
    absl::StatusOr<ProcessSet::Ready> ready = set.Wait(absl::InfiniteFuture());
    ASSERT_THAT(ready, IsOk());
    for (Process* p : ready->exited) {
      ASSERT_THAT(p->Join(), IsOk());
      seen.push_back(p);
    }
  }
  EXPECT_THAT(seen, UnorderedElementsAre(&a, &b, &c));
}

TEST(ProcessSetDeathTest, AddingAReapedProcessIsAContractViolation) {
  Process done = *Process::Start({}, [] { return 0; });
  ASSERT_THAT(done.Join(), IsOk());
  ProcessSet set;
  EXPECT_DEATH(set.Add(&done), "is reaped");
}

}  // namespace
}  // namespace taskfork
