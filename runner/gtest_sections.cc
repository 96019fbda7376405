#include "runner/gtest_sections.h"

#include <cerrno>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

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

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The byte of a "\u00XX" escape at json[i] (json[i] == '\\') for XX >= 0x80,
// else -1.
int EscapedHighByte(absl::string_view json, size_t i) {
  if (i + 6 > json.size() || json[i + 1] != 'u' || json[i + 2] != '0' ||
      json[i + 3] != '0') {
    return -1;
  }
  const int high = HexValue(json[i + 4]);
  const int low = HexValue(json[i + 5]);
  if (high < 8 || low < 0) return -1;  // < 0x80 (or not hex): not a byte
  return high * 16 + low;
}

// The length of the valid UTF-8 sequence at bytes[k] (RFC 3629: no overlong
// form, no surrogate, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(const std::vector<unsigned char>& bytes, size_t k) {
  const unsigned char lead = bytes[k];
  size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;
    if (lead == 0xED) second_max = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;
    if (lead == 0xF4) second_max = 0x8F;
  } else {
    return 0;
  }
  if (k + length > bytes.size()) return 0;
  if (bytes[k + 1] < second_min || bytes[k + 1] > second_max) return 0;
  for (size_t j = 2; j < length; ++j) {
    if (bytes[k + j] < 0x80 || bytes[k + j] > 0xBF) return 0;
  }
  return length;
}

}  // namespace

std::string GTestJsonPath(absl::string_view runinfo_dir,
                          absl::string_view task_id, std::optional<int> shard) {
  if (!shard.has_value()) {
    return absl::StrCat(runinfo_dir, "/", task_id, ".gtest.json");
  }
  return absl::StrCat(runinfo_dir, "/", task_id, ".shard-", *shard,
                      ".gtest.json");
}

std::string RepairGTestJsonUtf8(absl::string_view json) {
  std::string out;
  out.reserve(json.size());
  std::vector<unsigned char> run;  // the bytes of consecutive escapes
  std::vector<size_t> starts;      // where each one's escape starts in json
  size_t i = 0;
  while (i < json.size()) {
    if (json[i] != '\\') {
      out.push_back(json[i++]);
      continue;
    }
    run.clear();
    starts.clear();
    for (int byte; (byte = EscapedHighByte(json, i)) >= 0; i += 6) {
      run.push_back(static_cast<unsigned char>(byte));
      starts.push_back(i);
    }
    if (run.empty()) {
      // Another escape (\\, \n, \u0001, ...): copied whole, so the
      // character after an escaped backslash is never read as an escape.
      absl::StrAppend(&out, json.substr(i, 2));
      i += 2;
      continue;
    }
    for (size_t k = 0; k < run.size();) {
      if (const size_t length = Utf8SequenceLength(run, k); length > 0) {
        out.append(reinterpret_cast<const char*>(&run[k]), length);
        k += length;
      } else {
        absl::StrAppend(&out, json.substr(starts[k], 6));
        ++k;
      }
    }
  }
  return out;
}

absl::StatusOr<std::vector<GTestSection>> ParseGTestJson(
    absl::string_view json, absl::string_view display_path) {
  GTestOutput output;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status = google::protobuf::util::JsonStringToMessage(
      RepairGTestJsonUtf8(json), &output, options);
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
