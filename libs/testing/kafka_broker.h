#pragma once

#include <string>

#include "libs/testing/reserved_port.h"

namespace switchboard::testing {

// A real single-node Apache Kafka broker (KRaft) for a test, started with
// tools/kafka/broker.sh on loopback with its data in a temporary folder. The
// test target needs `data = ["//tools/kafka:broker"]`, and the machine needs
// tools/setup.sh (which installs the broker): without it the constructor
// aborts the test with that advice, it never skips.
//
// Kafka needs its ports in its configuration, so the broker's port and its
// controller's (port + 1) are reserved (ReservedPort) for the broker's whole
// life, restarts included: no other process can take them in between. A
// first start that fails anyway is retried on fresh ports.
class KafkaBroker {
 public:
  KafkaBroker();
  ~KafkaBroker();
  KafkaBroker(const KafkaBroker&) = delete;
  KafkaBroker& operator=(const KafkaBroker&) = delete;

  // "127.0.0.1:PORT", for bootstrap.servers.
  const std::string& address() const { return address_; }

  // Stops the broker (keeping its data) and starts it again on the same
  // port, for outage tests.
  void Stop();
  void Start();

 private:
  // Reserves a port and the one above it.
  void ReservePorts();
  // Runs broker.sh start; false if the broker did not come up.
  bool TryStart();

  std::string dir_;
  ReservedPort port_;
  ReservedPort controller_port_;
  std::string address_;
  bool running_ = false;
};

}  // namespace switchboard::testing
