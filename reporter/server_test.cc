#include "reporter/server.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "fork/testing/run_in_child.h"
#include "gtest/gtest.h"
#include "reporter/client.h"
#include "reporter/frame.h"
#include "reporter/internal/io.h"
#include "reporter/junit_checker.h"
#include "reporter/report_builder.h"
#include "reporter/test_util.h"
#include "reporter/writers.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

ReporterServerOptions Options(const std::string& dir) {
  ReporterServerOptions o;
  o.runinfo_dir = dir;
  o.job_name = "job";
  return o;
}

// A connection that speaks the wire format by hand, for broken clients.
OwnedFd RawHello(const std::string& path, const std::string& task_id) {
  auto fd = reporter_internal::ConnectUnix(path, {});
  CHECK(fd.ok()) << fd.status();
  ClientMessage hello;
  hello.mutable_hello()->set_role(Hello::ROLE_CLIENT);
  hello.mutable_hello()->set_task_id(task_id);
  hello.mutable_hello()->set_pid(::getpid());
  std::string frame;
  AppendFrame(hello, &frame);
  CHECK(reporter_internal::SendAll(fd->get(), frame, absl::InfiniteFuture(), "srv").ok());
  FrameDecoder decoder;
  ServerMessage welcome;
  auto got = reporter_internal::ReadFrame(fd->get(), &decoder, &welcome,
                                          absl::Now() + absl::Seconds(30), "srv");
  CHECK(got.ok() && *got && welcome.has_welcome());
  return std::move(*fd);
}

std::string SectionStartFrame(uint64_t id, const std::string& name) {
  ClientMessage m;
  m.mutable_section_start()->set_id(id);
  m.mutable_section_start()->set_name(name);
  std::string frame;
  AppendFrame(m, &frame);
  return frame;
}

// Reads until the server closes the connection; true if it did.
bool ServerClosed(int fd) {
  char buf[4096];
  for (;;) {
    auto ready = reporter_internal::WaitFd(fd, POLLIN, absl::Now() + absl::Seconds(30));
    if (!ready.ok() || !*ready) return false;
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno == ECONNRESET) return true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return false;
  }
}

