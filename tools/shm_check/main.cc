// shm_check: checks that /dev/shm is usable for taskfork's shared memory.
//
//   shm_check [--path=/dev/shm] [--min_free_mb=1] [--quiet]
//
// Prints what it found and, on failure, what is wrong and the command that
// fixes it. Exit status: 0 usable, 1 not usable, 2 bad arguments.
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "ipc/shm_check.h"

ABSL_FLAG(std::string, path, "/dev/shm", "directory to check");
ABSL_FLAG(uint64_t, min_free_mb, 1, "fail if fewer MiB than this are free");
ABSL_FLAG(bool, quiet, false, "print only errors");

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Checks that a directory (default /dev/shm) exists, has mode 1777, is "
      "writable and has free space.\nUsage: shm_check [--path=DIR] "
      "[--min_free_mb=N] [--quiet]");
  const std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() > 1) {
    std::fprintf(stderr, "shm_check: unexpected argument '%s'\n", rest[1]);
    return 2;
  }
  taskfork::ipc::ShmCheckOptions options;
  options.path = absl::GetFlag(FLAGS_path);
  options.min_free_bytes = absl::GetFlag(FLAGS_min_free_mb) << 20;
  taskfork::ipc::ShmReport report;
  const absl::Status status = taskfork::ipc::CheckSharedMemory(options, &report);
  if (!absl::GetFlag(FLAGS_quiet)) {
    std::fputs(taskfork::ipc::FormatShmReport(report).c_str(), stdout);
  }
  if (!status.ok()) {
    std::fprintf(stderr, "shm_check: FAILED: %s\n", status.ToString().c_str());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_quiet)) std::puts("shm_check: OK");
  return 0;
}
