#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace switchboard::testing {

// A Switchboard server binary run as a child process, as operators run it.
// Its stderr (the structured log) goes to `log_path`; the constructor waits
// until the server logs "server_started" and reads its ports from that line
// (so pass --port=0 --metrics_port=0).
class ServerProcess {
 public:
  // `binary` is a runfiles path such as "services/presence/presence_server"
  // (the test needs it in `data`).
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                std::string log_path);
  // The same, waiting at most `wait_for_start` for "server_started". A hot
  // standby serves no gRPC until it leads: start it with zero and explicit
  // --port and --metrics_port (grpc_port() and metrics_port() stay 0).
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                std::string log_path, absl::Duration wait_for_start);
  // SIGKILLs the process if it still runs.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // 0 if the server did not start in time (30 s by default; see log()).
  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  // The child's process id (for /proc figures such as CPU time and RSS).
  pid_t pid() const { return pid_; }
  std::string address() const;
  // The log so far.
  std::string log() const;

  // Sends SIGTERM and returns the exit code, or -1 if it did not exit within
  // `limit` (it is then killed) or died of a signal.
  int Terminate(absl::Duration limit);
  // SIGKILL: no drain, no flush (crash tests).
  void Kill();
  // Waits up to `limit` for the process to end by itself (e.g. at a libs/fault
  // point); true if it has ended.
  bool WaitForExit(absl::Duration limit);

 private:
  pid_t pid_ = -1;
  bool running_ = false;
  std::string log_path_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
};

// The whole text of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace switchboard::testing
