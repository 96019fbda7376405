#include "tasklog/tasklog.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>  // NOLINT
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_matchers.h"
#include "fork/at_fork.h"
#include "glog/logging.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tasklog/internal/test_fixture.h"
#include "tasklog/internal/test_util.h"

namespace taskfork::tasklog {
namespace {

using ::taskfork::tasklog_testing::Checker;
using ::taskfork::tasklog_testing::ChildOutcome;
using ::taskfork::tasklog_testing::Exists;
using ::taskfork::tasklog_testing::ExitedWith;
using ::taskfork::tasklog_testing::FindLines;
using ::taskfork::tasklog_testing::Gettid;
using ::taskfork::tasklog_testing::Line;
using ::taskfork::tasklog_testing::Lines;
using ::taskfork::tasklog_testing::MakeTempDir;
using ::taskfork::tasklog_testing::ParseLine;
using ::taskfork::tasklog_testing::ReadFile;
using ::taskfork::tasklog_testing::RunInChild;
using ::taskfork::tasklog_testing::WaitWithTimeout;
using ::taskfork::testing::IsOk;
using ::taskfork::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::Not;

// Pcall integration is tested in tasklog_pcall_test; without it this
// binary never registers a Pcall join hook (see that test's comment).
TaskLogOptions QuietOptions() {
  return tasklog_testing::QuietOptions(/*merge_pcall_children=*/false);
}

using TaskLogTest = tasklog_testing::TaskLogTestBase;

TEST_F(TaskLogTest, WritesEveryLineInTheDocumentedFormat) {
  const std::string path = dir_ + "/TaskLog.t1";
  absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ(TaskLog::Current(), *log);
  EXPECT_EQ((*log)->path(), path);
  EXPECT_TRUE(TaskLog::glog_lock_found());

  LOG(INFO) << "hello " << 42;
  const int info_line = __LINE__ - 1;
  LOG(WARNING) << "careful";
  LOG(ERROR) << "bad";

  const std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 3u) << ReadFile(path);
  Line line;
  ASSERT_TRUE(ParseLine(lines[0], &line)) << lines[0];
  EXPECT_EQ(line.severity, 'I');
  EXPECT_EQ(line.pid, ::getpid());
  EXPECT_EQ(line.tid, Gettid());
  EXPECT_EQ(line.file, "tasklog_test.cc");
  EXPECT_EQ(line.line, info_line);
  EXPECT_EQ(line.message, "hello 42");
  ASSERT_TRUE(ParseLine(lines[1], &line)) << lines[1];
  EXPECT_EQ(line.severity, 'W');
  EXPECT_EQ(line.message, "careful");
  ASSERT_TRUE(ParseLine(lines[2], &line)) << lines[2];
  EXPECT_EQ(line.severity, 'E');
  EXPECT_EQ(line.message, "bad");
  EXPECT_THAT((*log)->status(), IsOk());
}

// The reports TaskLog writes on the "screen" of a child whose stderr is a
// pipe, and that child's outcome.
struct ScreenedOutcome {
  ChildOutcome outcome;
  std::string screen;
};

ScreenedOutcome RunWithScreenPipe(const std::function<std::string()>& body) {
  int screen[2];
  CHECK_EQ(::pipe2(screen, O_CLOEXEC), 0);
  ScreenedOutcome result;
  result.outcome = RunInChild([&] {
    ::dup2(screen[1], STDERR_FILENO);
    ::close(screen[0]);
    ::close(screen[1]);
    return body();
  });
  ::close(screen[1]);
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(screen[0], buffer, sizeof(buffer))) > 0) {
    result.screen.append(buffer, n);
  }
  ::close(screen[0]);
  return result;
}

