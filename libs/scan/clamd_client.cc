#include "libs/scan/clamd_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace switchboard::scan {
namespace {

// clamd's replies are one line; anything longer is not clamd.
constexpr size_t kMaxReply = 4096;
// After clamd cuts a stream off (too large), how long to wait for the reason.
constexpr absl::Duration kReplyAfterCutOff = absl::Seconds(1);

std::string ErrnoText(int error) { return std::strerror(error); }

}  // namespace

// One connection to clamd, closed on destruction. Every wait ends at the
// caller's deadline.
class ClamdClient::Connection {
 public:
  Connection(int fd, std::string address) : fd_(fd), address_(std::move(address)) {}
  ~Connection() {
    if (fd_ >= 0) close(fd_);
  }
  Connection(Connection&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)), address_(std::move(other.address_)) {}
  Connection& operator=(Connection&&) = delete;

  // Connects the non-blocking socket `fd_` to `address`.
  absl::Status Open(const sockaddr* address, socklen_t length, absl::Time deadline) {
    if (connect(fd_, address, length) == 0) return absl::OkStatus();
    // A unix socket whose backlog is full says EAGAIN: clamd is overloaded.
    if (errno != EINPROGRESS) return Unavailable(absl::StrCat("connect: ", ErrnoText(errno)));
    if (absl::Status waited = Wait(POLLOUT, deadline); !waited.ok()) return waited;
    int error = 0;
    socklen_t size = sizeof(error);
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &size) != 0) error = errno;
    if (error != 0) return Unavailable(absl::StrCat("connect: ", ErrnoText(error)));
    return absl::OkStatus();
  }

  absl::Status Send(absl::string_view data, absl::Time deadline) {
    while (!data.empty()) {
      const ssize_t sent = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (sent >= 0) {
        data.remove_prefix(sent);
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (absl::Status waited = Wait(POLLOUT, deadline); !waited.ok()) return waited;
      } else if (errno != EINTR) {
        return Unavailable(absl::StrCat("send: ", ErrnoText(errno)));
      }
    }
    return absl::OkStatus();
  }

  // One reply, up to its terminating NUL (or the end of the connection).
  absl::StatusOr<std::string> ReadReply(absl::Time deadline) {
    std::string reply;
    char buffer[512];
    while (true) {
      const ssize_t got = recv(fd_, buffer, sizeof(buffer), 0);
      if (got > 0) {
        reply.append(buffer, got);
        const size_t end = reply.find('\0');
        if (end != std::string::npos) return reply.substr(0, end);
        if (reply.size() > kMaxReply) {
          return absl::InternalError(absl::StrCat("clamd at ", address_, ": reply too long"));
        }
      } else if (got == 0) {
        if (!reply.empty()) return reply;
        return Unavailable("closed the connection without a reply");
      } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (absl::Status waited = Wait(POLLIN, deadline); !waited.ok()) return waited;
      } else if (errno != EINTR) {
        return Unavailable(absl::StrCat("recv: ", ErrnoText(errno)));
      }
    }
  }

 private:
  absl::Status Wait(short events, absl::Time deadline) {
    while (true) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return Unavailable("deadline exceeded");
      pollfd poll_fd{fd_, events, 0};
      // Rounded up, and at most a minute at a time (the deadline may be
      // infinite).
      const int64_t ms = absl::ToInt64Milliseconds(std::min(left, absl::Minutes(1))) + 1;
      const int ready = poll(&poll_fd, 1, static_cast<int>(ms));
      if (ready > 0) return absl::OkStatus();
      if (ready < 0 && errno != EINTR) return Unavailable(absl::StrCat("poll: ", ErrnoText(errno)));
    }
  }

  absl::Status Unavailable(absl::string_view what) const {
    return absl::UnavailableError(absl::StrCat("clamd at ", address_, ": ", what));
  }

  int fd_;
  std::string address_;
};

absl::StatusOr<std::unique_ptr<ClamdClient>> ClamdClient::Create(ClamdOptions options) {
  absl::string_view address = options.address;
  // A chunk's length travels in 4 bytes.
  if (options.chunk_bytes == 0 || options.chunk_bytes > UINT32_MAX) {
    return absl::InvalidArgumentError("clamd chunk_bytes: must be 1 to 2^32-1");
  }
  if (absl::ConsumePrefix(&address, "unix:") || absl::StartsWith(address, "/")) {
    if (!absl::StartsWith(address, "/") || address.size() >= sizeof(sockaddr_un::sun_path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("clamd address \"", options.address,
                       "\": a unix socket needs an absolute path of at most ",
                       sizeof(sockaddr_un::sun_path) - 1, " bytes"));
    }
    std::string path(address);
    return std::unique_ptr<ClamdClient>(new ClamdClient(std::move(options), path, "", ""));
  }
  const size_t colon = address.rfind(':');
  int port = 0;
  absl::string_view host = address.substr(0, colon == absl::string_view::npos ? 0 : colon);
  if (absl::ConsumePrefix(&host, "[")) {
    if (!absl::ConsumeSuffix(&host, "]")) host = "";
  }
  if (colon == absl::string_view::npos || host.empty() ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("clamd address \"", options.address,
                     "\": expected unix:/path/to/socket or host:port"));
  }
  // Copied before `options` (which `host` points into) moves.
  std::string host_name(host);
  return std::unique_ptr<ClamdClient>(
      new ClamdClient(std::move(options), "", std::move(host_name), absl::StrCat(port)));
}

