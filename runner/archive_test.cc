// WriteTarGz, checked against the system's GNU tar (run as a child process):
// what tar extracts must be the tree that was archived.
#include "runner/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/fd.h"
#include "base/status_matchers.h"
#include "fork/process.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteFile(const std::string& path, const std::string& contents,
               mode_t mode = 0644) {
  std::ofstream(path, std::ios::binary) << contents;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

// Bytes that do not compress, so sizes past zlib's buffers are exercised.
std::string NoiseBytes(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  for (char& c : out) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return out;
}

// What one entry of a tree is, for comparing trees.
struct Entry {
  char type = '?';  // 'f' file, 'd' directory, 'l' symlink, 'p' FIFO
  mode_t mode = 0;
  std::string data;  // file contents or link target
  time_t mtime = 0;  // files only

  bool operator==(const Entry& other) const {
    return type == other.type && mode == other.mode && data == other.data &&
           mtime == other.mtime;
  }
};

std::ostream& operator<<(std::ostream& os, const Entry& e) {
  return os << e.type << " mode " << std::oct << e.mode << std::dec
            << " mtime " << e.mtime << " data size " << e.data.size();
}

// Every entry under `root`, by path relative to it.
void Walk(const std::string& root, const std::string& relative,
          std::map<std::string, Entry>* out) {
  const std::string path = relative.empty() ? root : root + "/" + relative;
  DIR* dir = ::opendir(path.c_str());
  ASSERT_NE(dir, nullptr) << path;
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    const std::string rel = relative.empty() ? name : relative + "/" + name;
    const std::string full = root + "/" + rel;
    struct stat st;
    ASSERT_EQ(::lstat(full.c_str(), &st), 0) << full;
    Entry entry;
    entry.mode = st.st_mode & 07777;
    if (S_ISDIR(st.st_mode)) {
      entry.type = 'd';
      (*out)[rel] = entry;
      Walk(root, rel, out);
      continue;
    }
    if (S_ISREG(st.st_mode)) {
      entry.type = 'f';
      entry.data = ReadFile(full);
      entry.mtime = st.st_mtim.tv_sec;
    } else if (S_ISLNK(st.st_mode)) {
      entry.type = 'l';
      entry.mode = 0;  // Linux ignores a symlink's mode
      char target[4096];
      const ssize_t n = ::readlink(full.c_str(), target, sizeof(target));
      ASSERT_GT(n, 0) << full;
      entry.data.assign(target, n);
    } else if (S_ISFIFO(st.st_mode)) {
      entry.type = 'p';
    }
    (*out)[rel] = entry;
  }
}

std::map<std::string, Entry> Tree(const std::string& root) {
  std::map<std::string, Entry> tree;
  Walk(root, "", &tree);
  return tree;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `argv` (looked up in PATH) as a child process.
CommandResult RunCommand(std::vector<std::string> argv,
                         const std::string& scratch) {
  const std::string out = scratch + ".out";
  const std::string err = scratch + ".err";
  auto process = Process::Start({}, [&]() -> int {
    const int out_fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err_fd = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out_fd < 0 || err_fd < 0) return 120;
    ::dup2(out_fd, 1);
    ::dup2(err_fd, 2);
    std::vector<char*> args;
    for (std::string& arg : argv) args.push_back(arg.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    return 121;
  });
  CommandResult result;
  EXPECT_THAT(process, IsOk());
  if (!process.ok()) return result;
  const auto status = process->Join(absl::Seconds(60));
  EXPECT_THAT(status, IsOk());
  if (status.ok()) result.exit_code = status->exit_code;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

// Runs `body` in a forked child (for process-wide changes: rlimits,
// capabilities) and returns the status it returned.
absl::Status InChild(absl::AnyInvocable<absl::Status()> body) {
  auto process = Process::StartWithResultBytes(
      {}, [&]() -> std::string {
        const absl::Status status = body();
        return absl::StrCat(static_cast<int>(status.code()), "\n",
                            status.message());
      });
  if (!process.ok()) return process.status();
  const auto joined = process->Join(absl::Seconds(60));
  if (!joined.ok()) return joined.status();
  auto bytes = process->TakeResultBytes();
  if (!bytes.ok()) return bytes.status();
  const size_t newline = bytes->find('\n');
  int code = 0;
  if (newline == std::string::npos ||
      !absl::SimpleAtoi(bytes->substr(0, newline), &code)) {
    return absl::InternalError("malformed child result: " + *bytes);
  }
  return absl::Status(static_cast<absl::StatusCode>(code),
                      bytes->substr(newline + 1));
}

// Makes file permissions apply to this process even as root: drops the
// capabilities that bypass them from the effective set. Call in a child.
bool DropPermissionOverrides() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  for (int cap : {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER}) {
    data[cap / 32].effective &= ~(1u << (cap % 32));
  }
  return ::syscall(SYS_capset, &header, data) == 0;
}

// Names in a directory other than "." and "..", sorted.
std::vector<std::string> ListDirectory(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return names;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  return names;
}

class ArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/",
                         ::testing::UnitTest::GetInstance()
                             ->current_test_info()
                             ->name());
    ASSERT_EQ(::mkdir(base_.c_str(), 0755), 0);
    run_ = base_ + "/demo.20260101-120000.000001";
    ASSERT_EQ(::mkdir(run_.c_str(), 0755), 0);
    out_dir_ = base_ + "/archive";
    ASSERT_EQ(::mkdir(out_dir_.c_str(), 0755), 0);
  }

  // Extracts `archive` into a fresh directory with GNU tar and returns it.
  std::string Extract(const std::string& archive) {
    const std::string into = base_ + "/extracted";
    EXPECT_EQ(::mkdir(into.c_str(), 0755), 0);
    const CommandResult tar =
        RunCommand({"tar", "-xpzf", archive, "-C", into}, base_ + "/tar");
    EXPECT_EQ(tar.exit_code, 0) << tar.err;
    EXPECT_EQ(tar.err, "") << "tar complained";
    return into;
  }

  std::string base_;
  std::string run_;
  std::string out_dir_;
};

