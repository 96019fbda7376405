#include "fork/spawn.h"

#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;

std::string TestDir() {
  const char* dir = ::getenv("TEST_TMPDIR");
  return dir != nullptr ? dir : "/tmp";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

SpawnOptions Shell(const std::string& script) {
  SpawnOptions options;
  options.argv = {"/bin/sh", "-c", script};
  return options;
}

// Spawns `options` and joins it; the ExitStatus or Join()'s error.
absl::StatusOr<ExitStatus> SpawnAndJoin(SpawnOptions options) {
  absl::StatusOr<Process> process = Spawn(std::move(options));
  if (!process.ok()) return process.status();
  return process->Join();
}

TEST(Spawn, RunsTheProgramAndReportsItsExitCode) {
  SpawnOptions options;
  options.argv = {"/bin/true"};
  absl::StatusOr<ExitStatus> status = SpawnAndJoin(std::move(options));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success());

  status = SpawnAndJoin(Shell("exit 3"));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, 3);
}

TEST(Spawn, PassesTheArguments) {
  const std::string out = TestDir() + "/spawn_args.txt";
  SpawnOptions options = Shell("printf '%s|' \"$@\" > \"$0\"");
  options.argv.push_back(out);  // $0
  options.argv.push_back("a b");
  options.argv.push_back("");
  options.argv.push_back("c");
  ASSERT_THAT(SpawnAndJoin(std::move(options)), IsOk());
  EXPECT_EQ(ReadFile(out), "a b||c|");
}

TEST(Spawn, ProgramExitingWith127ItselfIsNotAnError) {
  const absl::StatusOr<ExitStatus> status = SpawnAndJoin(Shell("exit 127"));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, kExecFailedExitCode);
}

TEST(Spawn, ReportsTheSignalThatKilledTheProgram) {
  const absl::StatusOr<ExitStatus> status = SpawnAndJoin(Shell("kill -SEGV $$"));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->signal, SIGSEGV);
  EXPECT_EQ(status->exit_code, -1);
}

TEST(Spawn, MissingProgramIsNotFoundNamingThePath) {
  SpawnOptions options;
  options.argv = {"/no/such/program", "x"};
  absl::StatusOr<Process> process = Spawn(std::move(options));
  ASSERT_THAT(process, IsOk());
  const absl::StatusOr<ExitStatus> status = process->Join();
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(absl::StrCat(
                           "pid ", process->pid(),
                           ": execve /no/such/program: No such file or "
                           "directory"))));
  ASSERT_NE(process->exit_status(), nullptr);
  EXPECT_EQ(process->exit_status()->exit_code, kExecFailedExitCode);
  // Joining again gives the same error.
  EXPECT_THAT(process->Join(), StatusIs(absl::StatusCode::kNotFound));
}

TEST(Spawn, NonExecutableFileIsPermissionDenied) {
  const std::string path = TestDir() + "/not_executable.sh";
  std::ofstream(path) << "#!/bin/sh\nexit 0\n";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  SpawnOptions options;
  options.argv = {path};
  EXPECT_THAT(SpawnAndJoin(std::move(options)),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr(absl::StrCat("execve ", path,
                                              ": Permission denied"))));
}

TEST(Spawn, BadWorkingDirectoryIsNotFoundNamingTheDirectory) {
  SpawnOptions options;
  options.argv = {"/bin/true"};
  options.working_directory = "/no/such/dir";
  absl::StatusOr<Process> process = Spawn(std::move(options));
  ASSERT_THAT(process, IsOk());
  EXPECT_THAT(process->Join(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("chdir /no/such/dir: No such file")));
  ASSERT_NE(process->exit_status(), nullptr);
  EXPECT_EQ(process->exit_status()->exit_code, kExecFailedExitCode);
}

TEST(Spawn, RunsInTheWorkingDirectoryAndResolvesARelativeProgramThere) {
  const std::string dir = TestDir() + "/spawn_cwd";
  ASSERT_EQ(::mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST, true);
  const std::string script = dir + "/where.sh";
  std::ofstream(script) << "#!/bin/sh\npwd > pwd.txt\n";
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  SpawnOptions options;
  options.argv = {"./where.sh"};
  options.working_directory = dir;
  const absl::StatusOr<ExitStatus> status = SpawnAndJoin(std::move(options));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success()) << status->ToString();
  char real[PATH_MAX];
  ASSERT_NE(::realpath(dir.c_str(), real), nullptr);
  EXPECT_EQ(ReadFile(dir + "/pwd.txt"), absl::StrCat(real, "\n"));
}

TEST(Spawn, EnvironmentReachesTheProgram) {
  SpawnOptions options = Shell("test \"$SPAWN_TEST_VAR\" = 'a value'");
  options.process.env = {{"SPAWN_TEST_VAR", "a value"}};
  absl::StatusOr<ExitStatus> status = SpawnAndJoin(std::move(options));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success());

  // Without it the script fails: the test can tell.
  status = SpawnAndJoin(Shell("test \"$SPAWN_TEST_VAR\" = 'a value'"));
  ASSERT_THAT(status, IsOk());
  EXPECT_EQ(status->exit_code, 1);
}

TEST(Spawn, StdinIsDevNullByDefault) {
  const absl::StatusOr<ExitStatus> status =
      SpawnAndJoin(Shell("test \"$(readlink /proc/self/fd/0)\" = /dev/null"));
  ASSERT_THAT(status, IsOk());
  EXPECT_TRUE(status->success());
}

TEST(Spawn, OwnProcessGroupOptionDecidesTheGroup) {
  SpawnOptions options;
  options.argv = {"/bin/sleep", "1000"};
  absl::StatusOr<Process> own = Spawn(options);
  ASSERT_THAT(own, IsOk());
  EXPECT_EQ(::getpgid(own->pid()), own->pid());
  ASSERT_THAT(own->Terminate(absl::Seconds(10)), IsOk());
  EXPECT_EQ(own->exit_status()->signal, SIGTERM);

  options.process.own_process_group = false;
  absl::StatusOr<Process> shared = Spawn(std::move(options));
  ASSERT_THAT(shared, IsOk());
  EXPECT_EQ(::getpgid(shared->pid()), ::getpgrp());
  ASSERT_THAT(shared->Kill(), IsOk());
  EXPECT_EQ(shared->exit_status()->signal, SIGKILL);
}

TEST(Spawn, RejectsBadArguments) {
  EXPECT_THAT(Spawn(SpawnOptions{}),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("argv is empty")));
  SpawnOptions empty_program;
  empty_program.argv = {""};
  EXPECT_THAT(Spawn(std::move(empty_program)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("argv[0] is empty")));
  SpawnOptions nul;
  nul.argv = {"/bin/true", std::string("a\0b", 3)};
  EXPECT_THAT(Spawn(std::move(nul)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("argv[1] contains NUL")));
  SpawnOptions nul_dir;
  nul_dir.argv = {"/bin/true"};
  nul_dir.working_directory = std::string("/tmp\0x", 6);
  EXPECT_THAT(Spawn(std::move(nul_dir)),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("working_directory contains NUL")));
  SpawnOptions bad_env;
  bad_env.argv = {"/bin/true"};
  bad_env.process.env = {{"A=B", "x"}};
  EXPECT_THAT(Spawn(std::move(bad_env)),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace taskfork
