// The runner: runs the job a spec describes (pyATS's `pyats run job`).
//
//   tools/bazel run //runner -- runner/examples/demo.textpb
//   runner [--runinfo_dir=DIR] [--archive_dir=DIR] [--max_parallel=N]
//          [--task=REGEX] [--retries=N] [--rerun_failed] [--interactive]
//          [--reporter_listen=HOST:PORT] [--no_progress]
//          [--executor=local|slurm] [--slurm_nodes=N] [--slurm_args=ARGS]
//          [--slurm_listen=ADDR] JOB_SPEC
//
// Exit codes: 0 every task succeeded; 1 some did not; 2 bad arguments or job
// spec; 3 infrastructure failure (runinfo, /dev/shm, reporter, report files,
// the --archive_dir archive); 4 anything else. Link your own TASKFORK_TASK
// functions with //runner:runner_main to make a runner for them (see
// runner/README.md).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "glog/logging.h"
#include "runner/job_spec.h"
#include "runner/rerun.h"
#include "runner/runtime.h"
#include "reporter/address.h"
#include "runner/slurm_worker.h"
#include "runner/task_function.h"
#include "runner/task_selection.h"

namespace taskfork::runner {
namespace {

constexpr char kUsage[] =
    "usage: runner [options] JOB_SPEC\n"
    "\n"
    "Runs the tasks of JOB_SPEC (a runner/job.proto text file), each in its\n"
    "own forked process, and writes logs and reports to a runinfo directory.\n"
    "\n"
    "options:\n"
    "  --runinfo_dir=DIR   parent of the run directories (default: runs/ in\n"
    "                      the directory bazel run was called from)\n"
    "  --archive_dir=DIR   after the run, write DIR/<job>.<time>.tar.gz of\n"
    "                      the run directory (DIR is created if missing;\n"
    "                      if it cannot be written: exit code 3)\n"
    "  --max_parallel=N    tasks at once (overrides the spec; default: the\n"
    "                      spec's, else the number of CPUs)\n"
    "  --task=REGEX        run only the tasks whose id REGEX (ECMAScript)\n"
    "                      matches as a whole; the others are reported as\n"
    "                      skipped (an invalid REGEX or one that matches no\n"
    "                      task: exit code 2)\n"
    "  --retries=N         run a task that failed, errored or timed out\n"
    "                      again, right away, up to N more times; a\n"
    "                      GoogleTest task runs only the tests that did not\n"
    "                      pass; what passed on a retry is marked flaky\n"
    "  --rerun_failed      run only what did not succeed in the last finished\n"
    "                      run of this job under the runinfo directory (its\n"
    "                      failed, errored, aborted and blocked tasks; of a\n"
    "                      GoogleTest task that only had failing tests,\n"
    "                      those tests); the others are reported as skipped\n"
    "                      (no such run, or an unreadable one: exit code 2;\n"
    "                      nothing failed: exit code 0, nothing runs)\n"
    "  --interactive       one task at a time with the terminal as stdin, so\n"
    "                      a debugger or prompt works inside a task\n"
    "  --reporter_listen=HOST:PORT\n"
    "                      the reporter also listens on TCP there (port 0:\n"
    "                      any; 0.0.0.0:0 for every interface) and tasks\n"
    "                      report over TCP with the run's secret from\n"
    "                      <run>/reporter.secret (mode 0600); not encrypted\n"
    "  --no_progress       one line per finished task even on a terminal\n"
    "  --executor=KIND     where tasks run: local (forked here, the default)\n"
    "                      or slurm (one pilot worker per node started by\n"
    "                      srun, which forks the tasks there; the runinfo\n"
    "                      directory must be on storage every node sees)\n"
    "  --slurm_nodes=N     with --executor=slurm: nodes (workers), default 1\n"
    "  --slurm_args=ARGS   with --executor=slurm: extra srun arguments,\n"
    "                      space-separated (e.g. \"--partition=debug\n"
    "                      --time=30\")\n"
    "  --slurm_listen=ADDR with --executor=slurm: the IPv4 address of this\n"
    "                      machine the workers connect to, and the\n"
    "                      reporter's TCP listener unless --reporter_listen\n"
    "                      says otherwise (default 127.0.0.1: a single-node\n"
    "                      cluster)\n"
    "  --help              this text\n"
    "\n"
    "exit codes: 0 all tasks succeeded, 1 some did not, 2 bad arguments or\n"
    "job spec, 3 infrastructure failure (runinfo, /dev/shm, reporter, report\n"
    "files, archive), 4 anything else\n";

constexpr int kMaxRetries = 100;

struct Arguments {
  std::string spec;
  std::string runinfo_dir;
  std::string archive_dir;
  int max_parallel = 0;
  std::optional<std::string> task_pattern;  // --task
  int retries = 0;
  std::string reporter_listen;
  bool rerun_failed = false;
  bool interactive = false;
  bool progress = true;
  ExecutorKind executor = ExecutorKind::kLocal;
  int slurm_nodes = 1;
  std::vector<std::string> slurm_args;
  std::string slurm_listen = "127.0.0.1";
};

int BadArguments(const std::string& message) {
  std::fprintf(stderr, "runner: %s\n\n%s", message.c_str(), kUsage);
  return kExitBadInput;
}

// The directory the user ran `bazel run` (or the binary) from.
std::string UserDirectory() {
  const char* bazel = std::getenv("BUILD_WORKING_DIRECTORY");
  if (bazel != nullptr && *bazel != '\0') return bazel;
  char cwd[4096];
  return ::getcwd(cwd, sizeof(cwd)) != nullptr ? cwd : ".";
}

std::string FromUserDirectory(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return absl::StrCat(UserDirectory(), "/", path);
}

// Where this binary's runfiles are (for command tasks naming binaries of the
// repository), or "".
std::string RunfilesDirectory(const char* argv0) {
  if (const char* dir = std::getenv("RUNFILES_DIR"); dir != nullptr) {
    return absl::StrCat(dir, "/taskfork");
  }
  const std::string beside = absl::StrCat(argv0, ".runfiles/taskfork");
  if (::access(beside.c_str(), F_OK) == 0) return beside;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) != nullptr &&
      absl::StrContains(cwd, ".runfiles/")) {
    return cwd;  // bazel run starts us in <runfiles>/<workspace>
  }
  return "";
}

