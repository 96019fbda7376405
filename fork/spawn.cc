#include "fork/spawn.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "fork/process.h"

namespace taskfork {

absl::StatusOr<Process> Spawn(SpawnOptions options) {
  if (options.argv.empty()) {
    return absl::InvalidArgumentError(
        "SpawnOptions.argv is empty: argv[0] must name the program");
  }
  for (size_t i = 0; i < options.argv.size(); ++i) {
    if (options.argv[i].find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("SpawnOptions.argv[", i, "] contains NUL"));
    }
  }
  if (options.argv[0].empty()) {
    return absl::InvalidArgumentError(
        "SpawnOptions.argv[0] is empty: it must name the program");
  }
  if (options.working_directory.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        "SpawnOptions.working_directory contains NUL");
  }
  // Built here: the child between fork and exec does not allocate.
  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 1);
  for (std::string& arg : options.argv) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const fork_internal::ExecTarget exec{
      argv.data(), options.working_directory.empty()
                       ? nullptr
                       : options.working_directory.c_str()};
  // Never called: the child execs (or reports why not) before the body.
  auto unused = [](std::string*) { return kExecFailedExitCode; };
  return Process::StartImpl(std::move(options.process),
                            /*sends_result=*/false, unused, &exec);
}

}  // namespace taskfork
