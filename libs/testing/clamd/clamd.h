#pragma once

#include <sys/types.h>

#include <string>

#include "libs/testing/reserved_port.h"

namespace switchboard::testing {

// The EICAR anti-virus test file (68 bytes), assembled at run time so that
// no file in the repository trips a virus scanner.
std::string Eicar();

// The signature ClamdServer's database detects Eicar() by. clamd reports
// signatures from databases other than ClamAV's own with ".UNOFFICIAL"
// appended.
inline constexpr char kEicarSignature[] = "Switchboard.Test.EICAR";

// A real ClamAV daemon (Debian's clamav-daemon; tools/setup.sh installs it)
// for a test, run as a child process from a temporary folder with a
// configuration and a signature database written here: one signature,
// kEicarSignature, matching Eicar() anywhere in a file. Nothing is
// downloaded, so it starts in about a second but detects nothing else.
//
// It listens on a unix socket (in a short folder under /tmp: a socket path
// must fit in 108 bytes, and $TEST_TMPDIR's do not) and on a reserved
// loopback TCP port. The constructor returns once clamd answers PING with
// PONG; if it does not within 30 s, it aborts the test with clamd's log.
// clamd runs as the test's user (no User line: it drops no privileges).
class ClamdServer {
 public:
  ClamdServer();
  // Kills clamd if it runs and removes the socket's folder.
  ~ClamdServer();
  ClamdServer(const ClamdServer&) = delete;
  ClamdServer& operator=(const ClamdServer&) = delete;

  // "unix:/tmp/.../clamd.sock".
  std::string unix_address() const { return "unix:" + socket_path_; }
  // "127.0.0.1:PORT".
  std::string tcp_address() const { return port_.address(); }
  // Bytes per stream clamd accepts (clamd.conf's StreamMaxLength).
  static constexpr size_t kStreamMaxBytes = 1 << 20;

  // Stops clamd (SIGTERM) and waits for it: its sockets are closed.
  void Stop();
  // Freezes clamd (SIGSTOP): connections are accepted by the kernel but
  // never answered, as with a hung daemon. Resume() thaws it.
  void Pause();
  void Resume();

  // clamd's log so far.
  std::string log() const;

 private:
  // True once clamd answers PONG on the unix socket.
  bool Pong() const;

  std::string dir_;
  std::string socket_dir_;
  std::string socket_path_;
  ReservedPort port_;
  pid_t pid_ = -1;
};

}  // namespace switchboard::testing
