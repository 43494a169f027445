#include "libs/testing/fake_s3/fake_s3.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/time/clock.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"

namespace switchboard::testing {
namespace {

constexpr char kGofakes3[] = "/usr/local/bin/gofakes3";

}  // namespace

FakeS3Server::FakeS3Server() : log_path_(storage::MakeTempDir() + "/gofakes3.log") {
  if (access(kGofakes3, X_OK) != 0) {
    std::fprintf(stderr, "FakeS3Server: no %s; run tools/setup.sh\n", kGofakes3);
    std::abort();
  }
  const std::string host = port_.address();
  pid_ = fork();
  if (pid_ == 0) {
    const int out = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    execl(kGofakes3, kGofakes3, "-host", host.c_str(), "-backend", "memory", "-initialbucket",
          kBucket, static_cast<char*>(nullptr));
    _exit(127);
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!Accepts()) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_ || absl::Now() > give_up) {
      std::fprintf(stderr, "FakeS3Server: gofakes3 did not start; its log:\n%s\n",
                   ReadFile(log_path_).c_str());
      std::abort();
    }
    usleep(20'000);
  }
}

FakeS3Server::~FakeS3Server() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

void FakeS3Server::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool FakeS3Server::Accepts() const {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port_.port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool accepted = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return accepted;
}

}  // namespace switchboard::testing
