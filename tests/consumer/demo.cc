// bazel run //:demo -- prints what each taskfork target did; exits 1 on error.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "demo_lib.h"

int main() {
  auto squares = consumer::SquaresInChildren({1, 2, 3, 4});
  if (!squares.ok()) {
    std::fprintf(stderr, "Pcall: %s\n", squares.status().ToString().c_str());
    return 1;
  }
  std::printf("fork:pcall     squares from 4 children:");
  for (int64_t s : *squares) std::printf(" %lld", static_cast<long long>(s));
  std::printf("\n");

  auto sum = consumer::SumThroughQueue(2, 100);
  if (!sum.ok()) {
    std::fprintf(stderr, "Queue: %s\n", sum.status().ToString().c_str());
    return 1;
  }
  std::printf("ipc:queue      200 serialized Heros from 2 children, score sum %lld\n",
              static_cast<long long>(*sum));

  char dir[] = "/tmp/taskfork_consumer.XXXXXX";
  if (::mkdtemp(dir) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  auto report = consumer::ReportFromChild(dir);
  std::filesystem::remove_all(dir);
  if (!report.ok()) {
    std::fprintf(stderr, "reporter: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::printf("reporter       task 'child': %s, %d section (%s), in %s\n",
              report->task_result.c_str(), report->sections,
              report->section_result.c_str(),
              std::filesystem::path(report->results_json).filename().c_str());
  return 0;
}
