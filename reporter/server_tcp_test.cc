// ReporterServer and ReportClient over TCP (tcp_listen) with the run secret.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "base/status_matchers.h"
#include "fork/testing/run_in_child.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/client.h"
#include "reporter/report_builder.h"
#include "reporter/secret.h"
#include "reporter/server.h"
#include "reporter/test_util.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

ReporterServerOptions TcpOptions(const std::string& dir) {
  ReporterServerOptions o;
  o.runinfo_dir = dir;
  o.job_name = "job";
  o.tcp_listen = "127.0.0.1:0";
  return o;
}

// A free loopback port: bound, then closed (nothing listens on it).
int UnusedPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  CHECK_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST(ReporterServerTcpTest, ClientWithTheSecretReportsIntoResultsJson) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(TcpOptions(dir));
  ASSERT_THAT(server, IsOk());
  EXPECT_THAT(server->tcp_address(), StartsWith("tcp:127.0.0.1:"));
  EXPECT_NE(server->tcp_address(), "tcp:127.0.0.1:0");
  EXPECT_EQ(server->secret_file(), dir + "/" + kSecretFileName);
  struct stat st;
  ASSERT_EQ(::stat(server->secret_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("remote")), IsOk());

  // A forked child, as a task process on another host would: only the
  // address and the secret file.
  EXPECT_THAT(testing::RunInChild([&]() -> absl::Status {
                auto client = ReportClient::Connect(ClientOptions(
                    server->tcp_address(), "remote", server->secret_file()));
                TASKFORK_RETURN_IF_ERROR(client.status());
                TASKFORK_RETURN_IF_ERROR(client->StartTask());
                {
                  ScopedSection tc = client->Section("over tcp");
                  tc.SetResult(Result::kFailed, "link down");
                }
                TASKFORK_RETURN_IF_ERROR(client->StopTask(Result::kFailed));
                return client->Sync();
              }),
              IsOk());
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const Section* tc = FindSection(done->report, "remote", "over tcp");
  ASSERT_NE(tc, nullptr);
  EXPECT_EQ(tc->result().value(), RESULT_FAILED);
  EXPECT_EQ(tc->result().reason(), "link down");
  EXPECT_THAT(ReadFile(done->paths.results_json), HasSubstr("over tcp"));
  EXPECT_THAT(ReadFile(done->paths.results_json), HasSubstr("link down"));
}

TEST(ReporterServerTcpTest, NoOrWrongSecretIsRefusedAndOthersKeepReporting) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(TcpOptions(dir));
  ASSERT_THAT(server, IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("good")), IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("bad")), IsOk());
  auto good = ReportClient::Connect(
      ClientOptions(server->tcp_address(), "good", server->secret_file()));
  ASSERT_THAT(good, IsOk());

  auto none = ReportClient::Connect(ClientOptions(server->tcp_address(), "bad"));
  EXPECT_THAT(none, StatusIs(absl::StatusCode::kPermissionDenied,
                             HasSubstr("no secret")));
  EXPECT_THAT(none.status().message(), HasSubstr("127.0.0.1:"));

  const std::string wrong_file = dir + "/wrong.secret";
  ASSERT_THAT(CreateSecretFile(wrong_file), IsOk());
  auto wrong = ReportClient::Connect(
      ClientOptions(server->tcp_address(), "bad", wrong_file));
  EXPECT_THAT(wrong, StatusIs(absl::StatusCode::kPermissionDenied,
                              HasSubstr("wrong secret")));

  auto sub = ReportSubscriber::Connect(server->tcp_address(), absl::Seconds(20));
  EXPECT_THAT(sub, StatusIs(absl::StatusCode::kPermissionDenied,
                            HasSubstr("no secret")));

  // The server still serves the client that had the secret, and the Unix
  // socket needs none.
  auto id = good->StartSection("still here");
  ASSERT_THAT(id, IsOk());
  ASSERT_THAT(good->StopSection(*id), IsOk());
  ASSERT_THAT(good->Sync(), IsOk());
  auto local = ReportClient::Connect(
      ClientOptions(server->socket_path(), "good"));
  ASSERT_THAT(local, IsOk());
  ASSERT_THAT(local->Sync(), IsOk());

  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_NE(FindSection(done->report, "good", "still here"), nullptr);
  const TaskReport* bad = FindTask(done->report, "bad");
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(CountSections(*bad), 0);
  EXPECT_EQ(bad->result().value(), RESULT_BLOCKED);  // never started
}

TEST(ReporterServerTcpTest, SubscriberWithTheSecretSeesEvents) {
  const std::string dir = MakeTempDir();
  auto server = ReporterServer::Start(TcpOptions(dir));
  ASSERT_THAT(server, IsOk());
  auto sub = ReportSubscriber::Connect(server->tcp_address(), absl::Seconds(20),
                                       server->secret_file());
  ASSERT_THAT(sub, IsOk());
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t1")), IsOk());
  auto event = sub->Next(absl::Seconds(30));
  ASSERT_THAT(event, IsOk());
  EXPECT_EQ(event->task_registered().id(), "t1");
  ASSERT_THAT(server->Finalize(), IsOk());
  auto fin = sub->Next(absl::Seconds(30));
  ASSERT_THAT(fin, IsOk());
  EXPECT_EQ(fin->finalized(), dir + "/results.json");
}