TEST(ReporterServerTest, WritesReportWithRegisteredAndReportedTasks) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions options = Options(dir);
  options.extra["cli"] = "runner job.textpb";
  auto server = ReporterServer::Start(options);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(server->socket_path(), dir + "/reporter.sock");
  EXPECT_EQ(server->bound_path(), server->socket_path());
  struct stat st;
  ASSERT_EQ(::stat(server->socket_path().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_THAT(server->CheckAlive(), IsOk());

  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t1")), IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("never")), IsOk());
  EXPECT_THAT(server->RegisterTask(TaskInfoOf("t1")),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(server->RecordTaskResult("", MakeResultInfo(Result::kPassed)),
              StatusIs(absl::StatusCode::kInvalidArgument));

  EXPECT_THAT(testing::RunInChild([&]() -> absl::Status {
                auto client = ReportClient::Connect(
                    ClientOptions(server->socket_path(), "t1"));
                TASKFORK_RETURN_IF_ERROR(client.status());
                TASKFORK_RETURN_IF_ERROR(client->StartTask());
                {
                  ScopedSection tc = client->Section("tc");
                  ScopedSection step = tc.Step("step");
                  step.SetResult(Result::kPassx, "known issue");
                }
                TASKFORK_RETURN_IF_ERROR(client->StopTask(Result::kPassed));
                return client->Sync();
              }),
              IsOk());
  ASSERT_THAT(server->RecordTaskResult("t1", MakeResultInfo(Result::kPassed)),
              IsOk());
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->paths.results_json, dir + "/results.json");
  EXPECT_EQ(done->paths.xunit_xml, dir + "/xunit.xml");
  EXPECT_EQ(ReadFile(done->paths.results_json), ResultsJson(done->report));
  EXPECT_EQ(ReadFile(done->paths.xunit_xml), JunitXml(done->report));
  EXPECT_THAT(ParseJunitXml(ReadFile(done->paths.xunit_xml)), IsOk());
  EXPECT_FALSE(Exists(dir + "/reporter.sock"));
  EXPECT_THAT(server->CheckAlive(), IsOk());

  const JobReport& r = done->report;
  EXPECT_EQ(r.extra().at("cli"), "runner job.textpb");
  EXPECT_THAT(ReadFile(done->paths.results_json),
              HasSubstr("\"extra\":{\"cli\":\"runner job.textpb\"}"));
  ASSERT_EQ(r.tasks_size(), 2);
  EXPECT_EQ(r.tasks(0).id(), "t1");
  EXPECT_EQ(r.tasks(0).result().value(), RESULT_PASSX);
  const Section* step = FindSection(r, "t1", "step");
  ASSERT_NE(step, nullptr);
  EXPECT_EQ(step->type(), "Step");
  EXPECT_EQ(step->result().reason(), "known issue");
  EXPECT_THAT(step->xref().file(), HasSubstr("server_test.cc"));
  EXPECT_EQ(r.tasks(1).result().value(), RESULT_BLOCKED);
  EXPECT_THAT(server->Finalize(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(server->RegisterTask(TaskInfoOf("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ReporterServerTest, StartValidatesOptions) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o = Options(dir);
  o.job_name = "";
  EXPECT_THAT(ReporterServer::Start(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = Options("");
  EXPECT_THAT(ReporterServer::Start(o), StatusIs(absl::StatusCode::kInvalidArgument));
  o = Options(dir + "/missing");
  EXPECT_THAT(ReporterServer::Start(o),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/missing")));
  std::ofstream(dir + "/reporter.sock") << "stale";
  EXPECT_THAT(ReporterServer::Start(Options(dir)),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr("reporter.sock")));
}

TEST(ReporterServerTest, ServerProcessHasItsOwnName) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  // Once a client's Sync() is answered the server loop runs, so its name
  // was set (it is set before the loop starts).
  auto client = ReportClient::Connect(ClientOptions(server->socket_path(), "t"));
  ASSERT_THAT(client, IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  std::ifstream comm(absl::StrCat("/proc/", server->pid(), "/comm"));
  std::string name;
  std::getline(comm, name);
  EXPECT_EQ(name, kServerProcessName);
  ASSERT_THAT(server->Finalize(), IsOk());
}

TEST(ReporterServerTest, LongSocketPathFallsBackToShortPathAndSymlink) {
  std::string dir = MakeTempDir();
  while (dir.size() < 150) {
    dir += "/a_rather_long_directory_name";
    ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  }
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(server->socket_path(), dir + "/reporter.sock");
  EXPECT_THAT(server->bound_path(), StartsWith("/tmp/taskfork-reporter-"));
  char target[256] = {};
  ASSERT_GT(::readlink(server->socket_path().c_str(), target, sizeof(target)), 0);
  EXPECT_EQ(std::string(target), server->bound_path());
  struct stat st;
  ASSERT_EQ(::stat(server->bound_path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto client = ReportClient::Connect(ClientOptions(server->socket_path(), "t"));
  ASSERT_THAT(client, IsOk());
  { ScopedSection s = client->Section("via symlink"); }
  ASSERT_THAT(client->Sync(), IsOk());
  const std::string bound = server->bound_path();
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_NE(FindSection(done->report, "t", "via symlink"), nullptr);
  EXPECT_TRUE(Exists(dir + "/results.json"));
  EXPECT_FALSE(Exists(server->socket_path()));
  EXPECT_FALSE(Exists(bound));
  EXPECT_FALSE(Exists(bound.substr(0, bound.rfind('/'))));
}

TEST(ReporterServerTest, ConcurrentClientProcesses) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  constexpr int kProcs = 8, kSections = 200;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto client = ReportClient::Connect(
          ClientOptions(server->socket_path(), absl::StrCat("task", p % 4)));
      if (!client.ok()) ::_exit(1);
      for (int i = 0; i < kSections; ++i) {
        ScopedSection s = client->Section(absl::StrCat("p", p, "s", i));
        if (i % 50 == 0) s.SetResult(Result::kFailed, "every 50th");
      }
      ::_exit(client->Sync().ok() ? 0 : 2);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids) EXPECT_EQ(WaitChild(pid), 0);
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  ASSERT_EQ(done->report.tasks_size(), 4);
  int total = 0;
  for (const TaskReport& t : done->report.tasks()) {
    EXPECT_EQ(CountSections(t), 2 * kSections);
    EXPECT_EQ(t.pids_size(), 2);
    EXPECT_EQ(t.summary().failed(), 2u * 4);
    EXPECT_EQ(t.result().value(), RESULT_FAILED);
    total += CountSections(t);
  }
  EXPECT_EQ(total, kProcs * kSections);
  EXPECT_EQ(done->report.summary().total(), static_cast<uint32_t>(kProcs * kSections));
}

TEST(ReporterServerTest, DisconnectWithOpenSectionsErrorsThem) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto client = ReportClient::Connect(ClientOptions(server->socket_path(), "t1"));
    if (!client.ok()) ::_exit(1);
    auto outer = client->StartSection("outer");
    auto inner = client->StartSection("inner", SectionOptions{"Step", "", *outer});
    if (!inner.ok() || !client->Flush().ok()) ::_exit(2);
    ::_exit(0);  // no stop: the sections stay open
  }
  EXPECT_EQ(WaitChild(pid), 0);
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const std::string reason =
      absl::StrCat("reporter client of task t1 (pid ", pid, ") disconnected");
  const Section* outer = FindSection(done->report, "t1", "outer");
  const Section* inner = FindSection(done->report, "t1", "inner");
  ASSERT_NE(outer, nullptr);
  ASSERT_NE(inner, nullptr);
  EXPECT_EQ(inner->result().value(), RESULT_ERRORED);
  EXPECT_EQ(inner->result().reason(), reason);
  EXPECT_EQ(outer->result().value(), RESULT_ERRORED);
  EXPECT_EQ(outer->result().reason(), reason);
  EXPECT_EQ(FindTask(done->report, "t1")->result().value(), RESULT_ERRORED);
  ::close(pipe_fds[0]);
  ::close(pipe_fds[1]);
}

TEST(ReporterServerTest, ClientKilledMidFrame) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  auto ends = OwnedFd::Pipe();
  ASSERT_THAT(ends, IsOk());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    OwnedFd fd = RawHello(server->socket_path(), "t1");
    const std::string whole = SectionStartFrame(1ull << 32 | 1, "open section");
    const std::string next = SectionStartFrame(1ull << 32 | 2, "cut short");
    std::string bytes = whole + next.substr(0, next.size() / 2);
    CHECK(reporter_internal::SendAll(fd.get(), bytes, absl::InfiniteFuture(), "srv").ok());
    CHECK_EQ(::write(ends->write.get(), "x", 1), 1);
    for (;;) ::pause();  // killed here, in the middle of the second frame
  }
  ends->write.Reset();
  char c;
  ASSERT_EQ(::read(ends->read.get(), &c, 1), 1);
  ::kill(pid, SIGKILL);
  EXPECT_EQ(WaitChild(pid), 128 + SIGKILL);

  // Another client is unaffected.
  auto other = ReportClient::Connect(ClientOptions(server->socket_path(), "t2"));
  ASSERT_THAT(other, IsOk());
  { ScopedSection s = other->Section("fine"); }
  ASSERT_THAT(other->Sync(), IsOk());

  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const TaskReport* t1 = FindTask(done->report, "t1");
  ASSERT_NE(t1, nullptr);
  EXPECT_EQ(t1->result().value(), RESULT_ERRORED);
  const Section* open = FindSection(done->report, "t1", "open section");
  ASSERT_NE(open, nullptr);
  EXPECT_EQ(open->result().value(), RESULT_ERRORED);
  EXPECT_THAT(open->result().reason(),
              HasSubstr(absl::StrCat("reporter client of task t1 (pid ", pid,
                                     ") disconnected: connection closed in the "
                                     "middle of a frame")));
  EXPECT_EQ(FindSection(done->report, "t1", "cut short"), nullptr);
  EXPECT_EQ(FindTask(done->report, "t2")->result().value(), RESULT_PASSED);
}

TEST(ReporterServerTest, MalformedFrameClosesOnlyThatConnection) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  auto good = ReportClient::Connect(ClientOptions(server->socket_path(), "good"));
  ASSERT_THAT(good, IsOk());
  ScopedSection before = good->Section("before");
  ASSERT_THAT(good->Flush(), IsOk());

  OwnedFd bad = RawHello(server->socket_path(), "bad");
  std::string bytes = SectionStartFrame(5, "started");
  bytes += std::string("\x03\x00\x00\x00\x22\x7f\x01", 7);  // truncated field
  ASSERT_THAT(reporter_internal::SendAll(bad.get(), bytes, absl::InfiniteFuture(), "srv"),
              IsOk());
  EXPECT_TRUE(ServerClosed(bad.get()));

  before.SetResult(Result::kPassed);
  ASSERT_THAT(before.Stop(), IsOk());
  ASSERT_THAT(good->Sync(), IsOk());
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const TaskReport* bad_task = FindTask(done->report, "bad");
  ASSERT_NE(bad_task, nullptr);
  EXPECT_EQ(bad_task->result().value(), RESULT_ERRORED);
  EXPECT_THAT(bad_task->result().reason(), HasSubstr("malformed frame"));
  EXPECT_EQ(FindSection(done->report, "bad", "started")->result().value(),
            RESULT_ERRORED);
  EXPECT_EQ(FindTask(done->report, "good")->result().value(), RESULT_PASSED);
}

TEST(ReporterServerTest, ProtocolErrorsCloseTheConnection) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  {
    // A stop of a section that was never started.
    OwnedFd fd = RawHello(server->socket_path(), "t1");
    ClientMessage m;
    m.mutable_section_stop()->set_id(77);
    std::string frame;
    AppendFrame(m, &frame);
    ASSERT_THAT(reporter_internal::SendAll(fd.get(), frame, absl::InfiniteFuture(), "s"),
                IsOk());
    EXPECT_TRUE(ServerClosed(fd.get()));
  }
  {
    // No hello first.
    auto fd = reporter_internal::ConnectUnix(server->socket_path(), {});
    ASSERT_THAT(fd, IsOk());
    const std::string frame = SectionStartFrame(1, "x");
    ASSERT_THAT(reporter_internal::SendAll(fd->get(), frame, absl::InfiniteFuture(), "s"),
                IsOk());
    EXPECT_TRUE(ServerClosed(fd->get()));
  }
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_THAT(FindTask(done->report, "t1")->result().reason(),
              HasSubstr("stops section 77"));
}

TEST(ReporterServerTest, OversizeFrameClosesTheConnection) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o = Options(dir);
  o.max_frame_size = 1024;
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  OwnedFd fd = RawHello(server->socket_path(), "big");
  // Only the header: the server must not wait for (or buffer) the payload.
  const std::string header("\x00\x00\x10\x00", 4);  // 1 MiB
  ASSERT_THAT(reporter_internal::SendAll(fd.get(), header, absl::InfiniteFuture(), "s"),
              IsOk());
  EXPECT_TRUE(ServerClosed(fd.get()));

  // The client refuses to send an event over its own limit, and stays usable.
  ReportClientOptions co = ClientOptions(server->socket_path(), "client");
  co.max_frame_size = 1024;
  auto client = ReportClient::Connect(co);
  ASSERT_THAT(client, IsOk());
  auto id = client->StartSection("s");
  ASSERT_THAT(id, IsOk());
  EXPECT_THAT(client->StopSection(*id, Result::kFailed, std::string(5000, 'r')),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("5")));
  ASSERT_THAT(client->StopSection(*id, Result::kFailed, "short"), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());

  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(FindTask(done->report, "big")->result().value(), RESULT_ERRORED);
  EXPECT_THAT(FindTask(done->report, "big")->result().reason(),
              HasSubstr("frame of 1048576 bytes exceeds the maximum of 1024"));
  EXPECT_EQ(FindSection(done->report, "client", "s")->result().reason(), "short");
}

