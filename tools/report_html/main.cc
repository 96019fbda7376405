// report_html RUN [OUTPUT]: writes report.html for a finished run from its
// results.json; RUN is a runinfo directory (OUTPUT defaults to
// RUN/report.html) or a run's .tar.gz archive (OUTPUT defaults to the archive
// path with .report.html for .tar.gz). Prints the path written; exit 0, 1 on
// an error (printed), 2 on bad usage.
#include <cstdio>
#include <string>

#include "tools/report_html/regenerate.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s RUNINFO_DIR|RUN.tar.gz [OUTPUT]\n", argv[0]);
    return 2;
  }
  const auto written = taskfork::report_html::RegenerateReportHtml(
      argv[1], argc == 3 ? argv[2] : "");
  if (!written.ok()) {
    std::fprintf(stderr, "report_html: %s\n", written.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", written->c_str());
  return 0;
}