// TaskLog::Log: the same line format without glog; a path's base name; a
// FATAL line does not abort; a screen copy per screen_severity; nothing after
// Uninstall().
TEST_F(TaskLogTest, LogWritesTheDocumentedFormatWithoutGlog) {
  const std::string path = dir_ + "/TaskLog.direct";
  const ScreenedOutcome result = RunWithScreenPipe([&] {
    TaskLogOptions options = QuietOptions();
    options.screen_severity = google::GLOG_WARNING;
    Checker check;
    absl::StatusOr<TaskLog*> log = TaskLog::Install(path, options);
    check.Check(log.ok(), "Install");
    if (!log.ok()) return check.failures();
    (*log)->Log(google::GLOG_INFO, "some/dir/direct.cc", 12, "plain 1");
    (*log)->Log(google::GLOG_WARNING, "direct.cc", 34, "to the screen too");
    (*log)->Log(google::GLOG_FATAL, "/abs/fatal.cc", 56, "fatal, no abort");
    check.Check((*log)->status().ok(), "status");
    const TaskLog* kept = *log;
    check.Check(TaskLog::Uninstall().ok(), "Uninstall");
    kept->Log(google::GLOG_ERROR, "direct.cc", 78, "after uninstall");
    return check.failures();
  });
  ASSERT_THAT(result.outcome.child, IsOk());
  ASSERT_EQ(result.outcome.report, "");
  const std::string& shown = result.screen;

  const std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 3u) << ReadFile(path);
  Line line;
  ASSERT_TRUE(ParseLine(lines[0], &line)) << lines[0];
  EXPECT_EQ(line.severity, 'I');
  EXPECT_NE(line.pid, ::getpid());  // the child's
  EXPECT_EQ(line.tid, line.pid);     // its only thread
  EXPECT_EQ(line.file, "direct.cc");
  EXPECT_EQ(line.line, 12);
  EXPECT_EQ(line.message, "plain 1");
  ASSERT_TRUE(ParseLine(lines[1], &line)) << lines[1];
  EXPECT_EQ(line.severity, 'W');
  EXPECT_EQ(line.line, 34);
  ASSERT_TRUE(ParseLine(lines[2], &line)) << lines[2];
  EXPECT_EQ(line.severity, 'F');
  EXPECT_EQ(line.file, "fatal.cc");
  EXPECT_EQ(line.message, "fatal, no abort");
  // The screen got the WARNING and FATAL lines, in the same format.
  const std::vector<std::string> screen_lines = Lines(shown);
  ASSERT_EQ(screen_lines.size(), 2u) << shown;
  EXPECT_EQ(screen_lines[0], lines[1]);
  EXPECT_EQ(screen_lines[1], lines[2]);
}

TEST_F(TaskLogTest, ThreadIdIsTheLoggingThreads) {
  const std::string path = dir_ + "/TaskLog.tid";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  pid_t thread_tid = 0;
  std::thread([&thread_tid] {
    thread_tid = Gettid();
    LOG(INFO) << "from a thread";
  }).join();
  const std::vector<Line> found = FindLines(path, "from a thread");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].tid, thread_tid);
  EXPECT_NE(found[0].tid, ::getpid());
}

TEST_F(TaskLogTest, RelativePathIsMadeAbsolute) {
  char cwd[PATH_MAX];
  ASSERT_NE(::getcwd(cwd, sizeof(cwd)), nullptr);
  ASSERT_EQ(::chdir(dir_.c_str()), 0);
  absl::StatusOr<TaskLog*> log =
      TaskLog::Install("TaskLog.rel", QuietOptions());
  ASSERT_EQ(::chdir(cwd), 0);
  ASSERT_THAT(log, IsOk());
  EXPECT_EQ((*log)->path(), dir_ + "/TaskLog.rel");
  LOG(INFO) << "relative";
  EXPECT_EQ(FindLines(dir_ + "/TaskLog.rel", "relative").size(), 1u);
}

TEST_F(TaskLogTest, InstallErrors) {
  EXPECT_THAT(TaskLog::Install("", QuietOptions()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(TaskLog::Install(dir_ + "/missing/TaskLog.t1", QuietOptions()),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(dir_ + "/missing/TaskLog.t1")));
  EXPECT_THAT(
      TaskLog::Install(dir_ + "/" + std::string(PATH_MAX, 'x'), QuietOptions()),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("pid")));
  TaskLogOptions bad_severity = QuietOptions();
  bad_severity.screen_severity = 7;
  EXPECT_THAT(TaskLog::Install(dir_ + "/TaskLog.t1", bad_severity),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("screen_severity 7")));
  ASSERT_EQ(::chmod(dir_.c_str(), 0500), 0);
  if (::access(dir_.c_str(), W_OK) != 0) {  // root ignores permissions
    EXPECT_THAT(TaskLog::Install(dir_ + "/TaskLog.t1", QuietOptions()),
                StatusIs(absl::StatusCode::kPermissionDenied));
  }
  ASSERT_EQ(::chmod(dir_.c_str(), 0700), 0);
  EXPECT_EQ(TaskLog::Current(), nullptr);
}

