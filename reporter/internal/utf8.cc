#include "reporter/internal/utf8.h"

#include <string>

#include "absl/strings/str_format.h"

namespace taskfork::reporter_internal {

size_t DecodeUtf8(absl::string_view s, size_t i, uint32_t* code_point) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) {
    *code_point = c;
    return 1;
  } else if ((c & 0xe0) == 0xc0) {
    n = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    n = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  // Overlong forms, surrogates and out-of-range values are invalid.
  if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) ||
      (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  *code_point = cp;
  return n;
}

void AppendJsonString(absl::string_view s, JsonContext context,
                      std::string* out) {
  const bool script = context == JsonContext::kInlineScript;
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    uint32_t cp;
    const size_t n = DecodeUtf8(s, i, &cp);
    if (n == 0) {
      out->append(kReplacement.data(), kReplacement.size());
      ++i;
      continue;
    }
    if (n > 1) {
      if (script && (cp == 0x2028 || cp == 0x2029)) {
        absl::StrAppendFormat(out, "\\u%04x", cp);
      } else {
        out->append(s.data() + i, n);
      }
      i += n;
      continue;
    }
    const char c = s[i];
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\r':
        out->append(script ? "\\u000d" : "\\r");
        break;
      case '<':
      case '>':
      case '&':
        if (script) {
          absl::StrAppendFormat(out, "\\u%04x", cp);
        } else {
          out->push_back(c);
        }
        break;
      default:
        if (cp < 0x20 || (script && cp == 0x7f)) {
          absl::StrAppendFormat(out, "\\u%04x", cp);
        } else {
          out->push_back(c);
        }
    }
    ++i;
  }
  out->push_back('"');
}

}  // namespace taskfork::reporter_internal
