// libFuzzer target for RepairGTestJsonUtf8 and ParseGTestJson
// (runner/gtest_sections.h) on arbitrary bytes. Besides "no crash, no leak,
// no UB" it checks that the repair
//   - never makes valid UTF-8 invalid;
//   - never makes the text longer;
//   - changes nothing more when run again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>

#include "absl/strings/string_view.h"
#include "runner/gtest_sections.h"

namespace {

[[noreturn]] void Fail(absl::string_view what) {
  std::cerr << "gtest_json_utf8_fuzzer: " << what << "\n";
  std::abort();
}

// RFC 3629 UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool IsValidUtf8(absl::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    size_t n = 0;
    unsigned char low = 0x80, high = 0xBF;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      if (c == 0xE0) low = 0xA0;
      if (c == 0xED) high = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      if (c == 0xF0) low = 0x90;
      if (c == 0xF4) high = 0x8F;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    const unsigned char second = s[i + 1];
    if (second < low || second > high) return false;
    for (size_t j = 2; j <= n; ++j) {
      const unsigned char next = s[i + j];
      if (next < 0x80 || next > 0xBF) return false;
    }
    i += n + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  const std::string repaired = taskfork::runner::RepairGTestJsonUtf8(json);
  if (IsValidUtf8(json) && !IsValidUtf8(repaired)) {
    Fail("valid UTF-8 became invalid");
  }
  if (repaired.size() > json.size()) Fail("the repair made the text longer");
  if (taskfork::runner::RepairGTestJsonUtf8(repaired) != repaired) {
    Fail("a second repair changed the text");
  }
  (void)taskfork::runner::ParseGTestJson(json, "fuzz.json");
  return 0;
}
