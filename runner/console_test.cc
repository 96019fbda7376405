#include "runner/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "absl/time/time.h"
#include "base/fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace taskfork::runner {
namespace {

using ::taskfork::reporter::Result;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(FormatShortDuration, Ranges) {
  EXPECT_EQ(FormatShortDuration(absl::Milliseconds(250)), "250ms");
  EXPECT_EQ(FormatShortDuration(absl::Milliseconds(3240)), "3.2s");
  EXPECT_EQ(FormatShortDuration(absl::Milliseconds(62500)), "1m02.5s");
  EXPECT_EQ(FormatShortDuration(absl::Seconds(3725)), "1h02m05s");
}

TEST(SuccessRate, CountsPassedPassxSkipped) {
  std::vector<TaskSummaryRow> rows(4);
  rows[0].result = Result::kPassed;
  rows[1].result = Result::kPassx;
  rows[2].result = Result::kSkipped;
  rows[3].result = Result::kBlocked;
  EXPECT_DOUBLE_EQ(SuccessRate(rows), 75.0);
  EXPECT_DOUBLE_EQ(SuccessRate({}), 0.0);
}

TEST(FormatSummary, ListsTasksCountsRateAndFiles) {
  JobSummary summary;
  summary.job_name = "demo";
  summary.uid = "demo.20261126-000000.000000";
  summary.start = absl::FromUnixSeconds(1000);
  summary.stop = absl::FromUnixSeconds(1003);
  summary.tasks = {
      {"hello", "", Result::kPassed, absl::Milliseconds(120), "", "/r/TaskLog.hello"},
      {"slow", "", Result::kAborted, absl::Seconds(2), "timed out after 2s",
       "/r/TaskLog.slow"},
  };
  summary.runinfo_dir = "/r";
  summary.report_files = {"/r/results.json"};
  summary.warnings = {"reporter died"};
  const std::string text = FormatSummary(summary);
  EXPECT_THAT(text, HasSubstr("taskfork report: job demo\n"));
  EXPECT_THAT(text, HasSubstr("  hello  PASSED       120ms  /r/TaskLog.hello\n"));
  EXPECT_THAT(text, HasSubstr("  slow   ABORTED       2.0s  /r/TaskLog.slow\n"
                              "         reason: timed out after 2s\n"));
  EXPECT_THAT(text, HasSubstr("  Passed:  1\n"));
  EXPECT_THAT(text, HasSubstr("  Passx:   0\n"));
  EXPECT_THAT(text, HasSubstr("  Aborted: 1\n"));
  EXPECT_THAT(text, HasSubstr("  TOTAL:   2\n"));
  EXPECT_THAT(text, HasSubstr("Success Rate: 50.00 %\n"));
  EXPECT_THAT(text, HasSubstr("Warnings\n  reporter died\n"));
  EXPECT_THAT(text, HasSubstr("Runinfo: /r\nReport:  /r/results.json\n"));
  EXPECT_THAT(text, HasSubstr("Elapsed:     3.0s\n"));
}

std::string Drain(int fd) {
  std::string out;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  return out;
}

TEST(Progress, PlainOutputIsOneLinePerFinishedTask) {
  auto pipe = OwnedFd::Pipe(O_NONBLOCK);
  ASSERT_TRUE(pipe.ok());
  Progress progress(pipe->write.get(), /*tty=*/false, 2);
  const absl::Time t0 = absl::FromUnixSeconds(0);
  progress.Started("a", 100, t0);
  progress.Refresh(t0 + absl::Seconds(1));
  progress.Finished("a", Result::kFailed, absl::Seconds(1), "assert x", t0);
  progress.Finished("b", Result::kPassed, absl::Milliseconds(5), "ignored", t0);
  pipe->write.Reset();
  EXPECT_EQ(Drain(pipe->read.get()),
            "[1/2] FAILED   a (1.0s): assert x\n"
            "[2/2] PASSED   b (5ms)\n");
}

TEST(Progress, ARetryIsALineThatDoesNotCountAsDone) {
  auto pipe = OwnedFd::Pipe(O_NONBLOCK);
  ASSERT_TRUE(pipe.ok());
  Progress progress(pipe->write.get(), /*tty=*/false, 1);
  const absl::Time t0 = absl::FromUnixSeconds(0);
  progress.Started("a", 100, t0);
  progress.Retrying("a", Result::kFailed, absl::Seconds(1), "exit code 1", 2, 3,
                    t0);
  progress.Started("a", 101, t0);
  progress.Finished("a", Result::kPassed, absl::Seconds(2), "", t0);
  pipe->write.Reset();
  EXPECT_EQ(Drain(pipe->read.get()),
            "[0/1] FAILED   a (1.0s): exit code 1; retrying (attempt 2 of 3)\n"
            "[1/1] PASSED   a (2.0s)\n");
}

TEST(Progress, TerminalRedrawsAStatusLine) {
  auto pipe = OwnedFd::Pipe(O_NONBLOCK);
  ASSERT_TRUE(pipe.ok());
  Progress progress(pipe->write.get(), /*tty=*/true, 3);
  const absl::Time t0 = absl::FromUnixSeconds(0);
  progress.Started("a", 100, t0);
  progress.Started("b", 101, t0 + absl::Seconds(1));
  progress.Refresh(t0 + absl::Seconds(2));
  progress.Finished("a", Result::kPassed, absl::Seconds(2), "", t0 + absl::Seconds(2));
  progress.Clear();
  pipe->write.Reset();
  const std::string out = Drain(pipe->read.get());
  EXPECT_THAT(out, HasSubstr("\r\033[K[0/3 done] running: a 2.0s, b 1.0s"));
  EXPECT_THAT(out, HasSubstr("\r\033[K[1/3] PASSED   a (2.0s)\n"));
  EXPECT_THAT(out, HasSubstr("[1/3 done] running: b 1.0s"));
  EXPECT_THAT(out.substr(out.size() - 4), "\r\033[K");
  EXPECT_THAT(out, Not(HasSubstr("running: a 2.0s, b 1.0s\n")));
}

}  // namespace
}  // namespace taskfork::runner
