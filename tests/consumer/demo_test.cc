#include "demo_lib.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <string>

#include "gtest/gtest.h"
#include "serialize/serialize.h"

namespace consumer {
namespace {

TEST(ConsumerTest, SerializeRoundTrip) {
  const Hero hero{"tony stark", {1, 2, 3}};
  absl::StatusOr<Hero> back =
      taskfork::serialize::Decode<Hero>(taskfork::serialize::Encode(hero));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->name, "tony stark");
  EXPECT_EQ(back->scores, (std::vector<int64_t>{1, 2, 3}));
  // Bytes of another type are refused, not misread.
  EXPECT_EQ(taskfork::serialize::Decode<int>(taskfork::serialize::Encode(hero))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ConsumerTest, PcallResultsInArgumentOrder) {
  absl::StatusOr<std::vector<int64_t>> squares = SquaresInChildren({3, 1, 2});
  ASSERT_TRUE(squares.ok()) << squares.status();
  EXPECT_EQ(*squares, (std::vector<int64_t>{9, 1, 4}));
}

TEST(ConsumerTest, QueueCarriesEveryChildsMessages) {
  // Scores of producer id, message n: {id, n, 1}.
  // Sum over id < 3, n < 20: 20 * (0+1+2) + 3 * (0+...+19) + 60 = 690.
  absl::StatusOr<int64_t> sum = SumThroughQueue(3, 20);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 690);
}

TEST(ConsumerTest, ReportClientInAForkedChild) {
  std::string dir = std::string(getenv("TEST_TMPDIR")) + "/report.XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  absl::StatusOr<ReportSummary> report = ReportFromChild(dir);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->results_json, dir + "/results.json");
  struct stat st;
  EXPECT_EQ(::stat(report->results_json.c_str(), &st), 0);
  EXPECT_EQ(report->sections, 1);
  EXPECT_EQ(report->section_result, "RESULT_FAILED");
  EXPECT_EQ(report->task_result, "RESULT_FAILED");
}

}  // namespace
}  // namespace consumer
