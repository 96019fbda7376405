#include "fork/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::IsOkAndHolds;
using ::taskfork::testing::StatusIs;
using ::testing::Contains;
using ::testing::IsEmpty;

[[noreturn]] void BlockForever() {
  for (;;) ::pause();
}

struct IntPipe {
  IntPipe() {
    auto ends = OwnedFd::Pipe();
    CHECK(ends.ok()) << ends.status();
    read = std::move(ends->read);
    write = std::move(ends->write);
  }
  void Send(int v) const { CHECK_EQ(::write(write.get(), &v, sizeof(v)), 4); }
  int Receive() const {
    int v = -1;
    CHECK_EQ(::read(read.get(), &v, sizeof(v)), 4);
    return v;
  }
  OwnedFd read;
  OwnedFd write;
};

OwnedFd PidfdOf(pid_t pid) {
  return OwnedFd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
}

bool Exited(int pidfd) {
  pollfd fd{pidfd, POLLIN, 0};
  return ::poll(&fd, 1, 0) == 1;
}

bool IsSubreaper() {
  int flag = 0;
  CHECK_EQ(::prctl(PR_GET_CHILD_SUBREAPER, &flag), 0);
  return flag != 0;
}

// A Process whose descendant escapes its process group: child -> setsid()
// intermediate -> grandchild; the intermediate exits at once, so the
// grandchild is re-parented to the nearest subreaper. Returns the escaped pid
// once the intermediate has exited (the kernel re-parents before it notifies
// the intermediate's pidfd).
pid_t StartEscapee(absl::StatusOr<Process>* process, bool ignore_sigterm) {
  IntPipe intermediate;
  IntPipe escaped;
  *process = Process::Start({}, [&intermediate, &escaped, ignore_sigterm] {
    const pid_t b = ::fork();
    if (b == 0) {
      ::setsid();  // leaves the Process's group
      if (::fork() == 0) {
        if (ignore_sigterm) ::signal(SIGTERM, SIG_IGN);
        escaped.Send(::getpid());
        BlockForever();
      }
      ::_exit(0);
    }
    intermediate.Send(b);
    BlockForever();
    return 0;
  });
  CHECK(process->ok()) << process->status();
  OwnedFd b_pidfd = PidfdOf(intermediate.Receive());
  CHECK(b_pidfd.valid());  // a zombie until its parent dies: still there
  pollfd fd{b_pidfd.get(), POLLIN, 0};
  CHECK_EQ(::poll(&fd, 1, 60000), 1);
  return escaped.Receive();
}

