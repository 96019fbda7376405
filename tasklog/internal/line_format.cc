#include "tasklog/internal/line_format.h"

#include <cstring>

namespace taskfork::tasklog_internal {
namespace {

// Writes `value` (0 <= value < 10^width) as exactly `width` digits.
char* PutFixed(char* out, int64_t value, int width) {
  for (int i = width - 1; i >= 0; --i) {
    out[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return out + width;
}

// Days since 1970-01-01 -> proleptic Gregorian (year, month, day); the
// algorithm of Howard Hinnant's "chrono-Compatible Low-Level Date Algorithms".
void CivilFromDays(int64_t days, int64_t* year, int* month, int* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;  // [0, 146096]
  const int64_t yoe =
      (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;    // [0, 399]
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);  // [0, 365]
  const int64_t mp = (5 * doy + 2) / 153;                       // [0, 11]
  *day = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  *month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  *year = yoe + era * 400 + (*month <= 2 ? 1 : 0);
}

}  // namespace

char SeverityLetter(int severity) {
  static constexpr char kLetters[] = {'I', 'W', 'E', 'F'};
  return severity >= 0 && severity < 4 ? kLetters[severity] : '?';
}

size_t FormatInt(int64_t value, char* out) {
  char digits[20];
  int n = 0;
  // Negate through unsigned arithmetic so INT64_MIN is exact.
  uint64_t magnitude = value < 0 ? 0 - static_cast<uint64_t>(value)
                                 : static_cast<uint64_t>(value);
  do {
    digits[n++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  size_t len = 0;
  if (value < 0) out[len++] = '-';
  while (n > 0) out[len++] = digits[--n];
  return len;
}

size_t FormatPrefix(int64_t unix_seconds, int32_t micros, char severity,
                    pid_t pid, pid_t tid, const char* file, int line,
                    char* out) {
  // 9999-12-31T23:59:59 and 0000-01-01T00:00:00 in Unix seconds.
  constexpr int64_t kMaxSeconds = 253402300799;
  constexpr int64_t kMinSeconds = -62167219200;
  if (unix_seconds > kMaxSeconds) unix_seconds = kMaxSeconds;
  if (unix_seconds < kMinSeconds) unix_seconds = kMinSeconds;
  if (micros < 0) micros = 0;
  if (micros > 999999) micros = 999999;

  int64_t days = unix_seconds / 86400;
  int64_t second_of_day = unix_seconds % 86400;
  if (second_of_day < 0) {
    second_of_day += 86400;
    --days;
  }
  int64_t year;
  int month, day;
  CivilFromDays(days, &year, &month, &day);

  char* p = out;
  p = PutFixed(p, year, 4);
  *p++ = '-';
  p = PutFixed(p, month, 2);
  *p++ = '-';
  p = PutFixed(p, day, 2);
  *p++ = 'T';
  p = PutFixed(p, second_of_day / 3600, 2);
  *p++ = ':';
  p = PutFixed(p, second_of_day / 60 % 60, 2);
  *p++ = ':';
  p = PutFixed(p, second_of_day % 60, 2);
  *p++ = '.';
  p = PutFixed(p, micros, 6);
  *p++ = 'Z';
  *p++ = ' ';
  *p++ = severity;
  *p++ = ' ';
  p += FormatInt(pid, p);
  *p++ = ' ';
  p += FormatInt(tid, p);
  *p++ = ' ';
  if (file == nullptr || file[0] == '\0') file = "-";
  size_t file_len = std::strlen(file);
  if (file_len > kMaxFileNameInPrefix) {
    file += file_len - kMaxFileNameInPrefix;
    file_len = kMaxFileNameInPrefix;
  }
  std::memcpy(p, file, file_len);
  p += file_len;
  *p++ = ':';
  p += FormatInt(line, p);
  *p++ = ']';
  *p++ = ' ';
  return static_cast<size_t>(p - out);
}

}  // namespace taskfork::tasklog_internal
