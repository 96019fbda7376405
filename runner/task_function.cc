#include "runner/task_function.h"

#include <cxxabi.h>

#include <exception>
#include <string>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace taskfork::runner {
namespace {

std::string Demangle(const char* name) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && demangled != nullptr ? demangled : name;
  std::free(demangled);
  return out;
}

}  // namespace

TaskRegistry& TaskRegistry::Global() {
  static TaskRegistry* registry = new TaskRegistry();
  return *registry;
}

bool TaskRegistry::Register(std::string name, TaskFunction function,
                            const char* file, int line) {
  CHECK(!name.empty()) << "TASKFORK_TASK with an empty name at " << file << ":"
                       << line;
  CHECK(function != nullptr);
  const auto [it, inserted] =
      entries_.emplace(std::move(name), Entry{function, file, line});
  CHECK(inserted) << "task function \"" << it->first << "\" registered twice: "
                  << it->second.file << ":" << it->second.line << " and "
                  << file << ":" << line;
  return true;
}

const TaskRegistry::Entry* TaskRegistry::Find(absl::string_view name) const {
  const auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::vector<std::string> TaskRegistry::Names() const {
  std::vector<std::string> names;
  names.reserve(entries_.size());
  for (const auto& [name, entry] : entries_) names.push_back(name);
  return names;
}

TaskFunctionOutcome RunTaskFunction(
    absl::FunctionRef<absl::Status(TaskContext&)> function,
    TaskContext& context) {
  TaskFunctionOutcome outcome;
  absl::Status status;
  try {
    status = function(context);
  } catch (const std::exception& e) {
    outcome.result = reporter::Result::kErrored;
    outcome.reason = absl::StrCat("uncaught exception ",
                                  Demangle(typeid(e).name()), ": ", e.what());
    return outcome;
  } catch (...) {
    const std::type_info* type = abi::__cxa_current_exception_type();
    outcome.result = reporter::Result::kErrored;
    outcome.reason = absl::StrCat(
        "uncaught exception of type ",
        type != nullptr ? Demangle(type->name()) : std::string("(unknown)"));
    return outcome;
  }
  if (!status.ok()) {
    outcome.result = reporter::Result::kFailed;
    outcome.reason = status.ToString();
  }
  if (context.result().has_value()) {
    if (status.ok()) {
      outcome.result = *context.result();
      outcome.reason = context.reason();
    } else if (reporter::RollUp(outcome.result, *context.result()) !=
               outcome.result) {
      outcome.result = *context.result();
      outcome.reason = context.reason();
    }
  }
  return outcome;
}

}  // namespace taskfork::runner