TEST(Supervisor, OnlyOneAtATime) {
  ASSERT_FALSE(IsSubreaper());
  {
    auto supervisor = Supervisor::Create();
    ASSERT_THAT(supervisor, IsOk());
    EXPECT_TRUE(IsSubreaper());
    EXPECT_THAT(Supervisor::Create(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    Supervisor moved = *std::move(supervisor);
    EXPECT_THAT(Supervisor::Create(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  EXPECT_FALSE(IsSubreaper());  // cleared again
  EXPECT_THAT(Supervisor::Create(), IsOk());
}

TEST(Supervisor, ProcessChildrenAreNotOrphans) {
  auto supervisor = Supervisor::Create();
  ASSERT_THAT(supervisor, IsOk());
  auto p = Process::Start({}, [] {
    BlockForever();
    return 0;
  });
  ASSERT_THAT(p, IsOk());
  EXPECT_THAT(supervisor->Orphans(), IsOkAndHolds(IsEmpty()));
  EXPECT_THAT(supervisor->KillOrphans(absl::Seconds(1)), IsOkAndHolds(IsEmpty()));
  EXPECT_TRUE(p->is_alive());
  ASSERT_THAT(p->Kill(), IsOk());
}

TEST(Supervisor, FindsKillsAndReapsDescendantsThatLeftTheGroup) {
  auto supervisor = Supervisor::Create();
  ASSERT_THAT(supervisor, IsOk());
  absl::StatusOr<Process> p;
  const pid_t escaped = StartEscapee(&p, /*ignore_sigterm=*/false);
  OwnedFd watch = PidfdOf(escaped);
  ASSERT_TRUE(watch.valid());
  // Re-parented to us already (its parent exited), while the Process runs.
  EXPECT_THAT(supervisor->Orphans(), IsOkAndHolds(Contains(escaped)));
  // Terminating the Process's group does not reach it...
  ASSERT_THAT(p->Terminate(absl::Seconds(60)), IsOk());
  EXPECT_FALSE(Exited(watch.get()));
  // ...the Supervisor does.
  auto ended = supervisor->KillOrphans(absl::Seconds(60));
  ASSERT_THAT(ended, IsOk());
  std::vector<pid_t> pids;
  for (const ExitStatus& e : *ended) pids.push_back(e.pid);
  EXPECT_THAT(pids, Contains(escaped));
  for (const ExitStatus& e : *ended) {
    if (e.pid == escaped) {
      EXPECT_EQ(e.signal, SIGTERM);
    }
  }
  EXPECT_TRUE(Exited(watch.get()));
  EXPECT_THAT(supervisor->Orphans(), IsOkAndHolds(IsEmpty()));
  errno = 0;
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);  // nothing left to reap
  EXPECT_EQ(errno, ECHILD);
}

TEST(Supervisor, SigkillAfterTheGrace) {
  auto supervisor = Supervisor::Create();
  ASSERT_THAT(supervisor, IsOk());
  absl::StatusOr<Process> p;
  const pid_t escaped = StartEscapee(&p, /*ignore_sigterm=*/true);
  ASSERT_THAT(p->Kill(), IsOk());
  auto ended = supervisor->KillOrphans(absl::Milliseconds(50));
  ASSERT_THAT(ended, IsOk());
  bool found = false;
  for (const ExitStatus& e : *ended) {
    if (e.pid == escaped) {
      found = true;
      EXPECT_EQ(e.signal, SIGKILL);
    }
  }
  EXPECT_TRUE(found);
}

TEST(Supervisor, ReapsOrphansThatExitedByThemselves) {
  auto supervisor = Supervisor::Create();
  ASSERT_THAT(supervisor, IsOk());
  IntPipe orphan_pid;
  IntPipe release;  // the orphan exits on end of file
  auto p = Process::Start({}, [&orphan_pid, &release] {
    const pid_t orphan = ::fork();
    if (orphan == 0) {
      ::close(release.write.get());
      char c;
      while (::read(release.read.get(), &c, 1) < 0 && errno == EINTR) {
      }
      ::_exit(17);
    }
    orphan_pid.Send(orphan);
    return 0;  // exits: the grandchild is re-parented to us
  });
  ASSERT_THAT(p, IsOk());
  const pid_t orphan = orphan_pid.Receive();
  OwnedFd watch = PidfdOf(orphan);
  ASSERT_THAT(p->Join(), IsOk());
  // Let the orphan go: it reads EOF once no write end is left open.
  release.write.Reset();
  pollfd fd{watch.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&fd, 1, 60000), 1);
  auto reaped = supervisor->ReapExitedOrphans();
  ASSERT_THAT(reaped, IsOk());
  ASSERT_EQ(reaped->size(), 1u);
  EXPECT_EQ((*reaped)[0].pid, orphan);
  EXPECT_EQ((*reaped)[0].exit_code, 17);
  EXPECT_THAT(supervisor->ReapExitedOrphans(), IsOkAndHolds(IsEmpty()));
}

TEST(Supervisor, DestructorKillsAndReapsWhatIsLeft) {
  pid_t escaped;
  OwnedFd watch;
  {
    auto supervisor = Supervisor::Create();
    ASSERT_THAT(supervisor, IsOk());
    absl::StatusOr<Process> p;
    escaped = StartEscapee(&p, /*ignore_sigterm=*/true);
    watch = PidfdOf(escaped);
    ASSERT_THAT(p->Kill(), IsOk());
  }
  EXPECT_TRUE(Exited(watch.get()));
  errno = 0;
  EXPECT_EQ(::waitpid(escaped, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

}  // namespace
}  // namespace taskfork
