// UTF-8 decoding and JSON string escaping shared by the report writers
// (writers.cc, html_report.cc).
//
//   uint32_t cp;
//   const size_t n = DecodeUtf8(s, i, &cp);  // 0: invalid byte at s[i]
//   i += n == 0 ? 1 : n;
#ifndef TASKFORK_REPORTER_INTERNAL_UTF8_H_
#define TASKFORK_REPORTER_INTERNAL_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace taskfork::reporter_internal {

// U+FFFD REPLACEMENT CHARACTER in UTF-8: what the writers put for a byte
// that does not start a valid code point.
inline constexpr absl::string_view kReplacement = "\xef\xbf\xbd";

// Decodes the code point at s[i] (precondition: i < s.size()) into
// *code_point; returns its length in bytes (1-4), or 0 if s[i] does not start
// a valid UTF-8 sequence (truncated, overlong, a surrogate, > U+10FFFF).
size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* code_point);

// Where a JSON string goes.
enum class JsonContext {
  kFile,          // results.json: only what JSON requires is escaped
  kInlineScript,  // inside <script> of a page: also '<', '>', '&', DEL,
                  // U+2028 and U+2029, so no text can end the script
};

// Appends `s` as a quoted JSON string; invalid UTF-8 becomes kReplacement.
void AppendJsonString(absl::string_view s, JsonContext context,
                      std::string* out);

}  // namespace taskfork::reporter_internal

#endif  // TASKFORK_REPORTER_INTERNAL_UTF8_H_