TEST(ReporterServerTest, OtherUidIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to drop to uid 65534";
  const std::string dir = MakeTempDir();
  ASSERT_EQ(::chmod(dir.c_str(), 0755), 0);
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  auto child_status = [&]() {
    auto ends = OwnedFd::Pipe();
    CHECK(ends.ok());
    const pid_t pid = ::fork();
    CHECK_GE(pid, 0);
    if (pid == 0) {
      if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(100);
      ReportClientOptions o = ClientOptions(server->socket_path(), "intruder");
      o.connect_attempts = 1;
      auto client = ReportClient::Connect(o);
      const std::string msg = absl::StrCat(
          static_cast<int>(client.status().code()), ":", client.status().message());
      CHECK_EQ(::write(ends->write.get(), msg.data(), msg.size()),
               static_cast<ssize_t>(msg.size()));
      ::_exit(0);
    }
    ends->write.Reset();
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(ends->read.get(), buf, sizeof(buf))) > 0) out.append(buf, n);
    EXPECT_EQ(WaitChild(pid), 0);
    return out;
  };
  // Mode 0600: the kernel refuses the connect.
  EXPECT_THAT(child_status(),
              StartsWith(absl::StrCat(static_cast<int>(absl::StatusCode::kPermissionDenied),
                                      ":connect")));
  // Even if the socket file were opened up, SO_PEERCRED refuses the uid.
  ASSERT_EQ(::chmod(server->socket_path().c_str(), 0666), 0);
  EXPECT_THAT(child_status(),
              ::testing::AllOf(
                  StartsWith(absl::StrCat(
                      static_cast<int>(absl::StatusCode::kPermissionDenied), ":")),
                  HasSubstr("of uid 65534: only uid 0 may connect")));
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(FindTask(done->report, "intruder"), nullptr);
}

