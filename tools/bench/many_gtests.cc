// Thousands of trivially cheap GoogleTest tests in one binary: the suite in
// which the cost of running a test (a process per test under ctest's
// gtest_discover_tests, a report section per test under taskfork) is all
// there is. Run by tools/bench/gtest_ctest.py, for //tools/bench:compare.
//
//   many_gtests                          # 3000 tests, Many/TrivialTest.Passes/0..2999
//   MANY_GTESTS_TESTS=300 many_gtests    # 300 of them (compare --quick)
//   many_gtests --gtest_filter='Many/TrivialTest.Passes/7'

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "gtest/gtest.h"

namespace {

constexpr long kDefaultTests = 3000;
constexpr long kMaxTests = 1000000;

// MANY_GTESTS_TESTS, or kDefaultTests when unset or empty. Anything but a
// number in 1..kMaxTests exits with status 2 naming the variable: GoogleTest
// evaluates this in InitGoogleTest, before any test runs.
int TestCount() {
  const char* text = std::getenv("MANY_GTESTS_TESTS");
  if (text == nullptr || *text == '\0') return kDefaultTests;
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(text, &end, 10);
  if (errno != 0 || *end != '\0' || n < 1 || n > kMaxTests) {
    std::fprintf(stderr,
                 "many_gtests: MANY_GTESTS_TESTS=\"%s\" is not a number of "
                 "tests in 1..%ld\n",
                 text, kMaxTests);
    std::exit(2);
  }
  return static_cast<int>(n);
}

class TrivialTest : public testing::TestWithParam<int> {};

TEST_P(TrivialTest, Passes) { EXPECT_GE(GetParam(), 0); }

INSTANTIATE_TEST_SUITE_P(Many, TrivialTest, testing::Range(0, TestCount()));

}  // namespace
