#include "runner/gtest_sections.h"

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/errno.h"
#include "google/protobuf/util/json_util.h"
#include "runner/gtest_json.pb.h"

namespace taskfork::runner {
namespace {

absl::Duration ParseSeconds(absl::string_view text) {
  double seconds = 0;
  if (absl::ConsumeSuffix(&text, "s") && absl::SimpleAtod(text, &seconds)) {
    return absl::Seconds(seconds);
  }
  return absl::ZeroDuration();
}

}  // namespace

absl::StatusOr<std::vector<GTestSection>> ParseGTestJson(
    absl::string_view json, absl::string_view display_path) {
  GTestOutput output;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      std::string(json), &output, options);
  if (!status.ok()) {
    return absl::DataLossError(
        absl::StrCat(display_path, ": not GoogleTest JSON output: ",
                     status.message().as_string()));
  }
  if (output.testsuites_size() == 0 && output.tests() == 0 &&
      output.name().empty()) {
    return absl::DataLossError(
        absl::StrCat(display_path, ": not GoogleTest JSON output (no "
                                   "\"testsuites\" and no \"name\")"));
  }
  std::vector<GTestSection> sections;
  for (const GTestSuite& suite : output.testsuites()) {
    for (const GTestCase& test : suite.testsuite()) {
      GTestSection section;
      section.name = absl::StrCat(suite.name(), ".", test.name());
      section.time = ParseSeconds(test.time());
      section.file = test.file();
      section.line = test.line();
      if (test.failures_size() > 0) {
        section.result = reporter::Result::kFailed;
        section.reason = test.failures(0).failure();
        if (section.reason.size() > kMaxGTestReason) {
          section.reason.resize(kMaxGTestReason);
          section.reason += "...";
        }
        if (test.failures_size() > 1) {
          absl::StrAppend(&section.reason, " (and ", test.failures_size() - 1,
                          " more failures)");
        }
      } else if (test.status() == "NOTRUN") {
        section.result = reporter::Result::kSkipped;
        section.reason = "disabled";
      } else if (test.result() == "SKIPPED") {
        section.result = reporter::Result::kSkipped;
        section.reason = "skipped by GTEST_SKIP";
      }
      sections.push_back(std::move(section));
    }
  }
  return sections;
}

absl::StatusOr<std::vector<GTestSection>> ReadGTestJson(
    const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(errno != 0 ? errno : ENOENT, "open", path);
  const std::string json((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  return ParseGTestJson(json, path);
}

}  // namespace taskfork::runner
