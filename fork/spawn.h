// Spawn: fork + exec of a command as a Process (fork/process.h).
//
//   SpawnOptions options;
//   options.argv = {"/bin/sh", "-c", "exit 3"};
//   TASKFORK_ASSIGN_OR_RETURN(Process p, Spawn(std::move(options)));
//   TASKFORK_ASSIGN_OR_RETURN(ExitStatus status, p.Join());  // exit_code 3
//
// The child is set up exactly as a Process::Start() child is (at-fork
// handlers, process group, signals, stdin, environment, name: see
// ProcessOptions), then chdir()s to `working_directory` and execve()s
// argv[0] with the child's environment. Between fork and exec the child only
// makes async-signal-safe calls; the argv array and every text of an error
// message are prepared in the parent.
//
// A chdir or execve failure reaches the parent through the Process's
// O_CLOEXEC setup pipe (a successful exec closes it): the child exits with
// kExecFailedExitCode (127, as a shell for a command it cannot run), Join()
// returns the errno's status naming the path, e.g.
//   kNotFound          "pid 12: execve /no/such: No such file or directory [ENOENT]"
//   kPermissionDenied  "pid 12: execve /etc/passwd: Permission denied [EACCES]"
//   kNotFound          "pid 12: chdir /no/dir: No such file or directory [ENOENT]"
// and exit_status() has exit_code 127. A program that runs and exits with
// 127 itself is not an error: Join() returns its ExitStatus.
#ifndef TASKFORK_FORK_SPAWN_H_
#define TASKFORK_FORK_SPAWN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fork/process.h"

namespace taskfork {

// What to run and how. A plain struct.
struct SpawnOptions {
  // The command line; argv[0] is the program's path, given to execve as is:
  // no PATH lookup, and a relative path is resolved in `working_directory`
  // (after the chdir). Non-empty; no NUL in any argument.
  std::vector<std::string> argv;
  // The child chdir()s here before the exec. Empty: the parent's working
  // directory. No NUL.
  std::string working_directory;
  // The child's setup (process group, stdin, env, name, signals, what the
  // handle's destructor does): as for Process::Start().
  ProcessOptions process;
};

// Forks a child that execs `options.argv`. Errors: kInvalidArgument for an
// empty argv, a NUL in an argument or in the working directory, or bad
// ProcessOptions; Process::Start()'s errors for fork/pipe/pidfd failures.
// chdir/execve failures are reported by the Process's Join() (see above).
// Thread-safe with respect to other Spawns, Starts and forks.
absl::StatusOr<Process> Spawn(SpawnOptions options);

}  // namespace taskfork

#endif  // TASKFORK_FORK_SPAWN_H_
