#include "libs/testing/kafka_broker.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "libs/storage/test_dir.h"

namespace switchboard::testing {
namespace {

constexpr int kStartAttempts = 3;

std::string Script() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/switchboard/tools/kafka/broker.sh");
}

}  // namespace

KafkaBroker::KafkaBroker() {
  for (int attempt = 1; attempt <= kStartAttempts; ++attempt) {
    // A fresh folder each time: a formatted one remembers its controller.
    dir_ = storage::MakeTempDir() + "/kafka";
    ReservePorts();
    if (TryStart()) return;
    std::fprintf(stderr, "Kafka broker did not start on %s (attempt %d); see %s/kafka.log\n",
                 address_.c_str(), attempt, dir_.c_str());
    Stop();
  }
  std::fprintf(stderr,
               "could not start the Kafka broker (%s); is it installed? run tools/setup.sh\n",
               Script().c_str());
  std::abort();
}

KafkaBroker::~KafkaBroker() {
  if (running_) Stop();
}

void KafkaBroker::ReservePorts() {
  for (int attempt = 0; attempt < 100; ++attempt) {
    ReservedPort port;
    ReservedPort controller(port.port() + 1);
    if (!controller.held()) continue;
    port_ = std::move(port);
    controller_port_ = std::move(controller);
    address_ = port_.address();
    return;
  }
  std::fprintf(stderr, "no two adjacent free ports for the Kafka broker\n");
  std::abort();
}

bool KafkaBroker::TryStart() {
  const std::string command = absl::StrCat("bash ", Script(), " start ", dir_, " ",
                                           port_.port(), " >/dev/null");
  running_ = std::system(command.c_str()) == 0;
  return running_;
}

void KafkaBroker::Start() {
  if (!TryStart()) {
    std::fprintf(stderr, "could not restart the Kafka broker on %s; see %s/kafka.log\n",
                 address_.c_str(), dir_.c_str());
    std::abort();
  }
}

void KafkaBroker::Stop() {
  const std::string command = absl::StrCat("bash ", Script(), " stop ", dir_);
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "stopping the Kafka broker failed (%s)\n", command.c_str());
  }
  running_ = false;
}

}  // namespace switchboard::testing