TEST(ReporterServerTest, RegisteredTasksOnlyRefusesUnknownTaskIds) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o = Options(dir);
  o.registered_tasks_only = true;
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t1")), IsOk());
  // A hello naming an unregistered task: refused, then garbage after it
  // cannot add the task to the report either.
  auto fd = reporter_internal::ConnectUnix(server->socket_path(), {});
  ASSERT_THAT(fd, IsOk());
  ClientMessage hello;
  hello.mutable_hello()->set_role(Hello::ROLE_CLIENT);
  hello.mutable_hello()->set_task_id("intruder");
  std::string bytes;
  AppendFrame(hello, &bytes);
  bytes += std::string("\x04\x00\x00\x00\xfe\xfe\xfe\xfe", 8);
  ASSERT_THAT(reporter_internal::SendAll(fd->get(), bytes, absl::InfiniteFuture(), "s"),
              IsOk());
  FrameDecoder decoder;
  ServerMessage refusal;
  auto got = reporter_internal::ReadFrame(fd->get(), &decoder, &refusal,
                                          absl::Now() + absl::Seconds(30), "s");
  ASSERT_THAT(got, IsOk());
  ASSERT_TRUE(*got);
  ASSERT_TRUE(refusal.has_refusal());
  EXPECT_THAT(refusal.refusal().reason(),
              HasSubstr("task \"intruder\" is not registered with this job"));
  EXPECT_TRUE(ServerClosed(fd->get()));
  // The client library reports the refusal as kPermissionDenied.
  ReportClientOptions co = ClientOptions(server->socket_path(), "other");
  co.connect_attempts = 1;
  EXPECT_THAT(ReportClient::Connect(co),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("task \"other\" is not registered")));
  // A registered task reports as usual.
  auto client = ReportClient::Connect(ClientOptions(server->socket_path(), "t1"));
  ASSERT_THAT(client, IsOk());
  ASSERT_THAT(client->Section("s").Stop(), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(FindTask(done->report, "intruder"), nullptr);
  EXPECT_EQ(FindTask(done->report, "other"), nullptr);
  EXPECT_EQ(done->report.tasks_size(), 1);
  EXPECT_EQ(FindTask(done->report, "t1")->result().value(), RESULT_PASSED);
}

