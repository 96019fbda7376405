// A GoogleTest binary with a flaky test, for the runner's --retries tests.
// Every test run appends its name to $FLAKY_DIR/runs; Flaky.FailsOnce fails
// unless $FLAKY_DIR/failed exists, and creates it when it fails.
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace {

std::string StateDir() {
  const char* dir = std::getenv("FLAKY_DIR");
  return dir != nullptr ? dir : ".";
}

void Ran(const std::string& name) {
  std::ofstream(StateDir() + "/runs", std::ios::app) << name << "\n";
}

TEST(Flaky, Passes) { Ran("Flaky.Passes"); }

TEST(Flaky, FailsOnce) {
  Ran("Flaky.FailsOnce");
  const std::string marker = StateDir() + "/failed";
  if (std::ifstream(marker).good()) return;
  std::ofstream(marker) << "1\n";
  FAIL() << "first run fails";
}

TEST(Flaky, AlsoPasses) { Ran("Flaky.AlsoPasses"); }

}  // namespace
