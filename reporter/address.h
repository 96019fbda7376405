// ReporterAddress: where a reporter client or subscriber connects, parsed
// from one string: a Unix socket path ("/run/x/reporter.sock" or
// "unix:/run/x/reporter.sock") or a TCP endpoint ("tcp:HOST:PORT", an IPv6
// host in brackets: "tcp:[::1]:4242").
//
//   TASKFORK_ASSIGN_OR_RETURN(ReporterAddress a, ParseReporterAddress("tcp:node7:4242"));
//   if (a.kind == ReporterAddress::Kind::kTcp) { ... a.host, a.port ... }
//   std::string s = a.ToString();  // "tcp:node7:4242"
#ifndef TASKFORK_REPORTER_ADDRESS_H_
#define TASKFORK_REPORTER_ADDRESS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace taskfork::reporter {

struct ReporterAddress {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string path;  // kUnix: the socket path
  std::string host;  // kTcp: a name or numeric address, without brackets
  uint16_t port = 0;  // kTcp: 1-65535 to connect; 0 (ephemeral) to listen

  // "unix:PATH" or "tcp:HOST:PORT" (brackets around a host with ':').
  std::string ToString() const;
};

// Parses a client address: "unix:PATH", "tcp:HOST:PORT" or a plain path
// (anything without a "word:" scheme prefix). Errors: kInvalidArgument
// naming `address` and what is wrong (empty, empty path or host, port not
// 1-65535, unknown scheme such as "udp:").
absl::StatusOr<ReporterAddress> ParseReporterAddress(absl::string_view address);

// Parses a listen address "HOST:PORT" ("0.0.0.0:0", "[::]:4242",
// "node7:0"); port 0 asks for an ephemeral port. Errors: kInvalidArgument
// naming `address`.
absl::StatusOr<ReporterAddress> ParseListenAddress(absl::string_view address);

}  // namespace taskfork::reporter

#endif  // TASKFORK_REPORTER_ADDRESS_H_