TEST_F(TaskLogTest, FailedInstallKeepsThePreviousLog) {
  const std::string path = dir_ + "/TaskLog.keep";
  absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
  ASSERT_THAT(log, IsOk());
  EXPECT_THAT(TaskLog::Install(dir_ + "/missing/x", QuietOptions()),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_EQ((*log)->path(), path);
  LOG(INFO) << "still here";
  EXPECT_EQ(FindLines(path, "still here").size(), 1u);
}

TEST_F(TaskLogTest, UninstallAndMethodsWithoutALog) {
  EXPECT_THAT(TaskLog::Uninstall(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<TaskLog*> log =
      TaskLog::Install(dir_ + "/TaskLog.u", QuietOptions());
  ASSERT_THAT(log, IsOk());
  ASSERT_THAT(TaskLog::Uninstall(), IsOk());
  EXPECT_EQ(TaskLog::Current(), nullptr);
  EXPECT_EQ((*log)->path(), "");
  EXPECT_THAT((*log)->size(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*log)->status(),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  const pid_t pids[] = {1};
  EXPECT_THAT((*log)->MergeChildLogs(pids),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  LOG(INFO) << "after uninstall";
  EXPECT_TRUE(FindLines(dir_ + "/TaskLog.u", "after uninstall").empty());
}

TEST_F(TaskLogTest, InstallAgainSwitchesTheFile) {
  ASSERT_THAT(TaskLog::Install(dir_ + "/first", QuietOptions()), IsOk());
  LOG(INFO) << "one";
  absl::StatusOr<TaskLog*> log =
      TaskLog::Install(dir_ + "/second", QuietOptions());
  ASSERT_THAT(log, IsOk());
  LOG(INFO) << "two";
  EXPECT_EQ((*log)->path(), dir_ + "/second");
  EXPECT_EQ(FindLines(dir_ + "/first", "one").size(), 1u);
  EXPECT_TRUE(FindLines(dir_ + "/first", "two").empty());
  EXPECT_EQ(FindLines(dir_ + "/second", "two").size(), 1u);
}

TEST_F(TaskLogTest, AppendsUnlessTruncateIsSet) {
  const std::string path = dir_ + "/TaskLog.a";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  LOG(INFO) << "first run";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  LOG(INFO) << "second run";
  EXPECT_EQ(Lines(ReadFile(path)).size(), 2u);
  TaskLogOptions truncate = QuietOptions();
  truncate.truncate = true;
  ASSERT_THAT(TaskLog::Install(path, truncate), IsOk());
  LOG(INFO) << "third run";
  EXPECT_EQ(Lines(ReadFile(path)).size(), 1u);
}

TEST_F(TaskLogTest, SizeIsTheOffsetWhereTheNextLineStarts) {
  const std::string path = dir_ + "/TaskLog.size";
  absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
  ASSERT_THAT(log, IsOk());
  LOG(INFO) << "before the section";
  const absl::StatusOr<int64_t> begin = (*log)->size();
  ASSERT_THAT(begin, IsOk());
  LOG(INFO) << "section line 1";
  LOG(INFO) << "section line 2";
  const absl::StatusOr<int64_t> end = (*log)->size();
  ASSERT_THAT(end, IsOk());
  const std::string text = ReadFile(path);
  ASSERT_EQ(static_cast<int64_t>(text.size()), *end);
  const std::vector<std::string> section =
      Lines(text.substr(*begin, *end - *begin));
  ASSERT_EQ(section.size(), 2u);
  Line line;
  ASSERT_TRUE(ParseLine(section[0], &line));
  EXPECT_EQ(line.message, "section line 1");
  ASSERT_TRUE(ParseLine(section[1], &line));
  EXPECT_EQ(line.message, "section line 2");
}

TEST_F(TaskLogTest, MultiLineMessagesAreWrittenAsIs) {
  const std::string path = dir_ + "/TaskLog.multi";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  LOG(INFO) << "first\nsecond";
  const std::vector<std::string> lines = Lines(ReadFile(path));
  ASSERT_EQ(lines.size(), 2u);
  Line line;
  ASSERT_TRUE(ParseLine(lines[0], &line));
  EXPECT_EQ(line.message, "first");
  EXPECT_EQ(lines[1], "second");
}

TEST_F(TaskLogTest, ForkedChildGetsItsOwnFileAndAPointerLine) {
  const std::string path = dir_ + "/TaskLog.t1";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  LOG(INFO) << "parent before fork";
  const pid_t parent_tid = Gettid();
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    LOG(INFO) << "in the child";
    const bool ok = TaskLog::Current() != nullptr &&
                    TaskLog::Current()->path() ==
                        path + ":pid-" + std::to_string(::getpid()) &&
                    TaskLog::Current()->status().ok();
    ::_exit(ok ? 0 : 1);
  }
  ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 30000), 0));
  LOG(INFO) << "parent after fork";

  const std::string child_path = TaskLog::ChildLogPath(path, pid);
  EXPECT_EQ(child_path, path + ":pid-" + std::to_string(pid));
  const std::vector<Line> child_lines = FindLines(child_path, "in the child");
  ASSERT_EQ(child_lines.size(), 1u) << ReadFile(child_path);
  EXPECT_EQ(child_lines[0].pid, pid);
  EXPECT_EQ(Lines(ReadFile(child_path)).size(), 1u) << ReadFile(child_path);

  const std::vector<Line> pointer = FindLines(
      path,
      absl::StrCat("Forked process ", pid, " started, log: ", child_path));
  ASSERT_EQ(pointer.size(), 1u) << ReadFile(path);
  EXPECT_EQ(pointer[0].severity, 'I');
  EXPECT_EQ(pointer[0].pid, ::getpid());
  EXPECT_EQ(pointer[0].tid, parent_tid);
  EXPECT_TRUE(FindLines(path, "in the child").empty());
  EXPECT_EQ(FindLines(path, "parent after fork").size(), 1u);
}

TEST_F(TaskLogTest, GrandchildLogNamesNest) {
  const std::string path = dir_ + "/TaskLog.nest";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      LOG(INFO) << "grandchild";
      ::_exit(0);
    }
    const ssize_t unused = ::write(fds[1], &grandchild, sizeof(grandchild));
    (void)unused;
    ::_exit(ExitedWith(WaitWithTimeout(grandchild, 30000), 0) ? 0 : 1);
  }
  ::close(fds[1]);
  pid_t grandchild = 0;
  ASSERT_EQ(::read(fds[0], &grandchild, sizeof(grandchild)),
            static_cast<ssize_t>(sizeof(grandchild)));
  ::close(fds[0]);
  ASSERT_TRUE(ExitedWith(WaitWithTimeout(child, 30000), 0));
  const std::string child_path = TaskLog::ChildLogPath(path, child);
  const std::string grandchild_path =
      TaskLog::ChildLogPath(child_path, grandchild);
  EXPECT_EQ(FindLines(grandchild_path, "grandchild").size(), 1u);
  EXPECT_EQ(
      FindLines(child_path, absl::StrCat("Forked process ", grandchild,
                                         " started, log: ", grandchild_path))
          .size(),
      1u)
      << ReadFile(child_path);
}

