#include "runner/job_spec.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/errno.h"
#include "runner/runinfo.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace taskfork::runner {
namespace {

using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::TextFormat;

// Collects "<path>:<line>:<column>: <message>" lines (1-based positions).
class Problems : public ::google::protobuf::io::ErrorCollector {
 public:
  explicit Problems(std::string path) : path_(std::move(path)) {}

  void AddError(int line, ::google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    Add(line, column, message);
  }

  // `line` and `column` are 0-based as protobuf reports them; -1 = unknown.
  void Add(int line, int column, absl::string_view message) {
    if (line < 0) {
      lines_.push_back(absl::StrCat(path_, ": ", message));
    } else {
      lines_.push_back(
          absl::StrCat(path_, ":", line + 1, ":", column + 1, ": ", message));
    }
  }

  bool empty() const { return lines_.empty(); }
  absl::Status ToStatus() const {
    return absl::InvalidArgumentError(absl::StrJoin(lines_, "\n"));
  }

 private:
  std::string path_;
  std::vector<std::string> lines_;
};

// Where a field of a parsed message starts (0-based), or {-1, -1}.
struct Where {
  int line = -1;
  int column = -1;
};

Where Locate(const TextFormat::ParseInfoTree* tree, const FieldDescriptor* field,
             int index = -1) {
  if (tree == nullptr) return {};
  const auto location = tree->GetLocation(field, index);
  return {location.line, location.column};
}

// Parses an optional duration field: "" -> `fallback`; "inf" -> infinite.
bool ParseDurationField(absl::string_view text, absl::Duration fallback,
                        absl::Duration* out) {
  if (text.empty()) {
    *out = fallback;
    return true;
  }
  if (!absl::ParseDuration(text, out)) return false;
  return *out > absl::ZeroDuration();
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string Absolute(const std::string& path) {
  if (!path.empty() && path[0] == '/') return path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof(cwd)) == nullptr) return path;
  return absl::StrCat(cwd, "/", path);
}

// Resolves argv[0] as CommandTask documents; empty if not found. `tried`
// receives the places looked at, for the error message.
std::string ResolveExecutable(const std::string& program,
                              const std::string& spec_dir,
                              const JobSpecContext& context,
                              std::vector<std::string>* tried) {
  std::vector<std::string> candidates;
  if (program.find('/') == std::string::npos) {
    for (absl::string_view dir :
         absl::StrSplit(context.path_env, ':', absl::SkipEmpty())) {
      candidates.push_back(absl::StrCat(dir, "/", program));
    }
  } else if (program[0] == '/') {
    candidates.push_back(program);
  } else {
    candidates.push_back(Absolute(absl::StrCat(spec_dir, "/", program)));
    if (!context.runfiles_dir.empty()) {
      candidates.push_back(absl::StrCat(context.runfiles_dir, "/", program));
    }
  }
  for (const std::string& candidate : candidates) {
    if (IsExecutableFile(candidate)) return candidate;
  }
  if (program.find('/') == std::string::npos) {
    tried->push_back(absl::StrCat("PATH=", context.path_env));
  } else {
    *tried = candidates;
  }
  return "";
}

}  // namespace

absl::StatusOr<Job> LoadJobSpec(const std::string& path,
                                const JobSpecContext& context) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno != 0 ? errno : ENOENT;
    return ErrnoError(error, "cannot read job spec", path);
  }
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  if (in.bad()) return ErrnoError(errno != 0 ? errno : EIO, "read", path);
  return ParseJobSpec(text, path, context);
}

