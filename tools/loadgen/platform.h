#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/auth/principal.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/test_tokens.h"

namespace switchboard::loadgen {

// The platform's processes as the cross-process benchmarks and tests run
// them: presence, routing, sessions, bot and feedback (and identity if asked)
// started from the runfiles on free loopback ports, wired to each other,
// sharing one data folder and one key folder (as tools/run.sh makes them),
// durable SQLite with group commit (or one PostgreSQL database, see
// Options), outboxes and JSON-lines events. Every process logs to
// DATA_DIR/NAME.log.
//
// Construct it only after testing::UseRunfilesOf. Exits the program (status
// 1) when a server does not start. The destructor stops every server still
// running with SIGTERM (see Stop), then removes the data folder unless
// Options::keep_data.
class Platform {
 public:
  struct Options {
    // Empty: each service's SQLite file. Else a postgresql:// URI given to
    // every service as --database.
    std::string database;
    // Processes of every service (more than 1 needs `database`). Replica r >
    // 1 of NAME is "NAME-r", with a data folder (events) of its own. Bot,
    // feedback and identity replicas all take calls; presence, routing and
    // sessions run as a leader (replica 1, started and serving before the
    // others start) and hot standbys, which serve no gRPC until the leader
    // is gone and one of them takes over.
    int replicas = 1;
    // Also start identity (nothing in a support conversation calls it).
    bool identity = false;
    // Leave the data folder (databases, logs, events) behind for a look
    // after the run; by default the destructor removes it.
    bool keep_data = false;
  };

  explicit Platform(Options options);
  Platform() : Platform(Options()) {}
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // The gRPC target of a service: "presence", "routing", "sessions", "bot",
  // "feedback" or "identity": "127.0.0.1:PORT", or with replicas every
  // replica's address, "ipv4:127.0.0.1:P1,127.0.0.1:P2" (dial it with
  // round_robin: a standby, which does not listen, is skipped until it leads).
  std::string address(const std::string& service) const;

  struct Process {
    // "sessions", "sessions-2", ...
    std::string name;
    std::string service;
    pid_t pid;
    int grpc_port;
    int metrics_port;
  };
  // Every server process, in start order, killed ones included.
  std::vector<Process> processes() const;

  // The process of `service` that leads now (its /metrics shows the gauge
  // switchboard_leader at 1; a standby shows 0); none between a leader's
  // death and a standby's takeover.
  std::optional<Process> Leader(const std::string& service) const;

  // SIGKILLs the process `name` (no drain, no flush).
  void Kill(const std::string& name);
  // Replaces the process `name` as a rollout does: SIGTERM (it drains,
  // flushes its outbox and, if it leads, hands over to a standby), waits
  // for it to exit, then starts it again with the same flags, ports and data
  // folder; it comes back as a standby while another process of its service
  // leads. Returns the old process's exit code (-1 as Stop says); exits the
  // program if the new one does not start.
  int Restart(const std::string& name);
  // Stops every process still running with SIGTERM (all but the leaders
  // first, so that none takes over from a draining leader) and returns each one's
  // exit code by name (-1: it did not exit in 10 s or died of a signal;
  // each drains for at most 3 s).
  std::map<std::string, int> Stop();

  // An access token for `subject`, valid for two hours. Signing costs some
  // tens of microseconds: mint once per participant, not per call.
  std::string Token(auth::Role role, const std::string& subject) const;

  const std::string& data_dir() const { return dir_; }
  // The folder of process `name`'s data (its events/ folder).
  std::string data_dir_of(const std::string& name) const;

 private:
  struct Server {
    Process process;
    // How it was started (Restart starts it so again).
    std::string binary;
    std::vector<std::string> flags;
    std::unique_ptr<testing::ServerProcess> child;
    bool stopped = false;
  };

  // Starts `server`'s child from its binary and flags; exits the program if
  // it neither serves nor waits as a standby.
  void StartChild(Server& server);

  std::string dir_;
  bool keep_data_;
  testing::TestTokens tokens_;
  // Service -> what address() returns.
  std::map<std::string, std::string> targets_;
  // Every server's gRPC port, held from before the servers start until
  // after they stop (declared before servers_, so destroyed after them).
  std::vector<testing::ReservedPort> held_ports_;
  std::vector<Server> servers_;
};

}  // namespace switchboard::loadgen
