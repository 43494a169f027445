#include "libs/testing/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace switchboard::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args,
                             std::string log_path)
    : ServerProcess(binary, std::move(args), std::move(log_path), absl::Seconds(30)) {}

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args,
                             std::string log_path, absl::Duration wait_for_start)
    : log_path_(std::move(log_path)) {
  const size_t log_offset = log().size();
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
  const std::regex started(
      "\"event\":\"server_started\".*\"grpc_port\":([0-9]+),\"metrics_port\":([0-9]+)");
  const absl::Time give_up = absl::Now() + wait_for_start;
  while (absl::Now() < give_up) {
    // Only this run's lines count: the log may hold earlier runs.
    const std::string text = log().substr(std::min(log_offset, log().size()));
    std::smatch match;
    if (std::regex_search(text, match, started)) {
      grpc_port_ = std::stoi(match[1]);
      metrics_port_ = std::stoi(match[2]);
      break;
    }
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
      running_ = false;
      break;
    }
    usleep(20'000);
  }
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

}  // namespace switchboard::testing
