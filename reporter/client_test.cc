#include "reporter/client.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/pcall.h"
#include "fork/process.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "fork/testing/run_in_child.h"
#include "gtest/gtest.h"
#include "reporter/report_builder.h"
#include "reporter/server.h"
#include "reporter/test_util.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

class ReportClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir();
    ReporterServerOptions o;
    o.runinfo_dir = dir_;
    o.job_name = "job";
    auto server = ReporterServer::Start(o);
    ASSERT_THAT(server, IsOk());
    server_.emplace(std::move(*server));
  }

  ReportClientOptions Options(const std::string& task) const {
    ReportClientOptions o;
    o.socket_path = server_->socket_path();
    o.task_id = task;
    o.io_timeout = absl::Seconds(20);
    return o;
  }

  JobReport Finish() {
    auto done = server_->Finalize();
    CHECK(done.ok()) << done.status();
    return done->report;
  }

  std::string dir_;
  std::optional<ReporterServer> server_;
};

TEST(ReportClientNoServerTest, ConnectRetriesABoundedNumberOfTimes) {
  const std::string dir = MakeTempDir();
  ReportClientOptions o;
  o.socket_path = dir + "/reporter.sock";
  o.task_id = "t";
  o.connect_attempts = 3;
  o.initial_backoff = absl::Milliseconds(1);
  const absl::Time start = absl::Now();
  EXPECT_THAT(ReportClient::Connect(o),
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AllOf(HasSubstr(o.socket_path),
                                        HasSubstr("after 3 attempts"),
                                        HasSubstr("ENOENT"))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST(ReportClientNoServerTest, RejectsBadOptions) {
  ReportClientOptions o;
  o.task_id = "t";
  EXPECT_THAT(ReportClient::Connect(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o.socket_path = "/tmp/x.sock";
  o.task_id = "";
  EXPECT_THAT(ReportClient::Connect(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o.task_id = "t";
  o.socket_path = "/tmp/" + std::string(200, 'x');
  EXPECT_THAT(ReportClient::Connect(o),
              StatusIs(absl::StatusCode::kUnavailable));  // long, does not exist
  EXPECT_THAT(ReportSubscriber::Connect(""),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(ReportClientNoServerTest, ConnectionRefusedIsRetried) {
  // A bound socket nobody listens on: ECONNREFUSED.
  const std::string path = MakeTempDir() + "/dead.sock";
  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ReportClientOptions o;
  o.socket_path = path;
  o.task_id = "t";
  o.connect_attempts = 2;
  o.initial_backoff = absl::Milliseconds(1);
  EXPECT_THAT(ReportClient::Connect(o),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ECONNREFUSED")));
  ::close(fd);
}

TEST_F(ReportClientTest, ScopedSectionsStepsAndResults) {
  auto client = ReportClient::Connect(Options("t"));
  ASSERT_THAT(client, IsOk());
  {
    ScopedSection tc = client->Section("tc", SectionOptions{"Testcase", "desc", 0});
    ASSERT_THAT(tc.status(), IsOk());
    {
      ScopedSection a = tc.Step("a");
      a.SetResult(Result::kFailed, "a failed");
      a.SetResult(Result::kPassed, "ignored: smaller");
    }
    ScopedSection b = tc.Step("b");
    ASSERT_THAT(b.Stop(), IsOk());
    EXPECT_THAT(b.Stop(), StatusIs(absl::StatusCode::kFailedPrecondition));
    ScopedSection empty;
    EXPECT_THAT(empty.Step("x").status(),
                StatusIs(absl::StatusCode::kFailedPrecondition));
  }
  EXPECT_THAT(client->StartSection(""), StatusIs(absl::StatusCode::kInvalidArgument));
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  const Section* tc = FindSection(r, "t", "tc");
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(tc->type(), "Testcase");
  EXPECT_EQ(tc->description(), "desc");
  EXPECT_EQ(tc->result().value(), RESULT_FAILED);
  EXPECT_EQ(tc->result().reason(), "a: a failed");
  ASSERT_EQ(tc->sections_size(), 2);
  EXPECT_EQ(tc->sections(0).result().reason(), "a failed");
  EXPECT_EQ(tc->sections(1).result().value(), RESULT_PASSED);
}

TEST_F(ReportClientTest, ReconnectsAfterForkInChildAndGrandchild) {
  auto client = ReportClient::Connect(Options("t"));
  ASSERT_THAT(client, IsOk());
  ScopedSection parent = client->Section("parent");
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The inherited client and section work without any user action.
    {
      ScopedSection step = parent.Step("child step");
      const pid_t grandchild = ::fork();
      if (grandchild == 0) {
        { ScopedSection g = step.Step("grandchild step"); }
        ::_exit(client->Sync().ok() ? 0 : 11);
      }
      if (WaitChild(grandchild) != 0) ::_exit(12);
    }
    ::_exit(client->Sync().ok() ? 0 : 13);
  }
  EXPECT_EQ(WaitChild(child), 0);
  { ScopedSection after = parent.Step("parent step after fork"); }
  ASSERT_THAT(parent.Stop(), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  const TaskReport* t = FindTask(r, "t");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->pids_size(), 3);
  EXPECT_EQ(CountSections(*t), 4);
  const Section* p = FindSection(r, "t", "parent");
  ASSERT_EQ(p->sections_size(), 2);
  EXPECT_EQ(p->sections(0).name(), "child step");
  EXPECT_EQ(p->sections(0).pid(), child);
  ASSERT_EQ(p->sections(0).sections_size(), 1);
  EXPECT_EQ(p->sections(0).sections(0).name(), "grandchild step");
  EXPECT_NE(p->sections(0).sections(0).pid(), child);
  EXPECT_EQ(p->sections(1).name(), "parent step after fork");
  EXPECT_EQ(p->result().value(), RESULT_PASSED);
}

TEST_F(ReportClientTest, BufferedEventsAreSentBeforeForkNotTwice) {
  ReportClientOptions o = Options("t");
  o.buffer_bytes = 1 << 20;  // nothing is sent unless flushed
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  { ScopedSection s = client->Section("before fork"); }
  // The child exits without flushing: only the at-fork prepare handler's
  // flush can have sent "before fork", and the child must not resend it.
  EXPECT_THAT(testing::RunInChild([&] { return client->Sync(); }), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  EXPECT_EQ(CountSections(*FindTask(r, "t")), 1);
  EXPECT_EQ(FindSection(r, "t", "before fork")->result().value(), RESULT_PASSED);
}

TEST_F(ReportClientTest, ThreadSafe) {
  auto client = ReportClient::Connect(Options("t"));
  ASSERT_THAT(client, IsOk());
  constexpr int kThreads = 4, kSections = 300;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < kSections; ++k) {
        ScopedSection s = client->Section(absl::StrCat("th", i, "-", k));
        ScopedSection step = s.Step("step");
        if (k % 100 == 0) {
          ASSERT_THAT(client->Flush(), IsOk());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  EXPECT_EQ(CountSections(*FindTask(r, "t")), 2 * kThreads * kSections);
  EXPECT_EQ(FindTask(r, "t")->summary().passed(),
            static_cast<uint32_t>(kThreads * kSections));
}

TEST_F(ReportClientTest, TaskEventsAndLogPositions) {
  uint64_t offset = 100;
  ReportClientOptions o = Options("t");
  o.log_position = [&]() -> std::optional<LogPosition> {
    return LogPosition{"TaskLog.t", offset};
  };
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  TaskStart start;
  start.set_name("Task T");
  start.set_logfile("TaskLog.t");
  ASSERT_THAT(client->StartTask(start), IsOk());
  auto id = client->StartSection("logged");
  ASSERT_THAT(id, IsOk());
  offset = 350;
  google::protobuf::Map<std::string, std::string> data;
  data["k"] = "v";
  ASSERT_THAT(client->StopSection(*id, Result::kSkipped, "not today", &data), IsOk());
  ASSERT_THAT(client->StopTask(Result::kPassed), IsOk());
  ASSERT_THAT(client->Close(), IsOk());
  EXPECT_THAT(client->Flush(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(client->StartSection("x"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  const JobReport r = Finish();
  const TaskReport* t = FindTask(r, "t");
  EXPECT_EQ(t->name(), "Task T");
  EXPECT_EQ(t->logfile(), "TaskLog.t");
  const Section* s = FindSection(r, "t", "logged");
  EXPECT_EQ(s->logs().file(), "TaskLog.t");
  EXPECT_EQ(s->logs().begin(), 100u);
  EXPECT_EQ(s->logs().size(), 250u);
  EXPECT_EQ(s->result().value(), RESULT_SKIPPED);
  EXPECT_EQ(s->result().data().at("k"), "v");
  EXPECT_EQ(t->result().value(), RESULT_PASSED);
}

// A forked child ends with _exit() and runs no destructors: what it queued
// (sections stopped just before it returned, never flushed) is sent by the
// client's child-exit handler. "flushed start": the section's start reached
// the server before the child ended, its stop did not (without the handler
// that section was Errored "... disconnected"); "queued": nothing was sent
// (without the handler the section was missing).
void ReportFromAChild(ReportClient& client, ScopedSection& parent,
                      const std::string& who) {
  { ScopedSection queued = client.Section(who + " queued"); }
  ScopedSection flushed = client.Section(who + " flushed start");
  CHECK(client.Flush().ok());
  { ScopedSection step = parent.Step(who + " step"); }
  CHECK(flushed.Stop().ok());
}

void ExpectChildSectionsPassed(const JobReport& r, const std::string& who) {
  for (const std::string& name : {who + " queued", who + " flushed start",
                                  who + " step"}) {
    const Section* s = FindSection(r, "t", name);
    ASSERT_NE(s, nullptr) << name;
    EXPECT_EQ(s->result().value(), RESULT_PASSED)
        << name << ": " << s->result().reason();
  }
}

TEST_F(ReportClientTest, ProcessChildThatReturnsWithoutFlushLosesNothing) {
  ReportClientOptions o = Options("t");
  o.buffer_bytes = 1 << 20;  // nothing is sent unless flushed
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  ScopedSection parent = client->Section("parent");
  auto child = Process::Start({}, [&] {
    ReportFromAChild(*client, parent, "process child");
    return 0;  // no Flush(), no Close(): the handler sends
  });
  ASSERT_THAT(child, IsOk());
  auto exited = child->Join(absl::Seconds(60));
  ASSERT_THAT(exited, IsOk());
  EXPECT_TRUE(exited->success()) << exited->ToString();
  ASSERT_THAT(parent.Stop(), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  ExpectChildSectionsPassed(r, "process child");
  EXPECT_EQ(FindSection(r, "t", "parent")->result().value(), RESULT_PASSED);
  EXPECT_EQ(FindTask(r, "t")->result().value(), RESULT_PASSED);
}

TEST_F(ReportClientTest, PcallChildrenThatReturnWithoutFlushLoseNothing) {
  ReportClientOptions o = Options("t");
  o.buffer_bytes = 1 << 20;
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  ScopedSection parent = client->Section("parent");
  auto done = Pcall(
      [&](int i) {
        ReportFromAChild(*client, parent, absl::StrCat("pcall child ", i));
        return i;
      },
      std::vector<int>{0, 1, 2});
  ASSERT_THAT(done, IsOk());
  ASSERT_THAT(parent.Stop(), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  const JobReport r = Finish();
  for (int i = 0; i < 3; ++i) {
    ExpectChildSectionsPassed(r, absl::StrCat("pcall child ", i));
  }
  EXPECT_EQ(FindSection(r, "t", "parent")->sections_size(), 3);
  EXPECT_EQ(FindTask(r, "t")->result().value(), RESULT_PASSED);
}

// The child-exit send is bounded by io_timeout: a server that stopped
// reading (SIGSTOP) delays a child's exit by that much, not forever, and a
// server that is gone does not delay it at all (EPIPE at once).
TEST_F(ReportClientTest, ChildExitNeverHangsOnAStuckOrDeadServer) {
  ReportClientOptions o = Options("t");
  o.buffer_bytes = 64 << 20;
  o.io_timeout = absl::Milliseconds(300);
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  auto ready = OwnedFd::Pipe(0);
  auto go = OwnedFd::Pipe(0);
  ASSERT_THAT(ready, IsOk());
  ASSERT_THAT(go, IsOk());
  // 16 MiB of queued events: more than the socket buffers hold.
  const std::string big(60000, 'x');
  auto child = Process::Start({}, [&] {
    for (int i = 0; i < 280; ++i) {
      ScopedSection s = client->Section("s", {"Section", big, 0});
    }
    char c = 1;
    if (::write(ready->write.get(), &c, 1) != 1) return 10;
    if (::read(go->read.get(), &c, 1) != 1) return 11;
    return 0;  // the exit send stalls on the stopped server, then gives up
  });
  ASSERT_THAT(child, IsOk());
  char c;
  ASSERT_EQ(::read(ready->read.get(), &c, 1), 1);
  ASSERT_EQ(::kill(server_->pid(), SIGSTOP), 0);
  ASSERT_EQ(::write(go->write.get(), &c, 1), 1);
  auto exited = child->Join(absl::Seconds(60));  // hung: kDeadlineExceeded
  ::kill(server_->pid(), SIGCONT);
  ASSERT_THAT(exited, IsOk());
  EXPECT_TRUE(exited->success()) << exited->ToString();

  // Dead server: the child queued events, the server is SIGKILLed, the child
  // returns and exits at once (an io_timeout of an hour would show a hang).
  o.io_timeout = absl::Hours(1);
  o.buffer_bytes = 1 << 20;
  auto second = ReportClient::Connect(o);
  ASSERT_THAT(second, IsOk());
  auto dead = Process::Start({}, [&] {
    { ScopedSection s = second->Section("queued"); }
    char b = 1;
    if (::write(ready->write.get(), &b, 1) != 1) return 10;
    if (::read(go->read.get(), &b, 1) != 1) return 11;
    return 0;
  });
  ASSERT_THAT(dead, IsOk());
  ASSERT_EQ(::read(ready->read.get(), &c, 1), 1);
  ASSERT_EQ(::kill(server_->pid(), SIGKILL), 0);
  {  // gone for sure (its sockets closed) before the child goes on
    OwnedFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, server_->pid(), 0)));
    ASSERT_TRUE(pidfd.valid());
    pollfd p{pidfd.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 60000), 1);
  }
  ASSERT_EQ(::write(go->write.get(), &c, 1), 1);
  exited = dead->Join(absl::Seconds(60));
  ASSERT_THAT(exited, IsOk());
  EXPECT_TRUE(exited->success()) << exited->ToString();
  server_.reset();
}

}  // namespace
}  // namespace taskfork::reporter
