// Test helpers for //reporter tests (testonly).
//
//   std::string dir = MakeTempDir();       // $TMPDIR/reporter_test_XXXXXX
//   const Section* s = FindSection(report, "t1", "name");
#ifndef TASKFORK_REPORTER_TEST_UTIL_H_
#define TASKFORK_REPORTER_TEST_UTIL_H_

#include <sys/types.h>

#include <functional>
#include <string>

#include "reporter/client.h"
#include "reporter/report.pb.h"

namespace taskfork::reporter {

// A fresh directory under $TMPDIR, or /tmp if TMPDIR is unset or longer
// than 40 bytes (short, so socket paths in it fit in sun_path). It and all
// it holds are removed when the process that made it exits normally
// (exit() or return from main; not _exit, a crash or a CHECK failure).
// Not thread-safe.
std::string MakeTempDir();

// The contents of the file at `path` ("" if it cannot be read).
std::string ReadFile(const std::string& path);

// A TaskInfo of just `id`, for RegisterTask.
TaskInfo TaskInfoOf(const std::string& id);

// Client options for task `task` at `address` (a socket path or
// tcp:HOST:PORT; `secret_file` for TCP), with a 20 s io_timeout.
ReportClientOptions ClientOptions(const std::string& address,
                                  const std::string& task,
                                  const std::string& secret_file = "");

// Waits for `pid` (a child) and returns its exit code / 128 + signal.
int WaitChild(pid_t pid);

// The task with `task_id`, or nullptr.
const TaskReport* FindTask(const JobReport& report, const std::string& task_id);
// The first section named `name` anywhere in task `task_id`, or nullptr.
const Section* FindSection(const JobReport& report, const std::string& task_id,
                           const std::string& name);
// Number of sections (any depth) in `task`.
int CountSections(const TaskReport& task);

// A job as a GoogleTest binary of `cases` tests reports it: task "gtest" with
// one Testcase section per test (every 100th failed, each with a step), next
// to tasks "setup" (passed) and "teardown" (errored), two at a time.
JobReport ManyCasesReport(int cases);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_TEST_UTIL_H_
