#include "reporter/client.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
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
  EXPECT_EQ(RunInChild([&] { return client->Sync().ok() ? 0 : 1; }), 0);
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

}  // namespace
}  // namespace taskfork::reporter