// TaskLog's handlers run at the lowest priority: its prepare handler after
// every other one and its child handler before every other one, so other
// handlers may LOG() (into the child's own file, in the child).
TEST_F(TaskLogTest, OtherAtForkHandlersMayLog) {
  const std::string path = dir_ + "/TaskLog.handlers";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  AtForkHandlers handlers;
  handlers.prepare = [] { LOG(INFO) << "prepare handler"; };
  handlers.parent = [] { LOG(INFO) << "parent handler"; };
  handlers.child = [] { LOG(INFO) << "child handler"; };
  {
    AtForkRegistration registration =
        RegisterAtFork(kAtForkPriorityFork, std::move(handlers));
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) ::_exit(0);
    ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 30000), 0));
    const std::string child_path = TaskLog::ChildLogPath(path, pid);
    EXPECT_EQ(FindLines(path, "prepare handler").size(), 1u);
    EXPECT_EQ(FindLines(path, "parent handler").size(), 1u);
    EXPECT_TRUE(FindLines(path, "child handler").empty());
    const std::vector<Line> child_lines =
        FindLines(child_path, "child handler");
    ASSERT_EQ(child_lines.size(), 1u) << ReadFile(child_path);
    EXPECT_EQ(child_lines[0].pid, pid);
  }
}

TEST_F(TaskLogTest, JobLogChildrenKeepTheSameFile) {
  const std::string path = dir_ + "/JobLog.job";
  ASSERT_THAT(JobLog::Install(path, QuietOptions()), IsOk());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    LOG(INFO) << "job child";
    ::_exit(TaskLog::Current()->path() == path ? 0 : 1);
  }
  ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 30000), 0));
  const std::vector<Line> lines = FindLines(path, "job child");
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].pid, pid);
  EXPECT_FALSE(Exists(TaskLog::ChildLogPath(path, pid)));
  EXPECT_THAT(ReadFile(path), Not(HasSubstr("Forked process")));
}

