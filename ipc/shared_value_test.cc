#include "ipc/shared_value.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "base/fd.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "ipc/internal/test_util.h"

namespace taskfork::ipc {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;

struct Big {
  char name[32];
  int64_t a;
  int64_t b;
};

static_assert(SharedValue<int64_t>::kLockFree);
static_assert(!SharedValue<Big>::kLockFree);
static_assert(SharedArray<int32_t>::kLockFree);
static_assert(!SharedArray<Big>::kLockFree);

template <typename F>
std::vector<pid_t> ForkN(int n, F body) {
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      body(i);
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  return pids;
}

void JoinAll(const std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

// Starts a child that calls `body`, which reports over `ready` once it is in
// the middle of an update and then waits to be killed; kills it there.
template <typename F>
void KillInsideUpdate(F body) {
  auto pipe = OwnedFd::Pipe();
  ASSERT_THAT(pipe, IsOk());
  const pid_t pid = ::fork();
  if (pid == 0) {
    body(pipe->write.get());
    ::_exit(1);  // not reached
  }
  pipe->write.Close().IgnoreError();
  char c;
  ASSERT_EQ(::read(pipe->read.get(), &c, 1), 1);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

TEST(SharedValue, LockFreeIntegerAcrossProcesses) {
  auto value = SharedValue<int64_t>::Create(5);
  ASSERT_THAT(value, IsOk());
  EXPECT_EQ(value->Load(), 5);
  value->Store(0);
  JoinAll(ForkN(4, [&](int) {
    for (int i = 0; i < 10000; ++i) value->FetchAdd(1);
  }));
  EXPECT_EQ(value->Load(), 40000);
  EXPECT_EQ(value->Exchange(7), 40000);
  int64_t expected = 6;
  EXPECT_FALSE(value->CompareExchange(expected, 8));
  EXPECT_EQ(expected, 7);
  EXPECT_TRUE(value->CompareExchange(expected, 8));
  EXPECT_EQ(value->Update([](int64_t& v) { v *= 2; }), 16);
  EXPECT_EQ(value->Load(), 16);
}

TEST(SharedValue, LockedStructStaysConsistentAcrossProcesses) {
  Big initial{};
  std::strcpy(initial.name, "counter");
  auto value = SharedValue<Big>::Create(initial);
  ASSERT_THAT(value, IsOk());
  JoinAll(ForkN(4, [&](int) {
    for (int i = 0; i < 2000; ++i) {
      value->Update([](Big& v) {
        ++v.a;
        ++v.b;
      });
    }
  }));
  const Big result = value->Load();
  EXPECT_STREQ(result.name, "counter");
  EXPECT_EQ(result.a, 8000);
  EXPECT_EQ(result.b, 8000);
  Big stored = result;
  stored.a = -1;
  value->Store(stored);
  EXPECT_EQ(value->Load().a, -1);
}

TEST(SharedValue, KilledInsideUpdateLeavesTheOldValueAndTheLockUsable) {
  Big initial{};
  initial.a = 1;
  initial.b = 1;
  auto value = SharedValue<Big>::Create(initial);
  ASSERT_THAT(value, IsOk());
  KillInsideUpdate([&](int ready) {
    value->Update([&](Big& v) {
      v.a = 999;  // half of the update...
      (void)::write(ready, "x", 1);
      for (;;) ::pause();  // ...killed here, holding the lock
    });
  });
  const Big after = value->Load();  // must not deadlock
  EXPECT_EQ(after.a, 1);
  EXPECT_EQ(after.b, 1);
  EXPECT_EQ(value->Update([](Big& v) { v.b = 2; }).b, 2);
}

TEST(SharedArray, LockFreeElementsAcrossProcesses) {
  auto array = SharedArray<int32_t>::Create(4, 0);
  ASSERT_THAT(array, IsOk());
  EXPECT_EQ(array->size(), 4);
  JoinAll(ForkN(4, [&](int child) {
    for (int i = 0; i < 1000; ++i) array->FetchAdd(static_cast<size_t>(child), 1);
  }));
  EXPECT_THAT(array->Snapshot(), ElementsAre(1000, 1000, 1000, 1000));
  array->Set(2, 5);
  EXPECT_EQ(array->Get(2), 5);
  const std::vector<int32_t> values = {1, 2, 3, 4};
  array->Assign(values);
  array->Update([](absl::Span<int32_t> v) { v[0] = v[3] * 10; });
  EXPECT_THAT(array->Snapshot(), ElementsAre(40, 2, 3, 4));
}

TEST(SharedArray, LockedElementsAndAllOrNothingUpdate) {
  Big fill{};
  auto array = SharedArray<Big>::Create(3, fill);
  ASSERT_THAT(array, IsOk());
  JoinAll(ForkN(3, [&](int) {
    for (int i = 0; i < 500; ++i) {
      array->Update([](absl::Span<Big> v) {
        for (Big& b : v) ++b.a;
      });
    }
  }));
  for (const Big& b : array->Snapshot()) EXPECT_EQ(b.a, 1500);
  Big one{};
  one.b = 7;
  array->Set(1, one);
  EXPECT_EQ(array->Get(1).b, 7);
  KillInsideUpdate([&](int ready) {
    array->Update([&](absl::Span<Big> v) {
      v[0].a = -5;
      (void)::write(ready, "x", 1);
      for (;;) ::pause();
    });
  });
  EXPECT_EQ(array->Get(0).a, 1500);  // the killed update never happened
  array->Update([](absl::Span<Big> v) { v[2].b = 3; });
  EXPECT_EQ(array->Get(2).b, 3);
}

TEST(SharedArray, ZeroSizeIsInvalidArgument) {
  EXPECT_THAT(SharedArray<int>::Create(0), StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SharedArray<Big>::Create(size_t{1} << 62),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace taskfork::ipc
