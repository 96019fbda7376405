#include "reporter/results_json_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/errno.h"
#include "base/fd.h"
#include "base/status_macros.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "reporter/report_builder.h"
#include "reporter/result.h"

namespace taskfork::reporter {
namespace {

using ::google::protobuf::Struct;
using ::google::protobuf::Value;

// Reads the fields of one results.json object; the first error is kept.
class Reader {
 public:
  explicit Reader(absl::string_view what) : what_(what) {}

  const absl::Status& status() const { return status_; }

  const Value* Get(const Struct& s, const std::string& key) {
    auto it = s.fields().find(key);
    return it == s.fields().end() ? nullptr : &it->second;
  }
  std::string Str(const Struct& s, const std::string& key) {
    const Value* v = Get(s, key);
    return v != nullptr && v->has_string_value() ? v->string_value() : "";
  }
  double Num(const Struct& s, const std::string& key) {
    const Value* v = Get(s, key);
    return v != nullptr && v->kind_case() == Value::kNumberValue ? v->number_value()
                                                                 : 0;
  }
  const Struct* Obj(const Struct& s, const std::string& key) {
    const Value* v = Get(s, key);
    return v != nullptr && v->has_struct_value() ? &v->struct_value() : nullptr;
  }
  std::vector<const Value*> List(const Struct& s, const std::string& key) {
    std::vector<const Value*> out;
    const Value* v = Get(s, key);
    if (v != nullptr && v->has_list_value()) {
      for (const Value& e : v->list_value().values()) out.push_back(&e);
    }
    return out;
  }
  google::protobuf::Timestamp Time(const Struct& s, const std::string& key) {
    const std::string text = Str(s, key);
    absl::Time t = absl::InfinitePast();
    std::string err;
    if (!text.empty() && !absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
      Fail(absl::StrCat(key, " \"", text, "\" is not an RFC 3339 time: ", err));
    }
    return ToProtoTime(t);
  }
  void Result(const Struct& s, ResultInfo* out) {
    const Struct* r = Obj(s, "result");
    if (r == nullptr) return;
    const auto parsed = ParseResult(Str(*r, "value"));
    out->set_value(parsed ? static_cast<ResultCode>(
                                ResultCodeOf(*parsed))
                          : RESULT_UNSPECIFIED);
    out->set_reason(Str(*r, "reason"));
    if (const Struct* data = Obj(*r, "data")) {
      for (const auto& [k, v] : data->fields()) {
        (*out->mutable_data())[k] = v.string_value();
      }
    }
  }
  void Counts(const Struct& s, const std::string& key, Summary* out) {
    const Struct* c = Obj(s, key);
    if (c == nullptr) return;
    out->set_passed(Num(*c, "passed"));
    out->set_passx(Num(*c, "passx"));
    out->set_failed(Num(*c, "failed"));
    out->set_errored(Num(*c, "errored"));
    out->set_aborted(Num(*c, "aborted"));
    out->set_blocked(Num(*c, "blocked"));
    out->set_skipped(Num(*c, "skipped"));
    out->set_total(Num(*c, "total"));
    out->set_success_rate(Num(*c, "success_rate"));
    out->set_flaky(Num(*c, "flaky"));
  }
  bool Bool(const Struct& s, const std::string& key) {
    const Value* v = Get(s, key);
    return v != nullptr && v->kind_case() == Value::kBoolValue && v->bool_value();
  }
  // attempts, flaky, previous_attempts of a Section or TaskReport.
  template <typename Message>
  void Attempts(const Struct& s, Message* message) {
    message->set_attempts(static_cast<uint32_t>(Num(s, "attempts")));
    message->set_flaky(Bool(s, "flaky"));
    for (const Value* v : List(s, "previous_attempts")) {
      if (!v->has_struct_value()) continue;
      const Struct& a = v->struct_value();
      Attempt* out = message->add_previous_attempts();
      out->set_number(static_cast<uint32_t>(Num(a, "number")));
      Result(a, out->mutable_result());
      out->set_logfile(Str(a, "logfile"));
      *out->mutable_starttime() = Time(a, "starttime");
      *out->mutable_stoptime() = Time(a, "stoptime");
    }
  }
  void ReadSection(const Struct& s, Section* out) {
    out->set_type(Str(s, "type"));
    out->set_id(Str(s, "id"));
    out->set_name(Str(s, "name"));
    out->set_description(Str(s, "description"));
    *out->mutable_starttime() = Time(s, "starttime");
    *out->mutable_stoptime() = Time(s, "stoptime");
    out->set_runtime(Num(s, "runtime"));
    if (const Struct* x = Obj(s, "xref")) {
      out->mutable_xref()->set_file(Str(*x, "file"));
      out->mutable_xref()->set_line(Num(*x, "line"));
    }
    if (const Struct* l = Obj(s, "logs")) {
      out->mutable_logs()->set_file(Str(*l, "file"));
      out->mutable_logs()->set_begin(Num(*l, "begin"));
      out->mutable_logs()->set_size(Num(*l, "size"));
    }
    out->set_pid(Num(s, "pid"));
    Result(s, out->mutable_result());
    Attempts(s, out);
    Counts(s, "summary", out->mutable_summary());
    for (const Value* child : List(s, "sections")) {
      if (child->has_struct_value()) {
        ReadSection(child->struct_value(), out->add_sections());
      }
    }
  }
  void ReadTask(const Struct& s, TaskReport* out) {
    out->set_type(Str(s, "type"));
    out->set_id(Str(s, "id"));
    out->set_name(Str(s, "name"));
    out->set_description(Str(s, "description"));
    *out->mutable_starttime() = Time(s, "starttime");
    *out->mutable_stoptime() = Time(s, "stoptime");
    out->set_runtime(Num(s, "runtime"));
    out->set_logfile(Str(s, "logfile"));
    Result(s, out->mutable_result());
    Attempts(s, out);
    Counts(s, "summary", out->mutable_summary());
    for (const Value* section : List(s, "sections")) {
      if (section->has_struct_value()) {
        ReadSection(section->struct_value(), out->add_sections());
      }
    }
    for (const Value* pid : List(s, "pids")) {
      out->add_pids(static_cast<int64_t>(pid->number_value()));
    }
  }
  void Fail(const std::string& message) {
    if (status_.ok()) {
      status_ = absl::InvalidArgumentError(absl::StrCat(what_, ": ", message));
    }
  }