TEST_F(TaskLogTest, ChildCanInstallItsOwnTaskLogOverTheJobLog) {
  const std::string job_path = dir_ + "/JobLog.job";
  const std::string task_path = dir_ + "/TaskLog.t1";
  ASSERT_THAT(JobLog::Install(job_path, QuietOptions()), IsOk());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const bool ok = TaskLog::Install(task_path, QuietOptions()).ok();
    LOG(INFO) << "task body";
    ::_exit(ok ? 0 : 1);
  }
  ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 30000), 0));
  LOG(INFO) << "runner goes on";
  EXPECT_EQ(FindLines(task_path, "task body").size(), 1u);
  EXPECT_TRUE(FindLines(job_path, "task body").empty());
  EXPECT_EQ(FindLines(job_path, "runner goes on").size(), 1u);
}

// Other threads log without pause while the main thread forks: every child
// must be able to log (glog's lock and TaskLog's are never inherited held).
TEST_F(TaskLogTest, ForkWhileOtherThreadsLog) {
  const std::string path = dir_ + "/TaskLog.busy";
  ASSERT_THAT(TaskLog::Install(path, QuietOptions()), IsOk());
  std::atomic<bool> stop{false};
  std::vector<std::thread> loggers;
  for (int t = 0; t < 4; ++t) {
    loggers.emplace_back([t, &stop] {
      for (int i = 0; !stop.load(std::memory_order_relaxed); ++i) {
        LOG(INFO) << "logger " << t << " line " << i;
      }
    });
  }
  constexpr int kForks = 25;
  std::vector<pid_t> children;
  for (int i = 0; i < kForks; ++i) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      LOG(INFO) << "child " << i << " logged";
      ::_exit(0);
    }
    children.push_back(pid);
    // The child's status, not a sleep, paces the loop.
    ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 20000), 0))
        << "child " << i << " hung or failed (deadlock after fork?)";
  }
  stop = true;
  for (std::thread& t : loggers) t.join();
  // Parsing the (large) parent log once.
  std::set<std::string> pointers;
  for (const std::string& text : Lines(ReadFile(path))) {
    if (text.find("] Forked process ") == std::string::npos) continue;
    Line line;
    if (ParseLine(text, &line)) pointers.insert(line.message);
  }
  for (int i = 0; i < kForks; ++i) {
    const std::string child_path = TaskLog::ChildLogPath(path, children[i]);
    EXPECT_EQ(
        FindLines(child_path, absl::StrCat("child ", i, " logged")).size(), 1u)
        << child_path;
    EXPECT_EQ(pointers.count(absl::StrCat("Forked process ", children[i],
                                          " started, log: ", child_path)),
              1u);
  }
}

std::string Payload(int writer, int index) {
  // Lengths from 1 to ~3000 bytes, so that some lines exceed a pipe buffer
  // page and a stdio buffer.
  return std::string(1 + (writer * 7919 + index * 104729) % 3000,
                     static_cast<char>('a' + (writer + index) % 26));
}

// Threads of this process and of a forked JobLog child write at the same
// time; every line must come out whole, once, and in each writer's order.
TEST_F(TaskLogTest, ConcurrentWritersNeverLoseOrMixLines) {
  const std::string path = dir_ + "/JobLog.concurrent";
  ASSERT_THAT(JobLog::Install(path, QuietOptions()), IsOk());
  constexpr int kThreads = 6;
  constexpr int kLinesPerWriter = 1500;
  auto write_lines = [](int writer) {
    for (int i = 0; i < kLinesPerWriter; ++i) {
      LOG(INFO) << "w" << writer << " #" << i << " " << Payload(writer, i);
    }
  };
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) threads.emplace_back(write_lines, 100 + t);
    for (std::thread& t : threads) t.join();
    ::_exit(0);
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(write_lines, t);
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(ExitedWith(WaitWithTimeout(child, 60000), 0));

  std::map<int, int> next_index;  // writer -> next expected index
  int parsed = 0;
  for (const std::string& text : Lines(ReadFile(path))) {
    Line line;
    ASSERT_TRUE(ParseLine(text, &line))
        << "mixed or torn line: " << text.substr(0, 200);
    const std::vector<std::string> parts = absl::StrSplit(line.message, ' ');
    ASSERT_EQ(parts.size(), 3u) << text.substr(0, 200);
    int writer, index;
    ASSERT_TRUE(absl::SimpleAtoi(parts[0].substr(1), &writer));
    ASSERT_TRUE(absl::SimpleAtoi(parts[1].substr(1), &index));
    EXPECT_EQ(line.pid, writer >= 100 ? child : ::getpid());
    EXPECT_EQ(index, next_index[writer]) << "writer " << writer;
    next_index[writer] = index + 1;
    EXPECT_EQ(parts[2], Payload(writer, index));
    ++parsed;
  }
  EXPECT_EQ(parsed, (kThreads + 2) * kLinesPerWriter);
  for (const auto& [writer, next] : next_index)
    EXPECT_EQ(next, kLinesPerWriter);
}