TEST(ReporterServerTest, ServerKilledMidRunClientGetsErrorsNoHang) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t1")), IsOk());
  ReportClientOptions o = ClientOptions(server->socket_path(), "t1");
  o.io_timeout = absl::Seconds(60);  // a hang would show as >= 60 s per call
  o.connect_attempts = 2;
  auto client = ReportClient::Connect(o);
  ASSERT_THAT(client, IsOk());
  ScopedSection s = client->Section("running");
  ASSERT_THAT(client->Sync(), IsOk());

  ASSERT_EQ(::kill(server->pid(), SIGKILL), 0);
  // The control socket reports the death (EOF) to a runner that polls it.
  pollfd p{server->control_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);

  const absl::Time start = absl::Now();
  auto id = client->StartSection("after death");  // buffered: may succeed
  EXPECT_THAT(client->Flush(), StatusIs(absl::StatusCode::kUnavailable,
                                        HasSubstr(server->socket_path())));
  EXPECT_THAT(client->Sync(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client->StartSection("again"), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(s.Stop(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT(client->status(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_LT(absl::Now() - start, absl::Seconds(30));  // no io_timeout waits

  EXPECT_THAT(server->CheckAlive(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("killed by SIGKILL")));
  EXPECT_THAT(server->RegisterTask(TaskInfoOf("t2")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("SIGKILL")));
  EXPECT_THAT(server->Finalize(), StatusIs(absl::StatusCode::kUnavailable));

  // A new client fails after its bounded retries.
  EXPECT_THAT(ReportClient::Connect(o), StatusIs(absl::StatusCode::kUnavailable,
                                                 HasSubstr("after 2 attempts")));

  // The runner can still write a report in-process.
  ReportBuilderOptions bo;
  bo.job_name = "job";
  ReportBuilder fallback(bo);
  fallback.RecordTaskResult("t1", MakeResultInfo(Result::kErrored, "reporter died"));
  ASSERT_THAT(WriteReport(fallback.Build(absl::Now()), dir), IsOk());
  EXPECT_TRUE(Exists(dir + "/results.json"));
}

// Posted requests: no reply, applied in order before Finalize, the runner's
// task start and end stand in for the task's own client.
TEST(ReporterServerTest, PostedRequestsAreAppliedInOrderWithoutReplies) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o = Options(dir);
  o.registered_tasks_only = true;
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  for (const char* id : {"quiet", "reporting", "blocked"}) {
    ASSERT_THAT(server->PostRegisterTask(TaskInfoOf(id)), IsOk());
  }
  // A duplicate is an error for the server to log, not for the runner.
  ASSERT_THAT(server->PostRegisterTask(TaskInfoOf("quiet")), IsOk());
  ASSERT_THAT(server->FlushPosted(), IsOk());

  const absl::Time t0 = absl::FromUnixSeconds(1700000000);
  TaskStart start;
  start.set_name("Quiet task");
  *start.mutable_time() = ToProtoTime(t0);
  ASSERT_THAT(server->PostTaskStarted("quiet", 4242, start), IsOk());
  ASSERT_THAT(server->PostTaskEnded("quiet", 4242,
                                    MakeResultInfo(Result::kPassed),
                                    t0 + absl::Seconds(3)),
              IsOk());
  // A task whose client reported too (and stopped the task itself): the
  // runner's end is rolled in, its stop does not clash. The server must
  // have applied the registration before the client's hello, which comes
  // on another socket: FlushPosted() would not promise that, SyncPosted()
  // does.
  ASSERT_THAT(server->PostTaskStarted("reporting", ::getpid(), {}), IsOk());
  ASSERT_THAT(server->SyncPosted(), IsOk());
  {
    auto client =
        ReportClient::Connect(ClientOptions(server->socket_path(), "reporting"));
    ASSERT_THAT(client, IsOk());
    { ScopedSection section = client->Section("s"); }
    ASSERT_THAT(client->StopTask(Result::kPassed), IsOk());
    ASSERT_THAT(client->Sync(), IsOk());
  }
  ASSERT_THAT(server->PostTaskEnded("reporting", ::getpid(),
                                    MakeResultInfo(Result::kFailed, "exit 1"),
                                    absl::Now()),
              IsOk());
  // Never started: pid 0 records the result only.
  ASSERT_THAT(server->PostTaskEnded("blocked", 0,
                                    MakeResultInfo(Result::kBlocked, "later"),
                                    absl::Now()),
              IsOk());
  // Not flushed explicitly: Finalize sends them first.
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const JobReport& r = done->report;
  ASSERT_EQ(r.tasks_size(), 3);
  const TaskReport* quiet = FindTask(r, "quiet");
  EXPECT_EQ(quiet->name(), "Quiet task");
  EXPECT_EQ(quiet->result().value(), RESULT_PASSED);
  ASSERT_EQ(quiet->pids_size(), 1);
  EXPECT_EQ(quiet->pids(0), 4242);
  EXPECT_EQ(FromProtoTime(quiet->starttime()), t0);
  EXPECT_DOUBLE_EQ(quiet->runtime(), 3.0);
  const TaskReport* reporting = FindTask(r, "reporting");
  EXPECT_EQ(reporting->result().value(), RESULT_FAILED);
  EXPECT_EQ(reporting->result().reason(), "exit 1");
  EXPECT_EQ(reporting->sections_size(), 1);
  EXPECT_EQ(FindTask(r, "blocked")->result().value(), RESULT_BLOCKED);
  EXPECT_EQ(FindTask(r, "blocked")->pids_size(), 0);
  EXPECT_THAT(server->PostRegisterTask(TaskInfoOf("late")),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(server->FlushPosted(), IsOk());  // nothing pending
  EXPECT_THAT(server->SyncPosted(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(ReporterServerTest, PostedRequestsToADeadServerFail) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  ASSERT_EQ(::kill(server->pid(), SIGKILL), 0);
  pollfd p{server->control_fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);
  // Queued without a send; the send finds the death.
  ASSERT_THAT(server->PostRegisterTask(TaskInfoOf("t")), IsOk());
  EXPECT_THAT(server->FlushPosted(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("SIGKILL")));
  EXPECT_THAT(server->PostRegisterTask(TaskInfoOf("t")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("SIGKILL")));
  EXPECT_THAT(server->SyncPosted(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("SIGKILL")));
}

TEST(ReporterServerTest, SubscriberSeesEveryEventLive) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  auto sub = ReportSubscriber::Connect(server->socket_path());
  ASSERT_THAT(sub, IsOk());
  EXPECT_THAT(sub->Next(absl::Milliseconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t1")), IsOk());
  auto client = ReportClient::Connect(ClientOptions(server->socket_path(), "t1"));
  ASSERT_THAT(client, IsOk());
  auto id = client->StartSection("s");
  ASSERT_THAT(id, IsOk());
  ASSERT_THAT(client->StopSection(*id, Result::kFailed, "why"), IsOk());
  ASSERT_THAT(client->Sync(), IsOk());
  ASSERT_THAT(server->RecordTaskResult("t1", MakeResultInfo(Result::kFailed)), IsOk());

  std::vector<Event> events;
  for (int i = 0; i < 4; ++i) {
    auto e = sub->Next(absl::Seconds(30));
    ASSERT_THAT(e, IsOk());
    events.push_back(*e);
  }
  EXPECT_TRUE(events[0].has_task_registered());
  EXPECT_EQ(events[1].section_start().name(), "s");
  EXPECT_EQ(events[1].task_id(), "t1");
  EXPECT_EQ(events[1].pid(), ::getpid());
  EXPECT_EQ(events[2].section_stop().result().reason(), "why");
  EXPECT_EQ(events[3].task_result().value(), RESULT_FAILED);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(events[i].seq(), static_cast<uint64_t>(i + 1));

  ASSERT_THAT(server->Finalize(), IsOk());
  auto fin = sub->Next(absl::Seconds(30));
  ASSERT_THAT(fin, IsOk());
  EXPECT_EQ(fin->finalized(), dir + "/results.json");
  EXPECT_THAT(sub->Next(absl::Seconds(30)), StatusIs(absl::StatusCode::kOutOfRange));
}

TEST(ReporterServerTest, RunnerDeathMakesServerWriteTheReport) {
  const std::string dir = MakeTempDir();
  auto ends = OwnedFd::Pipe();
  ASSERT_THAT(ends, IsOk());
  const pid_t runner = ::fork();
  ASSERT_GE(runner, 0);
  if (runner == 0) {
    auto server = ReporterServer::Start(Options(dir));
    if (!server.ok()) ::_exit(1);
    if (!server->RegisterTask(TaskInfoOf("orphan")).ok()) ::_exit(2);
    const pid_t pid = server->pid();
    CHECK_EQ(::write(ends->write.get(), &pid, sizeof(pid)), sizeof(pid));
    ::_exit(0);  // dies without Finalize()
  }
  ends->write.Reset();
  pid_t server_pid = 0;
  ASSERT_EQ(::read(ends->read.get(), &server_pid, sizeof(server_pid)),
            static_cast<ssize_t>(sizeof(server_pid)));
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, server_pid, 0));
  ASSERT_GE(pidfd, 0);
  EXPECT_EQ(WaitChild(runner), 0);
  pollfd p{pidfd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 30000), 1);  // the server exits by itself
  ::close(pidfd);
  const std::string json = ReadFile(dir + "/results.json");
  EXPECT_THAT(json, HasSubstr("\"orphan\""));
  EXPECT_FALSE(Exists(dir + "/reporter.sock"));
}

}  // namespace
}  // namespace taskfork::reporter

namespace taskfork::reporter {
namespace {

TEST(ReporterServerTest, ServerReapedByARunnerWaitpidIsReportedDead) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(Options(dir));
  ASSERT_THAT(server, IsOk());
  ASSERT_EQ(::kill(server->pid(), SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(server->pid(), &status, 0), server->pid());
  EXPECT_THAT(server->CheckAlive(),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("ECHILD")));
  EXPECT_THAT(server->Finalize(), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace taskfork::reporter
