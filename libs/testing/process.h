#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace switchboard::testing {

// A Switchboard server binary run as a child process, as operators run it.
// Its stderr (the structured log) goes to `log_path`; the constructor waits
// until the server logs "server_started" and reads its ports from that line
// (so pass --port=0 --metrics_port=0), or until it logs "standby" (another
// process of the service leads on its PostgreSQL database; libs/host): then
// metrics_port() and forwarding_port() are known, and WaitUntilServing waits
// for the takeover.
class ServerProcess {
 public:
  // `binary` is a runfiles path such as "services/presence/presence_server"
  // (the test needs it in `data`).
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                std::string log_path);
  // SIGKILLs the process if it still runs.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // 0 if the server did not start within 30 s (see log()), or waits as a
  // standby.
  int grpc_port() const { return grpc_port_; }
  // It logged "standby" and has not served yet.
  bool standby() const { return standby_; }
  // While a standby: the gRPC port on which it passes calls on to the
  // leader (0 if it does not).
  int forwarding_port() const { return forwarding_port_; }
  // Waits up to `limit` for a standby to log "server_started" (it took over)
  // and reads its ports; true once it serves.
  bool WaitUntilServing(absl::Duration limit);
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
  // Reads the ports from this run's log until `give_up`, a standby line
  // ending the wait when `standby_ends_wait`.
  void AwaitStart(absl::Time give_up, bool standby_ends_wait);

  pid_t pid_ = -1;
  bool running_ = false;
  bool standby_ = false;
  std::string log_path_;
  // Where this run's lines start: the log may hold earlier runs.
  size_t log_offset_ = 0;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int forwarding_port_ = 0;
};

// Whether something accepts TCP connections on 127.0.0.1:`port`.
bool AcceptsConnections(int port);

// The process's switchboard_leader gauge for `service` (libs/host), scraped
// from its metrics port: 0 while it waits as a standby, 1 while it leads;
// -1 if it cannot be read.
int LeaderGauge(const ServerProcess& process, const std::string& service);

// SIGKILLs `leader` and waits up to `limit` for `standby` to take over and
// serve: the time from the kill until it logged server_started, or nullopt.
std::optional<absl::Duration> KillAndTakeOver(ServerProcess& leader, ServerProcess& standby,
                                              absl::Duration limit);

// The whole text of a file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace switchboard::testing