// Children logging through raw fork(); merged in argument order.
TEST_F(TaskLogTest, MergeChildLogsInArgumentOrder) {
  const std::string path = dir_ + "/TaskLog.merge";
  absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
  ASSERT_THAT(log, IsOk());
  std::vector<pid_t> pids;
  for (int k = 0; k < 3; ++k) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      for (int j = 0; j < 3; ++j) LOG(INFO) << "child " << k << " line " << j;
      ::_exit(0);
    }
    pids.push_back(pid);
  }
  for (pid_t pid : pids)
    ASSERT_TRUE(ExitedWith(WaitWithTimeout(pid, 30000), 0));
  const std::vector<pid_t> order = {pids[2], pids[0], pids[1]};
  const int64_t before = *(*log)->size();
  ASSERT_THAT((*log)->MergeChildLogs(order), IsOk());

  std::string expected;
  for (pid_t pid : order) {
    const std::string child_path = TaskLog::ChildLogPath(path, pid);
    const std::string child_text = ReadFile(child_path);
    ASSERT_EQ(Lines(child_text).size(), 3u);
    absl::StrAppend(&expected, ">>>> Begin child log ", child_path, "\n",
                    child_text, "<<<< End child log ", child_path, "\n");
  }
  EXPECT_EQ(ReadFile(path).substr(before), expected);
  EXPECT_THAT((*log)->status(), IsOk());
}

