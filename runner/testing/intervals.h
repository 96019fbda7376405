// For tests of parallel limits: how many of the intervals [start, end) that
// tasks marked (e.g. start and end times each task wrote to a file) overlap
// at once, at most.
//
//   EXPECT_LE(taskfork::testing::MostAtOnce({{10, 20}, {15, 30}, {20, 25}}), 2);
#ifndef TASKFORK_RUNNER_TESTING_INTERVALS_H_
#define TASKFORK_RUNNER_TESTING_INTERVALS_H_

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace taskfork::testing {

inline int MostAtOnce(const std::vector<std::pair<int64_t, int64_t>>& intervals) {
  std::vector<std::pair<int64_t, int>> events;  // (time, +1 start / -1 end)
  for (const auto& [start, end] : intervals) {
    events.emplace_back(start, +1);
    events.emplace_back(end, -1);
  }
  std::sort(events.begin(), events.end());  // an end before a start at a tie
  int running = 0;
  int most = 0;
  for (const auto& event : events) {
    running += event.second;
    most = std::max(most, running);
  }
  return most;
}

}  // namespace taskfork::testing

#endif  // TASKFORK_RUNNER_TESTING_INTERVALS_H_
