// A GoogleTest listener that reports every test live as a reporter section.
//
//   # BUILD: deps = ["@taskfork//reporter:gtest_listener", "@com_google_googletest//:gtest_main"]
//   $ TASKFORK_REPORTER_SOCKET=<runinfo>/reporter.sock TASKFORK_REPORTER_TASK_ID=t1 ./my_test
//   # each test -> a "Testcase" section "Suite.Name" of task t1
//
// Linking the target installs the listener (a static initializer appends it
// to GoogleTest's listeners; the library is alwayslink). At program start it
// reads the environment:
// - TASKFORK_REPORTER_SOCKET: the server's address: its socket path,
//   "unix:PATH" or "tcp:HOST:PORT". Unset or empty: the listener does
//   nothing at all.
// - TASKFORK_REPORTER_SECRET_FILE: the run's secret file (reporter.secret),
//   needed over TCP.
// - TASKFORK_REPORTER_TASK_ID: the task the tests belong to (default: the
//   program's name).
// - TASKFORK_REPORTER_PARENT_SECTION: a section id (decimal) the tests nest
//   under, e.g. the command task's section (default: top level).
// Results: a failed test is Failed with every failure message
// ("file:line: message", one per line) as the reason; a skipped test is
// Skipped with the skip message; otherwise Passed. If the server cannot be
// reached, one warning goes to stderr and the tests run unreported.
#ifndef TASKFORK_REPORTER_GTEST_LISTENER_H_
#define TASKFORK_REPORTER_GTEST_LISTENER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "gtest/gtest.h"
#include "reporter/client.h"

namespace taskfork::reporter {

inline constexpr char kReporterSocketEnv[] = "TASKFORK_REPORTER_SOCKET";
inline constexpr char kReporterSecretFileEnv[] =
    "TASKFORK_REPORTER_SECRET_FILE";
inline constexpr char kReporterTaskIdEnv[] = "TASKFORK_REPORTER_TASK_ID";
inline constexpr char kReporterParentSectionEnv[] =
    "TASKFORK_REPORTER_PARENT_SECTION";

// The listener the static initializer installs; usable directly too
// (append it to ::testing::UnitTest::GetInstance()->listeners(), which takes
// ownership). Connects in OnTestProgramStart. Thread-compatible, as
// GoogleTest calls listeners from the main thread.
class ReporterGtestListener : public ::testing::EmptyTestEventListener {
 public:
  ReporterGtestListener() = default;

  void OnTestProgramStart(const ::testing::UnitTest& unit_test) override;
  void OnTestStart(const ::testing::TestInfo& test_info) override;
  void OnTestPartResult(const ::testing::TestPartResult& result) override;
  void OnTestEnd(const ::testing::TestInfo& test_info) override;
  void OnTestProgramEnd(const ::testing::UnitTest& unit_test) override;

  // Whether a server connection is in use.
  bool active() const { return client_.has_value(); }

 private:
  std::optional<ReportClient> client_;
  uint64_t parent_id_ = 0;
  uint64_t section_id_ = 0;
  bool in_test_ = false;
  std::string failures_;
  std::string skip_message_;
};

// Appends a ReporterGtestListener to GoogleTest's listeners once per process
// (later calls do nothing); returns true on the call that did. The static
// initializer of this library calls it.
bool InstallReporterGtestListener();

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_GTEST_LISTENER_H_