int Main(int argc, char** argv) {
  Arguments args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value_of = [&](absl::string_view name, std::string* out) {
      if (absl::StartsWith(arg, absl::StrCat(name, "="))) {
        *out = arg.substr(name.size() + 1);
        return true;
      }
      if (arg == name && i + 1 < argc) {
        *out = argv[++i];
        return true;
      }
      return false;
    };
    std::string value;
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return kExitAllSucceeded;
    } else if (arg == "--interactive") {
      args.interactive = true;
    } else if (arg == "--rerun_failed") {
      args.rerun_failed = true;
    } else if (arg == "--no_progress") {
      args.progress = false;
    } else if (value_of("--runinfo_dir", &value)) {
      args.runinfo_dir = value;
    } else if (value_of("--archive_dir", &value)) {
      if (value.empty()) return BadArguments("--archive_dir wants a directory");
      args.archive_dir = value;
    } else if (value_of("--max_parallel", &value)) {
      if (!absl::SimpleAtoi(value, &args.max_parallel) ||
          args.max_parallel < 1) {
        return BadArguments(absl::StrCat(
            "--max_parallel wants a positive number, got \"", value, "\""));
      }
    } else if (value_of("--task", &value)) {
      args.task_pattern = value;
    } else if (value_of("--retries", &value)) {
      if (!absl::SimpleAtoi(value, &args.retries) || args.retries < 0 ||
          args.retries > kMaxRetries) {
        return BadArguments(absl::StrCat("--retries wants a number from 0 to ",
                                         kMaxRetries, ", got \"", value, "\""));
      }
    } else if (value_of("--reporter_listen", &value)) {
      if (auto listen = reporter::ParseListenAddress(value); !listen.ok()) {
        return BadArguments(absl::StrCat(
            "--reporter_listen: ", listen.status().message()));
      }
      args.reporter_listen = value;
    } else if (value_of("--executor", &value)) {
      if (value == "local") {
        args.executor = ExecutorKind::kLocal;
      } else if (value == "slurm") {
        args.executor = ExecutorKind::kSlurm;
      } else {
        return BadArguments(absl::StrCat(
            "--executor wants local or slurm, got \"", value, "\""));
      }
    } else if (value_of("--slurm_nodes", &value)) {
      if (!absl::SimpleAtoi(value, &args.slurm_nodes) || args.slurm_nodes < 1) {
        return BadArguments(absl::StrCat(
            "--slurm_nodes wants a positive number, got \"", value, "\""));
      }
    } else if (value_of("--slurm_args", &value)) {
      args.slurm_args = absl::StrSplit(value, ' ', absl::SkipEmpty());
    } else if (value_of("--slurm_listen", &value)) {
      args.slurm_listen = value;
    } else if (absl::StartsWith(arg, "-")) {
      return BadArguments(absl::StrCat("unknown option ", arg));
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 1) {
    return BadArguments(positional.empty()
                            ? "no job spec given"
                            : "give exactly one job spec");
  }
  args.spec = FromUserDirectory(positional[0]);
  if (args.interactive && args.executor == ExecutorKind::kSlurm) {
    return BadArguments(
        "--interactive needs the local executor (a Slurm worker has no "
        "terminal)");
  }

  JobSpecContext context;
  context.known_functions = TaskRegistry::Global().Names();
  context.runfiles_dir = RunfilesDirectory(argv[0]);
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    context.path_env = path;
  }
  context.cpu_count = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
  absl::StatusOr<Job> job = LoadJobSpec(args.spec, context);
  if (!job.ok()) {
    std::fprintf(stderr, "runner: bad job spec:\n%s\n",
                 std::string(job.status().message()).c_str());
    return kExitBadInput;
  }
  if (args.task_pattern.has_value()) {
    // Checked before anything is set up: a usage error leaves no run behind.
    std::vector<std::string> ids;
    for (const JobTask& task : job->tasks) ids.push_back(task.id);
    const auto selected = SelectTaskIds(*args.task_pattern, ids);
    if (!selected.ok()) {
      return BadArguments(absl::StrCat("--task=", *args.task_pattern, ": ",
                                       selected.status().message()));
    }
  }

  const std::string runinfo_root = args.runinfo_dir.empty()
                                       ? absl::StrCat(UserDirectory(), "/runs")
                                       : FromUserDirectory(args.runinfo_dir);
  std::optional<RerunPlan> rerun;
  if (args.rerun_failed) {
    absl::StatusOr<RerunPlan> plan = PlanRerun(runinfo_root, job->name);
    if (!plan.ok()) {
      std::fprintf(stderr, "runner: --rerun_failed: %s\n",
                   std::string(plan.status().message()).c_str());
      return kExitBadInput;
    }
    bool runs_something = false;
    for (const JobTask& task : job->tasks) {
      auto it = plan->tasks.find(task.id);
      runs_something |= it == plan->tasks.end() || it->second.rerun;
    }
    if (!runs_something) {
      std::printf("runner: --rerun_failed: every task succeeded in run %s "
                  "(%s): nothing to run\n",
                  plan->previous_uid.c_str(), plan->previous_dir.c_str());
      return kExitAllSucceeded;
    }
    rerun = *std::move(plan);
  }

  RuntimeOptions options;
  options.job_name = job->name;
  options.runinfo_root = runinfo_root;
  if (!args.archive_dir.empty()) {
    options.archive_dir = FromUserDirectory(args.archive_dir);
  }
  options.argv.assign(argv, argv + argc);
  options.spec_file_name = args.spec.substr(args.spec.rfind('/') + 1);
  options.spec_text = job->spec_text;
  options.termination_grace = job->termination_grace;
  options.retries = args.retries;
  options.reporter_listen = args.reporter_listen;
  options.executor = args.executor;
  options.slurm.nodes = args.slurm_nodes;
  options.slurm.srun_args = args.slurm_args;
  options.slurm.listen_host = args.slurm_listen;
  options.console_fd = STDOUT_FILENO;
  // No status block redrawn under a task that talks to the terminal.
  options.console_is_tty =
      args.progress && !args.interactive && ::isatty(STDOUT_FILENO);
  if (args.interactive) options.task_stdin = StdinPolicy::kControllingTerminal;

  google::InitGoogleLogging(argv[0]);
  absl::StatusOr<std::unique_ptr<Runtime>> runtime =
      Runtime::Create(std::move(options));
  if (!runtime.ok()) {
    std::fprintf(stderr, "runner: cannot set up the job: %s\n",
                 runtime.status().ToString().c_str());
    return kExitInfrastructure;
  }
  for (const JobTask& spec : job->tasks) {
    TaskDefinition task;
    task.id = spec.id;
    task.description = spec.description;
    task.timeout = spec.timeout;
    if (spec.kind == JobTask::Kind::kFunction) {
      task.body = TaskRegistry::Global().Find(spec.function)->function;
      task.function_name = spec.function;
      task.args = spec.args;
    } else {
      task.argv = spec.argv;
      task.env = spec.env;
      task.working_directory = spec.working_directory;
      task.gtest = spec.gtest;
      task.shards = spec.shards;
    }
    if (rerun.has_value()) {
      auto it = rerun->tasks.find(task.id);
      if (it != rerun->tasks.end() && task.gtest) {
        task.gtest_filter = absl::StrJoin(it->second.failed_tests, ":");
      }
    }
    const absl::StatusOr<Task*> added = (*runtime)->AddTask(std::move(task));
    if (!added.ok()) {
      std::fprintf(stderr, "runner: %s\n",
                   added.status().ToString().c_str());
      return kExitBadInput;
    }
  }
  if (args.task_pattern.has_value()) {
    const absl::Status selected = (*runtime)->SelectTasks(*args.task_pattern);
    if (!selected.ok()) {
      std::fprintf(stderr, "runner: --task=%s: %s\n",
                   args.task_pattern->c_str(),
                   std::string(selected.message()).c_str());
      return kExitBadInput;
    }
  }
  if (rerun.has_value()) {
    for (const auto& task : (*runtime)->tasks()) {
      auto it = rerun->tasks.find(task->id());
      if (it == rerun->tasks.end() || it->second.rerun ||
          task->state() != Task::State::kPending) {
        continue;  // new since that run, failed in it, or not --task's
      }
      const absl::Status skipped = task->Skip(it->second.skip_reason);
      if (!skipped.ok()) LOG(WARNING) << skipped;
    }
    LOG(INFO) << "--rerun_failed: " << rerun->rerun_count
              << " task(s) did not succeed in run " << rerun->previous_uid;
  }
  const int max_parallel = args.interactive ? 1
                           : args.max_parallel > 0 ? args.max_parallel
                                                   : job->max_parallel;
  (*runtime)->RunAll(max_parallel);
  return (*runtime)->Finish();
}

}  // namespace
}  // namespace taskfork::runner

int main(int argc, char** argv) {
  // A Slurm executor's worker (srun starts this binary with
  // --taskfork_worker=...): entered before anything of the runner.
  if (std::optional<int> code =
          taskfork::runner::MaybeRunSlurmWorker(argc, argv)) {
    return *code;
  }
  try {
    return taskfork::runner::Main(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "runner: internal error: %s\n", e.what());
    return taskfork::runner::kExitOther;
  }
}
