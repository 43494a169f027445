#pragma once

#include <string>

namespace switchboard::testing {

// A real single-node Apache Kafka broker (KRaft) for a test, started with
// tools/kafka/broker.sh on a free loopback port with its data in a temporary
// folder. The test target needs `data = ["//tools/kafka:broker"]`, and the
// machine needs tools/setup.sh (which installs the broker): without it the
// constructor aborts the test with that advice, it never skips.
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
  std::string dir_;
  int port_ = 0;
  std::string address_;
  bool running_ = false;
};

}  // namespace switchboard::testing
