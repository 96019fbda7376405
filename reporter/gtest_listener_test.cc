#include "reporter/gtest_listener.h"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "reporter/server.h"
#include "reporter/test_util.h"

namespace taskfork::reporter {
namespace {

using ::taskfork::testing::IsOk;
using ::testing::HasSubstr;

std::string HelperPath() {
  return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", std::getenv("TEST_WORKSPACE"),
                      "/reporter/gtest_listener_test_helper");
}

// Runs the helper with exactly `env` (none of Bazel's test variables, so it
// does not write this test's XML output). Returns its exit code.
int RunHelper(std::vector<std::string> env) {
  env.push_back("PATH=/usr/bin:/bin");
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::string path = HelperPath();
    char* argv[] = {path.data(), nullptr};
    ::execve(path.c_str(), argv, envp.data());
    ::_exit(127);
  }
  return WaitChild(pid);
}

TEST(GtestListenerTest, ReportsEveryTestAsASection) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o;
  o.runinfo_dir = dir;
  o.job_name = "job";
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(RunHelper({absl::StrCat(kReporterSocketEnv, "=", server->socket_path()),
                       absl::StrCat(kReporterTaskIdEnv, "=gt")}),
            1);  // one test fails
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const TaskReport* task = FindTask(done->report, "gt");
  ASSERT_NE(task, nullptr);
  ASSERT_EQ(task->sections_size(), 4);

  const Section* pass = FindSection(done->report, "gt", "HelperSuite.Passes");
  ASSERT_NE(pass, nullptr);
  EXPECT_EQ(pass->type(), "Testcase");
  EXPECT_EQ(pass->result().value(), RESULT_PASSED);
  EXPECT_THAT(pass->xref().file(), HasSubstr("gtest_listener_test_helper.cc"));
  EXPECT_GT(pass->xref().line(), 0);

  const Section* fail = FindSection(done->report, "gt", "HelperSuite.Fails");
  ASSERT_NE(fail, nullptr);
  EXPECT_EQ(fail->result().value(), RESULT_FAILED);
  EXPECT_THAT(fail->result().reason(), HasSubstr("first failure"));
  EXPECT_THAT(fail->result().reason(), HasSubstr("\n"));
  EXPECT_THAT(fail->result().reason(), HasSubstr("second failure"));
  EXPECT_THAT(fail->result().reason(), HasSubstr("gtest_listener_test_helper.cc:"));

  const Section* skip = FindSection(done->report, "gt", "HelperSuite.IsSkipped");
  ASSERT_NE(skip, nullptr);
  EXPECT_EQ(skip->result().value(), RESULT_SKIPPED);
  EXPECT_THAT(skip->result().reason(), HasSubstr("not on this machine"));

  const Section* param = FindSection(done->report, "gt", "Numbers/HelperParam.Even/0");
  ASSERT_NE(param, nullptr);
  EXPECT_EQ(param->description(), "GetParam() = 2");
  EXPECT_EQ(task->result().value(), RESULT_FAILED);
}

TEST(GtestListenerTest, ReportsOverTcpWithTheSecretFile) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o;
  o.runinfo_dir = dir;
  o.job_name = "job";
  o.tcp_listen = "127.0.0.1:0";
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(RunHelper({absl::StrCat(kReporterSocketEnv, "=", server->tcp_address()),
                       absl::StrCat(kReporterSecretFileEnv, "=", server->secret_file()),
                       absl::StrCat(kReporterTaskIdEnv, "=gt")}),
            1);
  // Without the secret: refused, the tests still run (one fails), unreported.
  EXPECT_EQ(RunHelper({absl::StrCat(kReporterSocketEnv, "=", server->tcp_address()),
                       absl::StrCat(kReporterTaskIdEnv, "=unreported")}),
            1);
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  const TaskReport* task = FindTask(done->report, "gt");
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(task->sections_size(), 4);
  EXPECT_NE(FindSection(done->report, "gt", "HelperSuite.Passes"), nullptr);
  EXPECT_EQ(FindTask(done->report, "unreported"), nullptr);
}

TEST(GtestListenerTest, WithoutTheVariableDoesNothing) {
  const std::string dir = MakeTempDir();
  ReporterServerOptions o;
  o.runinfo_dir = dir;
  o.job_name = "job";
  auto server = ReporterServer::Start(o);
  ASSERT_THAT(server, IsOk());
  EXPECT_EQ(RunHelper({}), 1);
  auto done = server->Finalize();
  ASSERT_THAT(done, IsOk());
  EXPECT_EQ(done->report.tasks_size(), 0);
}

TEST(GtestListenerTest, UnreachableServerOnlyWarns) {
  EXPECT_EQ(RunHelper({absl::StrCat(kReporterSocketEnv, "=", MakeTempDir(), "/none.sock")}),
            1);
}

}  // namespace
}  // namespace taskfork::reporter