absl::StatusOr<Job> ParseJobSpec(absl::string_view text,
                                 const std::string& display_path,
                                 const JobSpecContext& context) {
  Problems problems(display_path);
  JobSpec spec;
  TextFormat::ParseInfoTree tree;
  TextFormat::Parser parser;
  parser.RecordErrorsTo(&problems);
  parser.WriteLocationsTo(&tree);
  if (!parser.ParseFromString(std::string(text), &spec)) {
    if (problems.empty()) problems.Add(-1, -1, "cannot parse the job spec");
    return problems.ToStatus();
  }

  const auto* job_descriptor = JobSpec::descriptor();
  const auto* task_descriptor = TaskSpec::descriptor();
  auto job_field = [&](const char* name) {
    return job_descriptor->FindFieldByName(name);
  };
  auto task_field = [&](const char* name) {
    return task_descriptor->FindFieldByName(name);
  };

  Job job;
  job.spec_path = display_path;
  job.spec_text = std::string(text);
  job.name = spec.name();
  if (job.name.empty()) {
    std::string base = display_path.substr(display_path.rfind('/') + 1);
    job.name = base.substr(0, base.find('.'));
  }
  if (!IsValidRunInfoName(job.name)) {
    const Where at = Locate(&tree, job_field("name"));
    problems.Add(at.line, at.column,
                 absl::StrCat("invalid job name \"", job.name,
                              "\": use letters, digits, '-', '_', '.', ':'"));
  }
  if (spec.max_parallel() < 0) {
    const Where at = Locate(&tree, job_field("max_parallel"));
    problems.Add(at.line, at.column,
                 absl::StrCat("max_parallel must be >= 0 (0 = number of CPUs), "
                              "got ",
                              spec.max_parallel()));
  }
  job.max_parallel = spec.max_parallel() > 0 ? spec.max_parallel()
                                             : std::max(1, context.cpu_count);

  absl::Duration default_timeout;
  if (!ParseDurationField(spec.default_timeout(), absl::InfiniteDuration(),
                          &default_timeout)) {
    const Where at = Locate(&tree, job_field("default_timeout"));
    problems.Add(at.line, at.column,
                 absl::StrCat("default_timeout \"", spec.default_timeout(),
                              "\" is not a positive duration like \"90s\", "
                              "\"5m\" or \"inf\""));
  }
  if (!ParseDurationField(spec.termination_grace(), absl::Seconds(5),
                          &job.termination_grace) ||
      job.termination_grace == absl::InfiniteDuration()) {
    const Where at = Locate(&tree, job_field("termination_grace"));
    problems.Add(at.line, at.column,
                 absl::StrCat("termination_grace \"", spec.termination_grace(),
                              "\" is not a finite positive duration like "
                              "\"5s\""));
  }
  if (spec.task_size() == 0) {
    problems.Add(-1, -1, "the job has no tasks: add at least one 'task { ... }'");
  }

  std::vector<std::string> known = context.known_functions;
  std::sort(known.begin(), known.end());
  absl::flat_hash_map<std::string, int> first_line_of_id;
  const std::string spec_dir = Dirname(display_path);

  for (int i = 0; i < spec.task_size(); ++i) {
    const TaskSpec& task_spec = spec.task(i);
    const TextFormat::ParseInfoTree* task_tree =
        tree.GetTreeForNested(job_field("task"), i);
    const Where task_at = Locate(&tree, job_field("task"), i);
    JobTask task;
    task.id = task_spec.id().empty() ? absl::StrCat("Task-", i + 1)
                                     : task_spec.id();
    task.description = task_spec.description();
    const Where id_at = task_spec.id().empty()
                            ? task_at
                            : Locate(task_tree, task_field("id"));
    if (!IsValidRunInfoName(task.id)) {
      problems.Add(id_at.line, id_at.column,
                   absl::StrCat("invalid task id \"", task.id,
                                "\": use letters, digits, '-', '_', '.', ':' "
                                "(it names the task's log file)"));
    } else {
      const auto [it, inserted] =
          first_line_of_id.emplace(task.id, id_at.line + 1);
      if (!inserted) {
        problems.Add(id_at.line, id_at.column,
                     absl::StrCat("duplicate task id \"", task.id,
                                  "\" (first used on line ", it->second, ")"));
      }
    }
    if (!ParseDurationField(task_spec.timeout(), default_timeout,
                            &task.timeout)) {
      const Where at = Locate(task_tree, task_field("timeout"));
      problems.Add(at.line, at.column,
                   absl::StrCat("timeout \"", task_spec.timeout(),
                                "\" of task \"", task.id,
                                "\" is not a positive duration like \"90s\", "
                                "\"5m\" or \"inf\""));
    }

    switch (task_spec.kind_case()) {
      case TaskSpec::kFunction: {
        task.kind = JobTask::Kind::kFunction;
        task.function = task_spec.function().name();
        task.args.assign(task_spec.function().args().begin(),
                         task_spec.function().args().end());
        if (!std::binary_search(known.begin(), known.end(), task.function)) {
          const Where at = Locate(task_tree, task_field("function"));
          problems.Add(
              at.line, at.column,
              absl::StrCat("task \"", task.id, "\": unknown function \"",
                           task.function, "\"; known functions: ",
                           known.empty() ? "(none registered)"
                                         : absl::StrJoin(known, ", ")));
        }
        break;
      }
      case TaskSpec::kCommand: {
        task.kind = JobTask::Kind::kCommand;
        const CommandTask& command = task_spec.command();
        task.argv.assign(command.argv().begin(), command.argv().end());
        task.env.assign(command.env().begin(), command.env().end());
        std::sort(task.env.begin(), task.env.end());
        task.working_directory = command.working_directory();
        task.gtest = command.gtest();
        const Where at = Locate(task_tree, task_field("command"));
        const TextFormat::ParseInfoTree* command_tree =
            task_tree == nullptr
                ? nullptr
                : task_tree->GetTreeForNested(task_field("command"), -1);
        const Where shards_at = Locate(
            command_tree, CommandTask::descriptor()->FindFieldByName("shards"));
        // Unset (0) means 1; an explicit 0 is as wrong as a negative count.
        const bool shards_given = shards_at.line >= 0;
        task.shards = command.shards() > 0 ? command.shards() : 1;
        if (command.shards() < 0 || (shards_given && command.shards() == 0) ||
            command.shards() > kMaxShards) {
          problems.Add(shards_at.line, shards_at.column,
                       absl::StrCat("task \"", task.id, "\": shards must be "
                                    "between 1 and ", kMaxShards, ", got ",
                                    command.shards()));
        } else if (task.shards > 1 && !task.gtest) {
          problems.Add(shards_at.line, shards_at.column,
                       absl::StrCat("task \"", task.id, "\": shards needs "
                                    "gtest: true (sharding is GoogleTest's "
                                    "GTEST_TOTAL_SHARDS/GTEST_SHARD_INDEX)"));
        }
        if (task.argv.empty() || task.argv[0].empty()) {
          problems.Add(at.line, at.column,
                       absl::StrCat("task \"", task.id,
                                    "\": command has no argv (add argv: "
                                    "\"/path/to/program\")"));
          break;
        }
        std::vector<std::string> tried;
        const std::string resolved =
            ResolveExecutable(task.argv[0], spec_dir, context, &tried);
        if (resolved.empty()) {
          problems.Add(at.line, at.column,
                       absl::StrCat("task \"", task.id, "\": executable \"",
                                    task.argv[0],
                                    "\" not found or not executable (looked "
                                    "at: ",
                                    absl::StrJoin(tried, ", "), ")"));
        } else {
          task.argv[0] = resolved;
        }
        if (!task.working_directory.empty()) {
          struct stat st;
          if (::stat(task.working_directory.c_str(), &st) != 0 ||
              !S_ISDIR(st.st_mode)) {
            problems.Add(at.line, at.column,
                         absl::StrCat("task \"", task.id,
                                      "\": working_directory \"",
                                      task.working_directory,
                                      "\" is not a directory"));
          }
        }
        break;
      }
      case TaskSpec::KIND_NOT_SET:
        problems.Add(task_at.line, task_at.column,
                     absl::StrCat("task \"", task.id,
                                  "\" has neither 'function { ... }' nor "
                                  "'command { ... }'"));
        break;
    }
    job.tasks.push_back(std::move(task));
  }
  if (!problems.empty()) return problems.ToStatus();
  return job;
}

}  // namespace taskfork::runner
