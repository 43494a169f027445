#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/scan/scanner.h"

namespace switchboard::scan {

struct ClamdOptions {
  // Where clamd listens: "unix:/run/clamav/clamd.ctl" (clamd.conf's
  // LocalSocket; a bare absolute path works too) or "host:port" (TCPSocket,
  // TCPAddr; "[::1]:3310" for IPv6). Host names are resolved on each call,
  // before the deadline applies.
  std::string address;
  // Bytes per INSTREAM chunk (at most 2^32-1).
  size_t chunk_bytes = 64 * 1024;
};

// A client of ClamAV's daemon, clamd, speaking its socket protocol:
// zPING (answered "PONG") and zINSTREAM, which sends the file as chunks each
// preceded by its length (4 bytes, big-endian), ends with a zero length, and
// reads one reply: "stream: OK", "stream: <signature> FOUND", or
// "<reason> ERROR" ("INSTREAM size limit exceeded. ERROR" past clamd.conf's
// StreamMaxLength).
//
// Each call opens its own connection, so the client is thread-safe and
// holds no state; clamd scans up to MaxThreads streams at once.
class ClamdClient : public Scanner {
 public:
  // INVALID_ARGUMENT if `options.address` is neither form (or a socket path
  // longer than a unix socket address holds) or `chunk_bytes` is out of
  // range; nothing is connected yet.
  static absl::StatusOr<std::unique_ptr<ClamdClient>> Create(ClamdOptions options);

  // OK if clamd answers PONG by `deadline`, else UNAVAILABLE.
  absl::Status Ping(absl::Time deadline) const;

  // See Scanner::Scan. A scan that clamd ends by closing the connection
  // without a reply is UNAVAILABLE too.
  absl::StatusOr<ScanVerdict> Scan(absl::string_view bytes, absl::Time deadline) override;

  const std::string& address() const { return options_.address; }

 private:
  ClamdClient(ClamdOptions options, std::string socket_path, std::string host, std::string port)
      : options_(std::move(options)),
        socket_path_(std::move(socket_path)),
        host_(std::move(host)),
        port_(std::move(port)) {}

  class Connection;
  absl::StatusOr<Connection> Connect(absl::Time deadline) const;

  const ClamdOptions options_;
  // Either the unix socket's path, or the host and port.
  const std::string socket_path_;
  const std::string host_;
  const std::string port_;
};

// Parses one clamd INSTREAM reply (without its terminating NUL).
absl::StatusOr<ScanVerdict> ParseScanReply(absl::string_view reply);

}  // namespace switchboard::scan
