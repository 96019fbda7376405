#include "reporter/gtest_listener.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace taskfork::reporter {
namespace {

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? std::string() : std::string(v);
}

}  // namespace

void ReporterGtestListener::OnTestProgramStart(const ::testing::UnitTest&) {
  const std::string socket = Env(kReporterSocketEnv);
  if (socket.empty()) return;
  ReportClientOptions options;
  options.socket_path = socket;
  options.secret_file = Env(kReporterSecretFileEnv);
  options.task_id = Env(kReporterTaskIdEnv);
  if (options.task_id.empty()) options.task_id = program_invocation_short_name;
  const std::string parent = Env(kReporterParentSectionEnv);
  if (!parent.empty() && !absl::SimpleAtoi(parent, &parent_id_)) {
    std::fprintf(stderr, "taskfork reporter: ignoring %s=%s (not a number)\n",
                 kReporterParentSectionEnv, parent.c_str());
    parent_id_ = 0;
  }
  auto client = ReportClient::Connect(std::move(options));
  if (!client.ok()) {
    std::fprintf(stderr, "taskfork reporter: tests are not reported: %s\n",
                 client.status().ToString().c_str());
    return;
  }
  client_.emplace(std::move(*client));
}

void ReporterGtestListener::OnTestStart(const ::testing::TestInfo& info) {
  if (!client_) return;
  failures_.clear();
  skip_message_.clear();
  SectionOptions options;
  options.type = "Testcase";
  options.parent_id = parent_id_;
  if (info.value_param() != nullptr) {
    options.description = absl::StrCat("GetParam() = ", info.value_param());
  } else if (info.type_param() != nullptr) {
    options.description = absl::StrCat("TypeParam = ", info.type_param());
  }
  auto id = client_->StartSection(
      absl::StrCat(info.test_suite_name(), ".", info.name()), options,
      info.file(), info.line());
  in_test_ = id.ok();
  section_id_ = id.ok() ? *id : 0;
}

void ReporterGtestListener::OnTestPartResult(
    const ::testing::TestPartResult& result) {
  if (!client_ || !in_test_) return;
  if (result.skipped()) {
    skip_message_ = result.message();
    return;
  }
  if (!result.failed()) return;
  if (!failures_.empty()) failures_.push_back('\n');
  if (result.file_name() != nullptr) {
    absl::StrAppend(&failures_, result.file_name(), ":", result.line_number(), ": ");
  }
  failures_.append(result.message());
}

void ReporterGtestListener::OnTestEnd(const ::testing::TestInfo& info) {
  if (!client_ || !in_test_) return;
  in_test_ = false;
  const ::testing::TestResult* r = info.result();
  Result result = Result::kPassed;
  std::string reason;
  if (r->Failed()) {
    result = Result::kFailed;
    reason = failures_;
  } else if (r->Skipped()) {
    result = Result::kSkipped;
    reason = skip_message_;
  }
  (void)client_->StopSection(section_id_, result, reason);
}

void ReporterGtestListener::OnTestProgramEnd(const ::testing::UnitTest&) {
  if (!client_) return;
  const absl::Status s = client_->Sync();
  if (!s.ok()) {
    std::fprintf(stderr, "taskfork reporter: %s\n", s.ToString().c_str());
  }
  (void)client_->Close();
}

bool InstallReporterGtestListener() {
  static bool installed = false;
  if (installed) return false;
  installed = true;
  ::testing::UnitTest::GetInstance()->listeners().Append(
      new ReporterGtestListener());
  return true;
}

namespace {
[[maybe_unused]] const bool kInstalled = InstallReporterGtestListener();
}  // namespace

}  // namespace taskfork::reporter
