#include "libs/testing/kafka_broker.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "libs/storage/test_dir.h"

namespace switchboard::testing {
namespace {

bool PortFree(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(port);
  const bool free = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return free;
}

// A port p with p and p+1 (the controller's) both free.
int FreePortPair() {
  for (int attempt = 0; attempt < 200; ++attempt) {
    const int port = 20000 + (getpid() * 7919 + attempt * 104729) % 40000;
    if (PortFree(port) && PortFree(port + 1)) return port;
  }
  std::fprintf(stderr, "no free port pair for the Kafka broker\n");
  std::abort();
}

std::string Script() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return absl::StrCat(srcdir ? srcdir : ".", "/switchboard/tools/kafka/broker.sh");
}

}  // namespace

KafkaBroker::KafkaBroker() : dir_(storage::MakeTempDir() + "/kafka"), port_(FreePortPair()) {
  address_ = absl::StrCat("127.0.0.1:", port_);
  Start();
}

KafkaBroker::~KafkaBroker() {
  if (running_) Stop();
}

void KafkaBroker::Start() {
  const std::string command =
      absl::StrCat("bash ", Script(), " start ", dir_, " ", port_, " >/dev/null");
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr,
                 "could not start the Kafka broker (%s); is it installed? run "
                 "tools/setup.sh\n",
                 command.c_str());
    std::abort();
  }
  running_ = true;
}

void KafkaBroker::Stop() {
  const std::string command = absl::StrCat("bash ", Script(), " stop ", dir_);
  if (std::system(command.c_str()) != 0) {
    std::fprintf(stderr, "stopping the Kafka broker failed (%s)\n", command.c_str());
  }
  running_ = false;
}

}  // namespace switchboard::testing
