#include "reporter/address.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace taskfork::reporter {
namespace {

absl::Status Malformed(absl::string_view address, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(
      "malformed reporter address \"", address, "\": ", why,
      " (expected a socket path, unix:PATH or tcp:HOST:PORT)"));
}

absl::Status MalformedListen(absl::string_view address, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("malformed reporter listen address \"", address, "\": ",
                   why, " (expected HOST:PORT, port 0 for any)"));
}

// "HOST:PORT" or "[V6]:PORT" into host and port; errors name `whole`.
absl::StatusOr<ReporterAddress> ParseHostPort(absl::string_view whole,
                                              absl::string_view text,
                                              bool allow_port_zero) {
  const auto bad = allow_port_zero ? MalformedListen : Malformed;
  ReporterAddress a;
  a.kind = ReporterAddress::Kind::kTcp;
  absl::string_view port_text;
  if (absl::StartsWith(text, "[")) {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) {
      return bad(whole, "'[' without ']' around the host");
    }
    a.host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (!absl::StartsWith(rest, ":")) {
      return bad(whole, "no :PORT after the bracketed host");
    }
    port_text = rest.substr(1);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == absl::string_view::npos) {
      return bad(whole, "no :PORT after the host");
    }
    a.host = std::string(text.substr(0, colon));
    if (a.host.find(':') != std::string::npos) {
      return bad(whole, "an IPv6 host must be in brackets ([::1]:PORT)");
    }
    port_text = text.substr(colon + 1);
  }
  if (a.host.empty()) return bad(whole, "empty host");
  uint32_t port = 0;
  if (port_text.empty() ||
      !std::all_of(port_text.begin(), port_text.end(), absl::ascii_isdigit) ||
      !absl::SimpleAtoi(port_text, &port) || port > 65535 ||
      (port == 0 && !allow_port_zero)) {
    return bad(whole, absl::StrCat("port \"", port_text, "\" is not ",
                                         allow_port_zero ? "0" : "1",
                                         "-65535"));
  }
  a.port = static_cast<uint16_t>(port);
  return a;
}

}  // namespace

std::string ReporterAddress::ToString() const {
  if (kind == Kind::kUnix) return absl::StrCat("unix:", path);
  if (host.find(':') != std::string::npos) {
    return absl::StrCat("tcp:[", host, "]:", port);
  }
  return absl::StrCat("tcp:", host, ":", port);
}

absl::StatusOr<ReporterAddress> ParseReporterAddress(absl::string_view address) {
  if (address.empty()) return Malformed(address, "empty");
  if (absl::StartsWith(address, "tcp:")) {
    return ParseHostPort(address, address.substr(4), /*allow_port_zero=*/false);
  }
  ReporterAddress a;
  a.kind = ReporterAddress::Kind::kUnix;
  if (absl::StartsWith(address, "unix:")) {
    a.path = std::string(address.substr(5));
    if (a.path.empty()) return Malformed(address, "empty socket path");
    return a;
  }
  // "word:..." with a scheme we do not know is a mistake, not a path.
  const size_t colon = address.find(':');
  if (colon != absl::string_view::npos && colon > 0 &&
      std::all_of(address.begin(), address.begin() + colon,
                  [](char c) { return absl::ascii_isalpha(c); })) {
    return Malformed(address, absl::StrCat("unknown scheme \"",
                                           address.substr(0, colon + 1), "\""));
  }
  a.path = std::string(address);
  return a;
}

absl::StatusOr<ReporterAddress> ParseListenAddress(absl::string_view address) {
  if (address.empty()) return MalformedListen(address, "empty");
  return ParseHostPort(address, address, /*allow_port_zero=*/true);
}

}  // namespace taskfork::reporter
