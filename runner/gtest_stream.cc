#include "runner/gtest_stream.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "glog/logging.h"

namespace taskfork::runner {
namespace {

// Malformed lines logged per stream; the rest are only counted.
constexpr int kMaxLoggedMalformed = 5;

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = absl::ascii_tolower(c);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// GoogleTest's StreamingListener::UrlEncode undone: %XX is the byte XX.
std::optional<std::string> UrlDecode(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out.push_back(text[i]);
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int high = HexDigit(text[i + 1]);
    const int low = HexDigit(text[i + 2]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return out;
}

// The `key=value` fields of a line after its first ("event=..."), decoded.
struct Fields {
  std::vector<std::pair<std::string, std::string>> values;

  const std::string* Find(absl::string_view key) const {
    for (const auto& [k, v] : values) {
      if (k == key) return &v;
    }
    return nullptr;
  }
};

// "1234ms" -> 1234 ms.
std::optional<absl::Duration> ParseMilliseconds(absl::string_view text) {
  int64_t ms = 0;
  if (!absl::ConsumeSuffix(&text, "ms") || !absl::SimpleAtoi(text, &ms) ||
      ms < 0) {
    return std::nullopt;
  }
  return absl::Milliseconds(ms);
}

// GoogleTest's FormatCompilerIndependentFileLocation, as its JSON has it.
std::string Location(absl::string_view file, int line) {
  if (file.empty()) return "unknown file";
  if (line < 0) return std::string(file);
  return absl::StrCat(file, ":", line);
}

}  // namespace

void GTestStream::Append(absl::string_view bytes) {
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const absl::string_view piece = bytes.substr(0, newline);
    if (!skipping_long_line_) {
      if (buffer_.size() + piece.size() > kMaxLine) {
        Malformed(absl::string_view(buffer_).substr(0, 80),
                  absl::StrCat("longer than ", kMaxLine, " bytes"));
        buffer_.clear();
        skipping_long_line_ = true;
      } else {
        buffer_.append(piece.data(), piece.size());
      }
    }
    if (newline == absl::string_view::npos) return;
    if (!skipping_long_line_) ParseLine(buffer_);
    buffer_.clear();
    skipping_long_line_ = false;
    bytes.remove_prefix(newline + 1);
  }
}

void GTestStream::Malformed(absl::string_view line, absl::string_view why) {
  ++malformed_lines_;
  if (malformed_lines_ <= kMaxLoggedMalformed) {
    LOG(WARNING) << "GoogleTest stream: ignoring a malformed line (" << why
                 << "): \"" << absl::CEscape(line.substr(0, 200)) << "\"";
  }
}

void GTestStream::ParseLine(absl::string_view line) {
  if (absl::StartsWith(line, "gtest_streaming_protocol_version=")) {
    started_ = true;
    return;
  }
  std::vector<absl::string_view> parts = absl::StrSplit(line, '&');
  absl::string_view event = parts[0];
  if (!absl::ConsumePrefix(&event, "event=")) {
    return Malformed(line, "no event=");
  }
  Fields fields;
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t equals = parts[i].find('=');
    if (equals == absl::string_view::npos) {
      return Malformed(line, absl::StrCat("field without '=': ", parts[i]));
    }
    std::optional<std::string> value = UrlDecode(parts[i].substr(equals + 1));
    if (!value.has_value()) return Malformed(line, "bad %XX escape");
    fields.values.emplace_back(std::string(parts[i].substr(0, equals)),
                               *std::move(value));
  }
  started_ = true;

  if (event == "TestProgramStart" || event == "TestIterationStart" ||
      event == "TestCaseEnd" || event == "TestIterationEnd") {
    return;
  }
  if (event == "TestProgramEnd") {
    program_ended_ = true;
    return;
  }
  if (event == "TestCaseStart") {
    const std::string* name = fields.Find("name");
    if (name == nullptr) return Malformed(line, "TestCaseStart without name");
    suite_ = *name;
    return;
  }
  if (event == "TestStart") {
    const std::string* name = fields.Find("name");
    if (name == nullptr) return Malformed(line, "TestStart without name");
    if (!running_.name.empty()) {
      Malformed(line, absl::StrCat("TestStart while ", running_.name,
                                   " runs (that one is dropped)"));
    }
    running_ = GTestSection();
    running_.name = absl::StrCat(suite_, ".", *name);
    running_failures_ = 0;
    return;
  }
  if (event == "TestPartResult") {
    const std::string* file = fields.Find("file");
    const std::string* line_text = fields.Find("line");
    const std::string* message = fields.Find("message");
    int line_number = 0;
    if (file == nullptr || line_text == nullptr || message == nullptr ||
        !absl::SimpleAtoi(*line_text, &line_number)) {
      return Malformed(line, "TestPartResult needs file, line and message");
    }
    // One outside a test (SetUpTestSuite, a global environment) belongs to
    // no section.
    if (running_.name.empty()) return;
    if (++running_failures_ == 1) {
      running_.reason = absl::StrCat(Location(*file, line_number), "\n",
                                     *message);
      if (running_.reason.size() > kMaxGTestReason) {
        running_.reason.resize(kMaxGTestReason);
        running_.reason += "...";
      }
    }
    return;
  }
  if (event == "TestEnd") {
    const std::string* passed = fields.Find("passed");
    const std::string* elapsed = fields.Find("elapsed_time");
    std::optional<absl::Duration> time;
    if (elapsed != nullptr) time = ParseMilliseconds(*elapsed);
    if (passed == nullptr || (*passed != "0" && *passed != "1") ||
        !time.has_value()) {
      return Malformed(line, "TestEnd needs passed=0|1 and elapsed_time=Nms");
    }
    if (running_.name.empty()) {
      return Malformed(line, "TestEnd without TestStart");
    }
    GTestSection test = std::move(running_);
    running_ = GTestSection();
    test.time = *time;
    if (*passed == "1") {
      test.result = reporter::Result::kPassed;
      test.reason.clear();
    } else {
      test.result = reporter::Result::kFailed;
      if (running_failures_ == 0) {
        test.reason = "failed (GoogleTest's stream gave no message)";
      } else if (running_failures_ > 1) {
        absl::StrAppend(&test.reason, " (and ", running_failures_ - 1,
                        " more failures)");
      }
    }
    running_failures_ = 0;
    finished_.push_back(std::move(test));
    return;
  }
  Malformed(line, absl::StrCat("unknown event ", event));
}

std::vector<GTestSection> GTestStream::Sections(
    reporter::Result running_result, absl::string_view running_reason) const {
  std::vector<GTestSection> sections = finished_;
  if (!running_.name.empty()) {
    GTestSection running;
    running.name = running_.name;
    running.result = running_result;
    running.reason = std::string(running_reason);
    if (running_failures_ > 0) {
      absl::StrAppend(&running.reason, "; it had failed before: ",
                      running_.reason);
    }
    sections.push_back(std::move(running));
  }
  return sections;
}

}  // namespace taskfork::runner