TEST_F(TaskLogTest, MergeEndsAChildLogWithoutNewlineAndSkipsMissingOnes) {
  const std::string path = dir_ + "/TaskLog.m2";
  absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
  ASSERT_THAT(log, IsOk());
  // A child log whose last write was cut short (no final newline).
  const pid_t fake = 2000000001;
  const std::string fake_path = TaskLog::ChildLogPath(path, fake);
  {
    const int fd =
        ::open(fake_path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "partial", 7), 7);
    ::close(fd);
  }
  const pid_t missing = 2000000002;
  const pid_t pids[] = {missing, fake};
  EXPECT_THAT((*log)->MergeChildLogs(pids),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr(TaskLog::ChildLogPath(path, missing))));
  EXPECT_EQ(ReadFile(path),
            absl::StrCat(">>>> Begin child log ", fake_path,
                         "\npartial\n<<<< End child log ", fake_path, "\n"));
  EXPECT_THAT((*log)->status(), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(TaskLogTest, CapturesStdoutStderrAndProgramsTheTaskStarts) {
  const std::string path = dir_ + "/TaskLog.stdio";
  const ChildOutcome outcome = RunInChild([&path] {
    TaskLogOptions options;
    options.install_failure_handler = false;
    Checker check;
    check.Check(TaskLog::Install(path, options).ok(), "Install");
    LOG(INFO) << "a LOG line";
    std::printf("printf line\n");
    std::fprintf(stderr, "stderr line\n");
    std::cout << "cout line" << std::endl;
    const ssize_t unused = ::write(STDOUT_FILENO, "raw fd 1\n", 9);
    (void)unused;
    check.Check(std::system("echo from a program; echo its stderr >&2") == 0,
                "system");
    std::printf("no newline yet");  // line-buffered: flushed at exit
    return check.failures();
  });
  ASSERT_THAT(outcome.child, IsOk());
  ASSERT_EQ(outcome.report, "");
  const std::string text = ReadFile(path);
  for (const char* expected :
       {"printf line\n", "stderr line\n", "cout line\n", "raw fd 1\n",
        "from a program\n", "its stderr\n"}) {
    EXPECT_THAT(text, HasSubstr(expected));
  }
  EXPECT_EQ(FindLines(path, "a LOG line").size(), 1u);
  // Order is kept: the LOG line was written before the printf.
  EXPECT_LT(text.find("a LOG line"), text.find("printf line"));
}

TEST_F(TaskLogTest, ScreenGetsLinesFromTheChosenSeverity) {
  const std::string path = dir_ + "/TaskLog.screen";
  // The "terminal" of this child is the pipe.
  const ScreenedOutcome result = RunWithScreenPipe([&] {
    TaskLogOptions options;
    options.install_failure_handler = false;
    options.screen_severity = google::GLOG_WARNING;
    Checker check;
    check.Check(TaskLog::Install(path, options).ok(), "Install");
    LOG(INFO) << "file only";
    LOG(WARNING) << "file and screen";
    std::fprintf(stderr, "captured stderr\n");
    check.Check(TaskLog::Uninstall().ok(), "Uninstall");
    return check.failures();
  });
  const std::string& shown = result.screen;
  ASSERT_THAT(result.outcome.child, IsOk());
  ASSERT_EQ(result.outcome.report, "");
  const std::vector<std::string> lines = Lines(shown);
  ASSERT_EQ(lines.size(), 1u) << shown;
  Line line;
  ASSERT_TRUE(ParseLine(lines[0], &line)) << lines[0];
  EXPECT_EQ(line.severity, 'W');
  EXPECT_EQ(line.message, "file and screen");
  EXPECT_EQ(FindLines(path, "file only").size(), 1u);
  EXPECT_EQ(FindLines(path, "file and screen").size(), 1u);
  EXPECT_THAT(ReadFile(path), HasSubstr("captured stderr\n"));
}

// A child process installs a TaskLog, logs a line and crashes in `crash`;
// returns its log.
std::string CrashChildLog(const std::string& path, int expected_signal,
                          void (*crash)()) {
  const pid_t pid = ::fork();
  CHECK_GE(pid, 0);
  if (pid == 0) {
    TaskLogOptions options;  // capture_stdio and install_failure_handler on
    if (!TaskLog::Install(path, options).ok()) ::_exit(3);
    LOG(INFO) << "about to crash";
    crash();
    ::_exit(4);
  }
  const int status = WaitWithTimeout(pid, 60000);
  EXPECT_TRUE(status != -1 && WIFSIGNALED(status) &&
              WTERMSIG(status) == expected_signal)
      << "wait status " << status;
  return ReadFile(path);
}

void Segfault() {
  // Not a null pointer: UBSan would report that before the fault happens.
  volatile char* unmapped = reinterpret_cast<volatile char*>(uintptr_t{16});
  *unmapped = 1;
}
void Abort() { std::abort(); }
void CheckFailure() {
  volatile int one = 1;
  CHECK_EQ(one, 2) << "impossible";
}

TEST_F(TaskLogTest, SegfaultLeavesAStackTraceInTheLog) {
  const std::string text =
      CrashChildLog(dir_ + "/TaskLog.segv", SIGSEGV, &Segfault);
  EXPECT_THAT(text, HasSubstr("] about to crash\n"));
  EXPECT_THAT(text, HasSubstr("*** SIGSEGV (@0x10) received by PID"));
  EXPECT_THAT(text, HasSubstr("    @ "));
}

TEST_F(TaskLogTest, AbortLeavesAStackTraceInTheLog) {
  const std::string text =
      CrashChildLog(dir_ + "/TaskLog.abrt", SIGABRT, &Abort);
  EXPECT_THAT(text, HasSubstr("] about to crash\n"));
  EXPECT_THAT(text, HasSubstr("*** SIGABRT (@0x"));
  EXPECT_THAT(text, HasSubstr("    @ "));
}

TEST_F(TaskLogTest, CheckFailureLeavesTheMessageAndAStackTraceInTheLog) {
  const std::string path = dir_ + "/TaskLog.check";
  const std::string text = CrashChildLog(path, SIGABRT, &CheckFailure);
  bool found_fatal = false;
  for (const std::string& raw : Lines(text)) {
    Line line;
    if (ParseLine(raw, &line) && line.severity == 'F') {
      EXPECT_THAT(line.message, HasSubstr("Check failed: one == 2"));
      found_fatal = true;
    }
  }
  EXPECT_TRUE(found_fatal) << text;
  EXPECT_THAT(text, HasSubstr("*** Check failure stack trace: ***"));
  EXPECT_THAT(text, HasSubstr("    @ "));
}

// The log's file system fills up: the task goes on, status() keeps the first
// error, the screen gets exactly one report.
TEST_F(TaskLogTest, FullDiskIsReportedOnceAndDoesNotStopTheTask) {
  const std::string dir = dir_;
  const ScreenedOutcome result = RunWithScreenPipe([&dir] {
    Checker check;
    // A private mount namespace with a 64 KiB tmpfs: needs CAP_SYS_ADMIN.
    if (::unshare(CLONE_NEWNS) != 0 ||
        ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tasklog-test", dir.c_str(), "tmpfs", 0, "size=64k") != 0) {
      return std::string("SKIP: ") + std::strerror(errno);
    }
    const std::string path = dir + "/TaskLog.full";
    TaskLogOptions options = QuietOptions();
    absl::StatusOr<TaskLog*> log = TaskLog::Install(path, options);
    if (!log.ok()) return log.status().ToString();
    const std::string filler(500, 'x');
    int lines = 0;
    while ((*log)->status().ok() && lines < 100000) {
      LOG(INFO) << "line " << lines++ << " " << filler;
    }
    for (int i = 0; i < 50; ++i)
      LOG(INFO) << "after the disk is full " << filler;
    const absl::Status status = (*log)->status();
    check.Check(status.code() == absl::StatusCode::kResourceExhausted,
                "status: " + status.ToString());
    check.Check(absl::StrContains(status.message(), path) &&
                    absl::StrContains(status.message(), "ENOSPC"),
                "message: " + status.ToString());
    check.Check((*log)->dropped_lines() >= 51,
                absl::StrCat("dropped ", (*log)->dropped_lines()));
    // Every line that made it is whole: a torn last write is followed by a
    // newline once space is back.
    const absl::StatusOr<int64_t> size = (*log)->size();
    check.Check(size.ok() && *size > 32 * 1024, "size");
    check.Check(::truncate(path.c_str(), 0) == 0, "truncate");
    LOG(INFO) << "space again";
    check.Check(FindLines(path, "space again").size() == 1,
                "after truncate: " + ReadFile(path).substr(0, 300));
    return check.failures();
  });
  if (absl::StartsWith(result.outcome.report, "SKIP: ")) {
    GTEST_SKIP() << "no private tmpfs: " << result.outcome.report;
  }
  ASSERT_THAT(result.outcome.child, IsOk());
  EXPECT_EQ(result.outcome.report, "");
  const std::vector<std::string> reports = Lines(result.screen);
  ASSERT_EQ(reports.size(), 1u) << result.screen;
  EXPECT_THAT(reports[0], HasSubstr("write " + dir + "/TaskLog.full"));
  EXPECT_THAT(reports[0], HasSubstr("[ENOSPC]"));
}

// The log's directory disappears: the task keeps logging into its open file;
// a forked child cannot create its own file, says so once, and keeps
// writing into its parent's.
TEST_F(TaskLogTest, RemovedDirectoryDoesNotStopTheTaskOrItsChildren) {
  const std::string dir = dir_ + "/logs";
  ASSERT_EQ(::mkdir(dir.c_str(), 0700), 0);
  const std::string path = dir + "/TaskLog.rm";
  const ScreenedOutcome result = RunWithScreenPipe([&] {
    Checker check;
    absl::StatusOr<TaskLog*> log = TaskLog::Install(path, QuietOptions());
    if (!log.ok()) return log.status().ToString();
    LOG(INFO) << "before removal";
    check.Check(::unlink(path.c_str()) == 0 && ::rmdir(dir.c_str()) == 0, "rm");
    LOG(INFO) << "after removal";
    check.Check((*log)->status().ok(), "parent status");
    const int64_t size_before = *(*log)->size();
    const pid_t pid = ::fork();
    if (pid == 0) {
      LOG(INFO) << "orphan child line";
      const absl::Status status = TaskLog::Current()->status();
      const bool ok =
          status.code() == absl::StatusCode::kNotFound &&
          absl::StrContains(status.message(),
                            TaskLog::ChildLogPath(path, ::getpid())) &&
          TaskLog::Current()->path() == path;
      ::_exit(ok ? 0 : 1);
    }
    check.Check(ExitedWith(WaitWithTimeout(pid, 30000), 0), "child status");
    // The child's line went into this (now nameless) file.
    check.Check(*(*log)->size() > size_before,
                "child wrote to the parent file");
    check.Check((*log)->status().ok(), "parent status after child");
    return check.failures();
  });
  ASSERT_THAT(result.outcome.child, IsOk());
  EXPECT_EQ(result.outcome.report, "");
  const std::vector<std::string> reports = Lines(result.screen);
  ASSERT_EQ(reports.size(), 1u) << result.screen;
  EXPECT_THAT(reports[0], HasSubstr("open " + path + ":pid-"));
  EXPECT_THAT(reports[0], HasSubstr("[ENOENT]"));
}

}  // namespace
}  // namespace taskfork::tasklog