 private:
  const std::string what_;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<JobReport> ParseResultsJson(absl::string_view json,
                                           absl::string_view what) {
  Struct root;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &root);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": not JSON: ", parsed.ToString()));
  }
  Reader reader(what);
  const Struct* report = reader.Obj(root, "report");
  if (reader.Str(root, "version") != "2" || report == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": not a results.json version 2 ({\"version\": \"2\", \"report\": ...})"));
  }
  JobReport out;
  out.set_type(reader.Str(*report, "type"));
  out.set_id(reader.Str(*report, "id"));
  out.set_name(reader.Str(*report, "name"));
  *out.mutable_starttime() = reader.Time(*report, "starttime");
  *out.mutable_stoptime() = reader.Time(*report, "stoptime");
  out.set_runtime(reader.Num(*report, "runtime"));
  out.set_host(reader.Str(*report, "host"));
  out.set_submitter(reader.Str(*report, "submitter"));
  out.set_totaltasks(reader.Num(*report, "totaltasks"));
  reader.Result(*report, out.mutable_result());
  reader.Counts(*report, "summary", out.mutable_summary());
  reader.Counts(*report, "task_summary", out.mutable_task_summary());
  if (const Struct* extra = reader.Obj(*report, "extra")) {
    for (const auto& [k, v] : extra->fields()) {
      (*out.mutable_extra())[k] = v.string_value();
    }
  }
  for (const Value* task : reader.List(*report, "tasks")) {
    if (task->has_struct_value()) reader.ReadTask(task->struct_value(), out.add_tasks());
  }
  TASKFORK_RETURN_IF_ERROR(reader.status());
  return out;
}

absl::StatusOr<JobReport> ReadResultsJson(const std::string& path) {
  OwnedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, "open", path);
  std::string text;
  char buf[1 << 16];
  for (;;) {
    const ssize_t n =
        RetryOnEintr([&] { return ::read(fd.get(), buf, sizeof(buf)); });
    if (n < 0) return ErrnoError(errno, "read", path);
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return ParseResultsJson(text, path);
}

}  // namespace taskfork::reporter