absl::StatusOr<ClamdClient::Connection> ClamdClient::Connect(absl::Time deadline) const {
  if (!socket_path_.empty()) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
    const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", ErrnoText(errno)));
    Connection connection(fd, options_.address);
    absl::Status opened =
        connection.Open(reinterpret_cast<const sockaddr*>(&address), sizeof(address), deadline);
    if (!opened.ok()) return opened;
    return connection;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int error = getaddrinfo(host_.c_str(), port_.c_str(), &hints, &found); error != 0) {
    return absl::UnavailableError(
        absl::StrCat("clamd at ", options_.address, ": cannot resolve: ", gai_strerror(error)));
  }
  absl::Status last = absl::UnavailableError(
      absl::StrCat("clamd at ", options_.address, ": the name has no address"));
  for (const addrinfo* each = found; each != nullptr; each = each->ai_next) {
    const int fd = socket(each->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    Connection connection(fd, options_.address);
    last = connection.Open(each->ai_addr, each->ai_addrlen, deadline);
    if (last.ok()) {
      freeaddrinfo(found);
      return connection;
    }
  }
  freeaddrinfo(found);
  return last;
}

absl::Status ClamdClient::Ping(absl::Time deadline) const {
  absl::StatusOr<Connection> connection = Connect(deadline);
  if (!connection.ok()) return connection.status();
  if (absl::Status sent = connection->Send(absl::string_view("zPING\0", 6), deadline);
      !sent.ok()) {
    return sent;
  }
  absl::StatusOr<std::string> reply = connection->ReadReply(deadline);
  if (!reply.ok()) return reply.status();
  if (*reply != "PONG") {
    return absl::UnavailableError(
        absl::StrCat("clamd at ", options_.address, ": PING answered \"", *reply, "\""));
  }
  return absl::OkStatus();
}

absl::StatusOr<ScanVerdict> ClamdClient::Scan(absl::string_view bytes, absl::Time deadline) {
  absl::StatusOr<Connection> connection = Connect(deadline);
  if (!connection.ok()) return connection.status();
  absl::Status sent = connection->Send(absl::string_view("zINSTREAM\0", 10), deadline);
  // The chunks, then a zero length that ends the stream.
  for (size_t at = 0; sent.ok(); at += options_.chunk_bytes) {
    const absl::string_view chunk = bytes.substr(std::min(at, bytes.size()), options_.chunk_bytes);
    const uint32_t size = chunk.size();
    const char header[4] = {static_cast<char>(size >> 24), static_cast<char>(size >> 16),
                            static_cast<char>(size >> 8), static_cast<char>(size)};
    sent = connection->Send(absl::string_view(header, 4), deadline);
    if (sent.ok()) sent = connection->Send(chunk, deadline);
    if (chunk.empty()) break;
  }
  if (!sent.ok()) {
    // clamd stops reading a stream past StreamMaxLength and says so before
    // closing; that reason beats the broken pipe.
    absl::StatusOr<std::string> reason =
        connection->ReadReply(std::min(deadline, absl::Now() + kReplyAfterCutOff));
    return reason.ok() ? ParseScanReply(*reason) : sent;
  }
  absl::StatusOr<std::string> reply = connection->ReadReply(deadline);
  if (!reply.ok()) return reply.status();
  return ParseScanReply(*reply);
}

absl::StatusOr<ScanVerdict> ParseScanReply(absl::string_view reply) {
  absl::string_view rest = reply;
  if (absl::ConsumePrefix(&rest, "stream: ")) {
    if (rest == "OK") return ScanVerdict::Clean();
    if (absl::ConsumeSuffix(&rest, " FOUND") && !rest.empty()) {
      return ScanVerdict::Infected(std::string(rest));
    }
  }
  if (absl::EndsWith(reply, " ERROR")) {
    if (absl::StrContains(reply, "size limit exceeded")) {
      return absl::ResourceExhaustedError(
          absl::StrCat("clamd: the file is larger than its StreamMaxLength (", reply, ")"));
    }
    return absl::InternalError(absl::StrCat("clamd: ", reply));
  }
  return absl::InternalError(absl::StrCat("clamd: unexpected reply \"", reply, "\""));
}

}  // namespace switchboard::scan