TEST_F(ArchiveTest, RoundTripsThroughGnuTar) {
  WriteFile(run_ + "/JobLog.demo", "line 1\nline 2\n");
  struct timespec times[2] = {{1234567890, 0}, {1234567890, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (run_ + "/JobLog.demo").c_str(), times, 0),
            0);
  WriteFile(run_ + "/empty", "");
  WriteFile(run_ + "/run.sh", "#!/bin/sh\nexit 0\n", 0751);
  WriteFile(run_ + "/noise.bin", NoiseBytes(1024 * 1024 + 3, 7));
  ASSERT_EQ(::mkdir((run_ + "/empty_dir").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((run_ + "/sub").c_str(), 0755), 0);
  WriteFile(run_ + "/sub/TaskLog.t1", "task log\n");
  // 127-byte path: fits ustar's prefix + name split.
  const std::string split_dir = run_ + "/" + std::string(120, 'p');
  ASSERT_EQ(::mkdir(split_dir.c_str(), 0755), 0);
  WriteFile(split_dir + "/f.txt", "split\n");
  // Components of 90 bytes: past what ustar holds, so pax "path" records.
  const std::string deep = run_ + "/" + std::string(90, 'a') + "/" +
                           std::string(90, 'b');
  ASSERT_EQ(::mkdir((run_ + "/" + std::string(90, 'a')).c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(deep.c_str(), 0755), 0);
  WriteFile(deep + "/" + std::string(90, 'c'), "deep\n");
  WriteFile(run_ + "/" + std::string(200, 'n'), "one long component\n");
  ASSERT_EQ(::symlink("JobLog.demo", (run_ + "/log_link").c_str()), 0);
  ASSERT_EQ(::symlink("sub", (run_ + "/dir_link").c_str()), 0);
  const std::string long_target = "/nowhere/" + std::string(150, 'z');
  ASSERT_EQ(::symlink(long_target.c_str(), (run_ + "/long_link").c_str()), 0);
  ASSERT_EQ(::mkfifo((run_ + "/fifo").c_str(), 0640), 0);

  const std::string archive = out_dir_ + "/demo.20260101-120000.000001.tar.gz";
  ASSERT_THAT(WriteTarGz(run_, archive), IsOk());
  EXPECT_THAT(ListDirectory(out_dir_),
              ElementsAre("demo.20260101-120000.000001.tar.gz"));
  struct stat st;
  ASSERT_EQ(::stat(archive.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644);

  // One top-level entry, the run directory itself, listed first.
  const CommandResult list =
      RunCommand({"tar", "-tzf", archive}, base_ + "/list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.err, "");
  const std::vector<std::string> names =
      absl::StrSplit(list.out, '\n', absl::SkipEmpty());
  ASSERT_FALSE(names.empty());
  EXPECT_EQ(names[0], "demo.20260101-120000.000001/");
  for (const std::string& name : names) {
    EXPECT_THAT(name, StartsWith("demo.20260101-120000.000001/"));
  }
  EXPECT_EQ(names.size(), Tree(run_).size() + 1);

  // One clean gzip stream: no trailing bytes after it (gzip -t warns of
  // "trailing garbage" and exits 2).
  const CommandResult gzip =
      RunCommand({"gzip", "-t", archive}, base_ + "/gzip");
  EXPECT_EQ(gzip.exit_code, 0) << gzip.err;
  EXPECT_EQ(gzip.err, "");

  const std::string extracted = Extract(archive);
  EXPECT_THAT(ListDirectory(extracted),
              ElementsAre("demo.20260101-120000.000001"));
  const auto original = Tree(run_);
  const auto copy = Tree(extracted + "/demo.20260101-120000.000001");
  EXPECT_EQ(copy, original);
  EXPECT_EQ(copy.at("JobLog.demo").mtime, 1234567890);
  EXPECT_EQ(copy.at("run.sh").mode, 0751);
  EXPECT_EQ(copy.at("empty_dir").type, 'd');
  EXPECT_EQ(copy.at("empty_dir").mode, 0700);
  EXPECT_EQ(copy.at("dir_link").type, 'l');
  EXPECT_EQ(copy.at("long_link").data, long_target);
  EXPECT_EQ(copy.at("fifo").type, 'p');
}

TEST_F(ArchiveTest, TrailingSlashAndOutputInsideTheDirectory) {
  WriteFile(run_ + "/results.json", "{}\n");
  // The archive's own temporary file is in the tree being archived.
  const std::string archive = run_ + "/self.tar.gz";
  ASSERT_THAT(WriteTarGz(run_ + "/", archive), IsOk());
  const CommandResult list =
      RunCommand({"tar", "-tzf", archive}, base_ + "/list");
  ASSERT_EQ(list.exit_code, 0) << list.err;
  EXPECT_EQ(list.out,
            "demo.20260101-120000.000001/\n"
            "demo.20260101-120000.000001/results.json\n");
}

TEST_F(ArchiveTest, FileGrowingWhileReadStaysConsistent) {
  // Log-like lines: each one names its own offset, so a copy that is not a
  // prefix of the file shows.
  auto lines = [](int64_t begin, int count) {
    std::string out;
    for (int i = 0; i < count; ++i) {
      absl::StrAppend(&out, "line ", begin + i, " of a growing task log\n");
    }
    return out;
  };
  const std::string path = run_ + "/TaskLog.busy";
  const std::string initial = lines(0, 50000);  // about 1.7 MB
  WriteFile(path, initial);
  // A writer appends (up to about 8 MB more) while the archive is written.
  auto started = OwnedFd::Pipe();
  ASSERT_THAT(started, IsOk());
  auto writer = Process::Start({}, [&]() -> int {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND);
    if (fd < 0) return 1;
    for (int i = 0; i < 500; ++i) {
      const std::string chunk = lines(50000 + i * 500, 500);
      if (::write(fd, chunk.data(), chunk.size()) < 0) return 2;
      if (i == 0 && ::write(started->write.get(), "x", 1) != 1) return 3;
    }
    while (true) ::pause();
  });
  ASSERT_THAT(writer, IsOk());
  started->write.Reset();
  char byte;
  ASSERT_EQ(::read(started->read.get(), &byte, 1), 1);

  const std::string archive = out_dir_ + "/busy.tar.gz";
  ASSERT_THAT(WriteTarGz(run_, archive), IsOk());
  ASSERT_THAT(writer->Kill(), IsOk());

  const std::string extracted = Extract(archive);
  const std::string copy =
      ReadFile(extracted + "/demo.20260101-120000.000001/TaskLog.busy");
  const std::string now = ReadFile(path);
  EXPECT_GT(copy.size(), initial.size());
  EXPECT_LE(copy.size(), now.size());
  EXPECT_TRUE(now.compare(0, copy.size(), copy) == 0)
      << "the archived file is not a prefix of the file";
}

TEST_F(ArchiveTest, MissingDirectoryToArchiveIsNotFound) {
  const std::string missing = base_ + "/no_such_run";
  EXPECT_THAT(WriteTarGz(missing, out_dir_ + "/x.tar.gz"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(missing + ": No such file or directory "
                                           "[ENOENT]")));
  EXPECT_THAT(ListDirectory(out_dir_), ElementsAre());
}

TEST_F(ArchiveTest, ArchivingAFileIsFailedPrecondition) {
  WriteFile(base_ + "/plain", "x");
  EXPECT_THAT(WriteTarGz(base_ + "/plain", out_dir_ + "/x.tar.gz"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("[ENOTDIR]")));
}

TEST_F(ArchiveTest, MissingOutputDirectoryIsNotFound) {
  const std::string missing = base_ + "/no_such_dir";
  EXPECT_THAT(WriteTarGz(run_, missing + "/x.tar.gz"),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("create archive " + missing +
                                 "/x.tar.gz.tmp-")));
  EXPECT_THAT(ListDirectory(run_), ElementsAre());
}

TEST_F(ArchiveTest, OutputUnderAFileIsFailedPrecondition) {
  WriteFile(base_ + "/plain", "x");
  EXPECT_THAT(WriteTarGz(run_, base_ + "/plain/x.tar.gz"),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("[ENOTDIR]")));
}

TEST_F(ArchiveTest, UnwritableOutputDirectoryIsPermissionDenied) {
  WriteFile(run_ + "/a", "a");
  ASSERT_EQ(::chmod(out_dir_.c_str(), 0555), 0);
  const std::string out = out_dir_ + "/x.tar.gz";
  EXPECT_THAT(InChild([&] {
                if (!DropPermissionOverrides()) {
                  return absl::InternalError("capset failed");
                }
                return WriteTarGz(run_, out);
              }),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("create archive " + out + ".tmp-")));
  ASSERT_EQ(::chmod(out_dir_.c_str(), 0755), 0);
  EXPECT_THAT(ListDirectory(out_dir_), ElementsAre());
}

