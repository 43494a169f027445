#pragma once

#include <string>

namespace switchboard::testing {

// A TCP port on 127.0.0.1 held for a server that a test starts later, so that
// no other process can take it in between (the race of "find a free port,
// close it, pass the number on").
//
// The port is held by a socket that binds it exclusively (so two
// reservations never share a port), then turns on SO_REUSEADDR and
// SO_REUSEPORT and never listens. Servers that set SO_REUSEADDR (gRPC,
// prometheus-cpp's civetweb, Kafka's JVM, Go's Prometheus) can then bind and
// listen on it, and connections go to them only, since the holder does not
// listen. Other binds fail, and the kernel never hands the port out to a bind
// on port 0. Hold it as long as a server may (re)start on the port.
//
// Use port 0 and read the port back from the server instead wherever the
// number is not needed before the server starts.
class ReservedPort {
 public:
  // Holds a port the kernel picks. Aborts the test binary if it cannot (no
  // test can go on without one).
  ReservedPort();
  // Holds `port` if it is free; `held()` tells whether it was.
  explicit ReservedPort(int port);
  ~ReservedPort();
  ReservedPort(ReservedPort&& other) noexcept;
  ReservedPort& operator=(ReservedPort&& other) noexcept;
  ReservedPort(const ReservedPort&) = delete;
  ReservedPort& operator=(const ReservedPort&) = delete;

  bool held() const { return fd_ >= 0; }
  int port() const { return port_; }
  // "127.0.0.1:PORT".
  std::string address() const;

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace switchboard::testing
