#include "libs/testing/process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/metrics/scrape.h"

namespace switchboard::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args,
                             std::string log_path)
    : log_path_(std::move(log_path)) {
  log_offset_ = log().size();
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string path = absl::StrCat(srcdir ? srcdir : ".", "/switchboard/", binary);
  args.insert(args.begin(), path);
  pid_ = fork();
  if (pid_ == 0) {
    const int log = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(log, STDERR_FILENO);
    std::vector<char*> argv;
    for (std::string& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  running_ = true;
  AwaitStart(absl::Now() + absl::Seconds(30), /*standby_ends_wait=*/true);
}

void ServerProcess::AwaitStart(absl::Time give_up, bool standby_ends_wait) {
  const std::regex started(
      "\"event\":\"server_started\".*\"grpc_port\":([0-9]+),\"metrics_port\":([0-9]+)");
  const std::regex standby(
      "\"event\":\"standby\".*\"metrics_port\":([0-9]+),\"forwarding_port\":([0-9]+)");
  while (absl::Now() < give_up) {
    const std::string text = log().substr(std::min(log_offset_, log().size()));
    std::smatch match;
    if (std::regex_search(text, match, started)) {
      grpc_port_ = std::stoi(match[1]);
      metrics_port_ = std::stoi(match[2]);
      forwarding_port_ = 0;
      standby_ = false;
      return;
    }
    if (standby_ends_wait && std::regex_search(text, match, standby)) {
      metrics_port_ = std::stoi(match[1]);
      forwarding_port_ = std::stoi(match[2]);
      standby_ = true;
      return;
    }
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      running_ = false;
      return;
    }
    usleep(20'000);
  }
}

bool ServerProcess::WaitUntilServing(absl::Duration limit) {
  if (running_ && grpc_port_ == 0) AwaitStart(absl::Now() + limit, /*standby_ends_wait=*/false);
  return grpc_port_ != 0;
}

ServerProcess::~ServerProcess() {
  if (running_) Kill();
}

std::string ServerProcess::address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

std::string ServerProcess::log() const { return ReadFile(log_path_); }

int ServerProcess::Terminate(absl::Duration limit) {
  if (!running_) return -1;
  kill(pid_, SIGTERM);
  const absl::Time give_up = absl::Now() + limit;
  int status = 0;
  while (absl::Now() < give_up) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      running_ = false;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    usleep(20'000);
  }
  Kill();
  return -1;
}

bool ServerProcess::WaitForExit(absl::Duration limit) {
  const absl::Time give_up = absl::Now() + limit;
  while (running_) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      running_ = false;
      break;
    }
    if (absl::Now() >= give_up) break;
    usleep(20'000);
  }
  return !running_;
}

void ServerProcess::Kill() {
  if (!running_) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  running_ = false;
}

bool AcceptsConnections(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address = {};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool connected =
      connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return connected;
}

int LeaderGauge(const ServerProcess& process, const std::string& service) {
  absl::StatusOr<std::string> metrics = metrics::ScrapeMetrics("127.0.0.1", process.metrics_port());
  if (!metrics.ok()) return -1;
  const std::regex gauge(
      absl::StrCat("\nswitchboard_leader\\{service=\"", service, "\"\\} ([01])\n"));
  std::smatch match;
  if (!std::regex_search(*metrics, match, gauge)) return -1;
  return std::stoi(match[1]);
}

std::optional<absl::Duration> KillAndTakeOver(ServerProcess& leader, ServerProcess& standby,
                                              absl::Duration limit) {
  const absl::Time killed = absl::Now();
  leader.Kill();
  if (!standby.WaitUntilServing(limit)) return std::nullopt;
  return absl::Now() - killed;
}

}  // namespace switchboard::testing