TEST_F(ArchiveTest, UnreadableEntryFailsNamingItAndLeavesNothing) {
  WriteFile(run_ + "/secret", "s", 0000);
  EXPECT_THAT(InChild([&] {
                if (!DropPermissionOverrides()) {
                  return absl::InternalError("capset failed");
                }
                return WriteTarGz(run_, out_dir_ + "/x.tar.gz");
              }),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       HasSubstr("open " + run_ + "/secret")));
  EXPECT_THAT(ListDirectory(out_dir_), ElementsAre());
  EXPECT_THAT(ListDirectory(run_), ElementsAre("secret"));
}

// A write error (here EFBIG from RLIMIT_FSIZE, the same path as ENOSPC on a
// full disk) removes the temporary file and keeps the old archive.
TEST_F(ArchiveTest, WriteErrorKeepsTheOldArchiveAndTheDirectory) {
  WriteFile(run_ + "/noise.bin", NoiseBytes(1 << 20, 3));
  const std::string out = out_dir_ + "/x.tar.gz";
  WriteFile(out, "old archive");
  EXPECT_THAT(InChild([&] {
                ::signal(SIGXFSZ, SIG_IGN);
                const rlimit limit = {64 * 1024, 64 * 1024};
                if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) {
                  return absl::InternalError("setrlimit failed");
                }
                return WriteTarGz(run_, out);
              }),
              StatusIs(absl::StatusCode::kOutOfRange,
                       HasSubstr("write " + out + ".tmp-")));
  EXPECT_THAT(ListDirectory(out_dir_), ElementsAre("x.tar.gz"));
  EXPECT_EQ(ReadFile(out), "old archive");
  EXPECT_EQ(ReadFile(run_ + "/noise.bin").size(), 1u << 20);
}

TEST_F(ArchiveTest, ReplacesAnExistingArchive) {
  WriteFile(run_ + "/a", "first");
  const std::string out = out_dir_ + "/x.tar.gz";
  ASSERT_THAT(WriteTarGz(run_, out), IsOk());
  WriteFile(run_ + "/a", "second");
  ASSERT_THAT(WriteTarGz(run_, out), IsOk());
  EXPECT_THAT(ListDirectory(out_dir_), ElementsAre("x.tar.gz"));
  const std::string extracted = Extract(out);
  EXPECT_EQ(ReadFile(extracted + "/demo.20260101-120000.000001/a"), "second");
}

}  // namespace
}  // namespace taskfork::runner
