#include "libs/testing/clamd/clamd.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"

namespace switchboard::testing {
namespace {

constexpr char kClamd[] = "/usr/sbin/clamd";

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out.good()) {
    std::fprintf(stderr, "ClamdServer: cannot write %s\n", path.c_str());
    std::abort();
  }
}

}  // namespace

std::string Eicar() {
  return absl::StrCat("X5O!P%@AP[4\\PZX54(P^)7CC)7}$", "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*");
}

ClamdServer::ClamdServer() : dir_(storage::MakeTempDir()) {
  if (access(kClamd, X_OK) != 0) {
    std::fprintf(stderr, "ClamdServer: no %s; run tools/setup.sh (clamav-daemon)\n", kClamd);
    std::abort();
  }
  char socket_dir[] = "/tmp/sb-clamd-XXXXXX";
  if (mkdtemp(socket_dir) == nullptr) {
    std::perror("ClamdServer: mkdtemp under /tmp");
    std::abort();
  }
  socket_dir_ = socket_dir;
  socket_path_ = socket_dir_ + "/clamd.sock";
  mkdir((dir_ + "/db").c_str(), 0700);
  mkdir((dir_ + "/tmp").c_str(), 0700);
  // An extended (.ndb) signature: target any file type, at any offset.
  WriteFile(dir_ + "/db/switchboard.ndb",
            absl::StrCat(kEicarSignature, ":0:*:", absl::BytesToHexString(Eicar()), "\n"));
  WriteFile(dir_ + "/clamd.conf",
            absl::StrCat("Foreground yes\n",                                      //
                         "LocalSocket ", socket_path_, "\n",                      //
                         "TCPSocket ", port_.port(), "\n",                        //
                         "TCPAddr 127.0.0.1\n",                                   //
                         "DatabaseDirectory ", dir_, "/db\n",                     //
                         "TemporaryDirectory ", dir_, "/tmp\n",                   //
                         "LogFile ", dir_, "/clamd.log\n",                        //
                         "StreamMaxLength ", kStreamMaxBytes, "\n",               //
                         "MaxThreads 4\n"));
  const std::string config = dir_ + "/clamd.conf";
  const std::string output = dir_ + "/clamd.out";
  pid_ = fork();
  if (pid_ == 0) {
    // clamd's own messages before its log opens.
    const int out = open(output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    execl(kClamd, kClamd, "--foreground", "-c", config.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (!Pong()) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_ || absl::Now() > give_up) {
      std::fprintf(stderr, "ClamdServer: clamd did not answer PING; its log:\n%s\n%s\n",
                   ReadFile(output).c_str(), log().c_str());
      std::abort();
    }
    usleep(20'000);
  }
}

ClamdServer::~ClamdServer() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  unlink(socket_path_.c_str());
  rmdir(socket_dir_.c_str());
}

void ClamdServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGCONT);  // a paused clamd cannot act on SIGTERM
  kill(pid_, SIGTERM);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

// Never kill(-1, ...): that would signal every process the test may signal.
void ClamdServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void ClamdServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

std::string ClamdServer::log() const { return ReadFile(dir_ + "/clamd.log"); }

bool ClamdServer::Pong() const {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path_.c_str(), sizeof(address.sun_path) - 1);
  timeval timeout{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  char reply[8] = {};
  const bool pong =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
      send(fd, "zPING", 6, MSG_NOSIGNAL) == 6 && recv(fd, reply, sizeof(reply), MSG_WAITALL) == 5 &&
      std::memcmp(reply, "PONG", 5) == 0;
  close(fd);
  return pong;
}

}  // namespace switchboard::testing
