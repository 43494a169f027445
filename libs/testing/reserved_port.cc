#include "libs/testing/reserved_port.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"

namespace switchboard::testing {
namespace {

// A socket bound to 127.0.0.1:`port` (0: the kernel picks), or -1. It binds
// without SO_REUSEADDR and SO_REUSEPORT, so the bind fails while anything
// else holds the port (another reservation included), and sets them only
// afterwards, so that the server the port is for can bind beside it.
int Bind(int port, int* bound_port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int on = 1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    return -1;
  }
  *bound_port = ntohs(address.sin_port);
  return fd;
}

}  // namespace

ReservedPort::ReservedPort() {
  fd_ = Bind(0, &port_);
  if (fd_ < 0) {
    std::perror("ReservedPort: cannot bind a port on 127.0.0.1");
    std::abort();
  }
}

ReservedPort::ReservedPort(int port) {
  int bound = 0;
  fd_ = Bind(port, &bound);
  if (fd_ >= 0) port_ = bound;
}

ReservedPort::~ReservedPort() {
  if (fd_ >= 0) close(fd_);
}

ReservedPort::ReservedPort(ReservedPort&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(std::exchange(other.port_, 0)) {}

ReservedPort& ReservedPort::operator=(ReservedPort&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = std::exchange(other.port_, 0);
  }
  return *this;
}

std::string ReservedPort::address() const { return absl::StrCat("127.0.0.1:", port_); }

}  // namespace switchboard::testing
