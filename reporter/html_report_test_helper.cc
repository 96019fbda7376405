// html_report_test_helper DIR N: writes the report of ManyCasesReport(N)
// (reporter/test_util.h) into DIR with WriteReport; exit 0, or 1 with the
// error on stderr.
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "reporter/test_util.h"
#include "reporter/writers.h"

int main(int argc, char** argv) {
  int cases;
  if (argc != 3 || !absl::SimpleAtoi(argv[2], &cases) || cases < 0) {
    std::fprintf(stderr, "usage: %s DIR CASES\n", argv[0]);
    return 2;
  }
  const auto paths = taskfork::reporter::WriteReport(
      taskfork::reporter::ManyCasesReport(cases), argv[1]);
  if (!paths.ok()) {
    std::fprintf(stderr, "%s\n", paths.status().ToString().c_str());
    return 1;
  }
  return 0;
}
