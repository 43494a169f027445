#include "libs/metrics/scrape.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::metrics {
namespace {

// Closes a socket when it goes out of scope.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  const int fd_;
};

absl::Status Unavailable(absl::string_view what, absl::string_view host,
                         int port) {
  return absl::UnavailableError(absl::StrCat(what, " ", host, ":", port, ": ",
                                             std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::string> ScrapeMetrics(absl::string_view host, int port) {
  return HttpGet(host, port, "/metrics");
}

absl::StatusOr<std::string> HttpGet(absl::string_view host, int port,
                                    absl::string_view target) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const std::string host_string(host);
  if (getaddrinfo(host_string.c_str(), std::to_string(port).c_str(), &hints,
                  &addresses) != 0 ||
      addresses == nullptr) {
    return absl::UnavailableError(absl::StrCat("bad address ", host));
  }
  Socket conn(socket(addresses->ai_family, SOCK_STREAM, 0));
  bool connected = false;
  if (conn.fd() >= 0) {
    timeval timeout{};
    timeout.tv_sec = 5;
    setsockopt(conn.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(conn.fd(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    connected =
        connect(conn.fd(), addresses->ai_addr, addresses->ai_addrlen) == 0;
  }
  freeaddrinfo(addresses);
  if (!connected) return Unavailable("cannot connect to", host, port);

  // HTTP/1.0: the server closes the connection after the body, which marks
  // its end without parsing chunked encoding.
  const std::string request =
      absl::StrCat("GET ", target, " HTTP/1.0\r\nHost: ", host, ":", port,
                   "\r\nAccept: text/plain\r\n\r\n");
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(conn.fd(), request.data() + sent,
                     request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return Unavailable("cannot send to", host, port);
    sent += n;
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    ssize_t n = recv(conn.fd(), buffer, sizeof(buffer), 0);
    if (n == 0) break;
    if (n < 0) return Unavailable("cannot read from", host, port);
    response.append(buffer, n);
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  const size_t body = response.find("\r\n\r\n");
  if (!absl::StartsWith(status_line, "HTTP/1.") ||
      status_line.substr(status_line.find(' ') + 1, 3) != "200" ||
      body == std::string::npos) {
    return absl::InternalError(absl::StrCat("unexpected answer from ", host,
                                            ":", port, ": ", status_line));
  }
  return response.substr(body + 4);
}

}  // namespace switchboard::metrics