TEST(ReporterServerTcpTest, WildcardListenAdvertisesTheHostName) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions options = TcpOptions(dir);
  options.tcp_listen = "0.0.0.0:0";
  auto server = ReporterServer::Start(options);
  ASSERT_THAT(server, IsOk());
  char host[256] = {};
  ASSERT_EQ(::gethostname(host, sizeof(host) - 1), 0);
  EXPECT_THAT(server->tcp_address(), StartsWith(absl::StrCat("tcp:", host, ":")));
  // Loopback reaches every interface's listener.
  const std::string port =
      server->tcp_address().substr(server->tcp_address().rfind(':') + 1);
  ASSERT_THAT(server->RegisterTask(TaskInfoOf("t")), IsOk());
  auto client = ReportClient::Connect(ClientOptions(
      absl::StrCat("tcp:127.0.0.1:", port), "t", server->secret_file()));
  ASSERT_THAT(client, IsOk());
  EXPECT_THAT(client->Sync(), IsOk());
}

TEST(ReporterServerTcpTest, StartErrorsNameWhatToFix) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions options = TcpOptions(dir);
  options.tcp_listen = "127.0.0.1";
  EXPECT_THAT(ReporterServer::Start(options),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"127.0.0.1\"")));
  options.tcp_listen = "no-such-host.invalid:0";
  EXPECT_THAT(ReporterServer::Start(options),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no-such-host.invalid")));

  // An existing secret file is never overwritten, and nothing is left behind.
  const std::string secret = dir + "/" + kSecretFileName;
  std::ofstream(secret) << "someone else's\n";
  options.tcp_listen = "127.0.0.1:0";
  EXPECT_THAT(ReporterServer::Start(options),
              StatusIs(absl::StatusCode::kAlreadyExists, HasSubstr(secret)));
  EXPECT_EQ(ReadFile(secret), "someone else's\n");
  struct stat st;
  EXPECT_NE(::lstat((dir + "/reporter.sock").c_str(), &st), 0);

  // A port in use.
  const std::string other = MakeTempDir();
  auto first = ReporterServer::Start(TcpOptions(other));
  ASSERT_THAT(first, IsOk());
  const std::string taken = first->tcp_address().substr(4);  // 127.0.0.1:N
  const std::string third = MakeTempDir();
  ReporterServerOptions clash = TcpOptions(third);
  clash.tcp_listen = taken;
  EXPECT_THAT(ReporterServer::Start(clash),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       ::testing::AllOf(HasSubstr(taken),
                                        HasSubstr("EADDRINUSE"))));
}

TEST(ReporterServerTcpTest, DestroyedUnfinalizedServerRemovesItsSecretFile) {
  const std::string dir = MakeTempDir();
  std::string secret;
  {
    auto server = ReporterServer::Start(TcpOptions(dir));
    ASSERT_THAT(server, IsOk());
    secret = server->secret_file();
    ASSERT_EQ(::access(secret.c_str(), F_OK), 0);
  }
  EXPECT_NE(::access(secret.c_str(), F_OK), 0);
}

TEST(ReportClientTcpTest, BadAddressesAndSecretFilesAreErrors) {
  const std::string dir = MakeTempDir();
  EXPECT_THAT(ReportClient::Connect(ClientOptions("tcp:localhost", "t")),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"tcp:localhost\"")));
  EXPECT_THAT(ReportClient::Connect(ClientOptions("udp:x:1", "t")),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("udp:")));
  EXPECT_THAT(ReportSubscriber::Connect("tcp:host:0"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("\"tcp:host:0\"")));
  EXPECT_THAT(ReportClient::Connect(
                  ClientOptions("tcp:127.0.0.1:1", "t", dir + "/missing")),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr(dir + "/missing")));
  EXPECT_THAT(ReportClient::Connect(
                  ClientOptions("tcp:no-such-host.invalid:4242", "t")),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("no-such-host.invalid")));
}

TEST(ReportClientTcpTest, NoServerRetriesThenUnavailableNamingTheAddress) {
  const std::string address = absl::StrCat("tcp:127.0.0.1:", UnusedPort());
  ReportClientOptions options = ClientOptions(address, "t");
  options.connect_attempts = 3;
  options.initial_backoff = absl::Milliseconds(1);
  EXPECT_THAT(ReportClient::Connect(options),
              StatusIs(absl::StatusCode::kUnavailable,
                       ::testing::AllOf(HasSubstr(address), HasSubstr("3 attempts"),
                                        HasSubstr("ECONNREFUSED"))));
}

// A peer that accepts (the kernel does, from the backlog) but never answers
// the hello: the handshake ends at io_timeout.
TEST(ReportClientTcpTest, SilentPeerEndsTheHandshakeAtIoTimeout) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string address =
      absl::StrCat("tcp:127.0.0.1:", ntohs(addr.sin_port));
  ReportClientOptions options = ClientOptions(address, "t");
  options.io_timeout = absl::Milliseconds(200);
  const absl::Time start = absl::Now();
  EXPECT_THAT(ReportClient::Connect(options),
              StatusIs(absl::StatusCode::kDeadlineExceeded, HasSubstr(address)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(200));
  ::close(fd);
}

}  // namespace
}  // namespace taskfork::reporter
