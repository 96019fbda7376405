// UTF-8 decoding shared by the report writers (writers.cc, html_report.cc).
//
//   uint32_t cp;
//   const size_t n = DecodeUtf8(s, i, &cp);  // 0: invalid byte at s[i]
//   i += n == 0 ? 1 : n;
#ifndef TASKFORK_REPORTER_INTERNAL_UTF8_H_
#define TASKFORK_REPORTER_INTERNAL_UTF8_H_

#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"

namespace taskfork::reporter_internal {

// U+FFFD REPLACEMENT CHARACTER in UTF-8: what the writers put for a byte
// that does not start a valid code point.
inline constexpr absl::string_view kReplacement = "\xef\xbf\xbd";

// Decodes the code point at s[i] (precondition: i < s.size()) into
// *code_point; returns its length in bytes (1-4), or 0 if s[i] does not start
// a valid UTF-8 sequence (truncated, overlong, a surrogate, > U+10FFFF).
size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* code_point);

}  // namespace taskfork::reporter_internal

#endif  // TASKFORK_REPORTER_INTERNAL_UTF8_H_
