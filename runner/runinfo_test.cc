#include "runner/runinfo.h"

#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "base/status_matchers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string TempDir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// True if `dir` holds an entry whose name contains `part`.
bool HasEntryContaining(const std::string& dir, const std::string& part) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (const dirent* entry = ::readdir(d)) {
    if (std::string(entry->d_name).find(part) != std::string::npos) found = true;
  }
  ::closedir(d);
  return found;
}

std::string ReadLink(const std::string& path) {
  char buffer[4096];
  const ssize_t n = ::readlink(path.c_str(), buffer, sizeof(buffer));
  return n < 0 ? "" : std::string(buffer, n);
}

absl::Time At(int second) {
  return absl::FromCivil(absl::CivilSecond(2026, 11, 26, 9, 30, second),
                         absl::LocalTimeZone()) +
         absl::Microseconds(123456);
}

TEST(RunInfo, CreatesUidDirectoryAndLatestLink) {
  const std::string root = TempDir("runs/nested");
  auto info = RunInfo::Create({.root = root, .job_name = "demo", .start = At(5)});
  ASSERT_THAT(info, IsOk());
  EXPECT_EQ(info->uid(), "demo.20261126-093005.123456");
  EXPECT_EQ(info->dir(), root + "/demo.20261126-093005.123456");
  struct stat st;
  ASSERT_EQ(::stat(info->dir().c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(ReadLink(root + "/latest"), info->uid());
  EXPECT_EQ(info->Path("TaskLog.t1"), info->dir() + "/TaskLog.t1");

  auto second = RunInfo::Create({.root = root, .job_name = "demo", .start = At(7)});
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(ReadLink(root + "/latest"), second->uid());
}

TEST(RunInfo, SameMicrosecondGetsASuffix) {
  const std::string root = TempDir("same");
  auto first = RunInfo::Create({.root = root, .job_name = "j", .start = At(1)});
  auto second = RunInfo::Create({.root = root, .job_name = "j", .start = At(1)});
  ASSERT_THAT(first, IsOk());
  ASSERT_THAT(second, IsOk());
  EXPECT_EQ(second->uid(), first->uid() + "-2");
}

TEST(RunInfo, UnusableRootNamesThePath) {
  const std::string file = TempDir("a_file");
  std::ofstream(file) << "x";
  EXPECT_THAT(RunInfo::Create({.root = file + "/runs", .job_name = "j"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("mkdir " + file + "/runs")));
  EXPECT_THAT(RunInfo::Create({.root = file, .job_name = "j"}),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(file + " exists and is not a directory")));
}

// Runs `body` in a forked child inside a private mount namespace with a tiny
// tmpfs (mount options `options`) at `dir`; returns the child's exit code, or
// -1 if the namespace could not be made (no privilege).
template <typename Body>
int InPrivateTmpfs(const std::string& dir, const char* options,
                   unsigned long flags, Body body) {
  if (::mkdir(dir.c_str(), 0755) != 0) return 100;
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", dir.c_str(), "tmpfs", flags, options) != 0) {
      ::_exit(77);
    }
    ::_exit(body() ? 0 : 1);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return 101;
  return WEXITSTATUS(status) == 77 ? -1 : WEXITSTATUS(status);
}

TEST(RunInfo, ReadOnlyFilesystemNamesThePath) {
  const std::string dir = TempDir("readonly");
  const int code = InPrivateTmpfs(dir, "size=64k", MS_RDONLY, [&] {
    auto info = RunInfo::Create({.root = dir + "/runs", .job_name = "j"});
    return !info.ok() &&
           info.status().message() ==
               "mkdir " + dir + "/runs: Read-only file system [EROFS]";
  });
  if (code == -1) GTEST_SKIP() << "no privilege for a private mount namespace";
  EXPECT_EQ(code, 0);
}

TEST(RunInfo, FullFilesystemIsResourceExhausted) {
  const std::string dir = TempDir("full");
  const int code = InPrivateTmpfs(dir, "size=16k", 0, [&] {
    auto info = RunInfo::Create({.root = dir, .job_name = "j"});
    if (!info.ok()) return false;
    const absl::Status status =
        info->WriteFile("results.json", std::string(1 << 20, 'x'));
    struct stat st;
    return status.code() == absl::StatusCode::kResourceExhausted &&
           absl::StrContains(status.message(), "[ENOSPC]") &&
           // The failed write leaves neither a partial file nor the temporary.
           ::stat(info->Path("results.json").c_str(), &st) != 0 &&
           !HasEntryContaining(info->dir(), ".tmp.");
  });
  if (code == -1) GTEST_SKIP() << "no privilege for a private mount namespace";
  EXPECT_EQ(code, 0);
}

TEST(RunInfo, WriteFileIsAtomicAndReplaces) {
  auto info = RunInfo::Create({.root = TempDir("write"), .job_name = "j"});
  ASSERT_THAT(info, IsOk());
  ASSERT_THAT(info->WriteFile("results.json", "{}"), IsOk());
  ASSERT_THAT(info->WriteFile("results.json", "{\"v\":2}"), IsOk());
  EXPECT_EQ(ReadFile(info->Path("results.json")), "{\"v\":2}");
  EXPECT_THAT(info->WriteFile("missing_dir/x", "y"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(info->dir() + "/missing_dir/x.tmp.")));
}

TEST(RunInfo, EnvironmentFile) {
  auto info = RunInfo::Create({.root = TempDir("env"), .job_name = "j"});
  ASSERT_THAT(info, IsOk());
  ::setenv("TASKFORK_ENV_PROBE", "42", 1);
  ASSERT_THAT(info->WriteEnvironment({"runner", "job.textpb"}), IsOk());
  const std::string env = ReadFile(info->Path("env.txt"));
  EXPECT_THAT(env, StartsWith("argv: runner job.textpb\nuser: "));
  EXPECT_THAT(env, HasSubstr("\nkernel: Linux "));
  EXPECT_THAT(env, HasSubstr("\nTASKFORK_ENV_PROBE=42\n"));
}

}  // namespace
}  // namespace taskfork::runner
