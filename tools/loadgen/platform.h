#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "libs/auth/principal.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"

namespace switchboard::loadgen {

// The platform's processes as the cross-process benchmarks run them:
// presence, routing, sessions, bot and feedback started from the runfiles on
// free loopback ports, wired to each other, sharing one data folder and one
// key folder (as tools/run.sh makes them), durable SQLite with group commit
// (or one PostgreSQL database, see Options), outboxes and JSON-lines events.
// Every process logs to DATA_DIR/NAME.log. Identity is not started: nothing
// in a support conversation calls it.
//
// Construct it only after testing::UseRunfilesOf. Exits the benchmark (status 1) when a
// server does not start. The destructor stops every server with SIGTERM.
class Platform {
 public:
  struct Options {
    // Empty: each service's SQLite file. Else a postgresql:// URI given to
    // every service as --database.
    std::string database;
    // Processes of each service that may run as several on one database (bot
    // and feedback; needs `database`); the others run one. Replica r > 1 of
    // NAME is "NAME-r", with a data folder of its own.
    int replicas = 1;
  };

  explicit Platform(Options options);
  Platform() : Platform(Options()) {}
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // The gRPC target of a service: "presence", "routing", "sessions", "bot"
  // or "feedback": "127.0.0.1:PORT", or with replicas every replica's
  // address, "ipv4:127.0.0.1:P1,127.0.0.1:P2" (dial it with round_robin).
  std::string address(const std::string& service) const;

  struct Process {
    std::string name;
    pid_t pid;
  };
  // Every server process, in start order.
  std::vector<Process> processes() const;

  // An access token for `subject`, valid for two hours. Signing costs some
  // tens of microseconds: mint once per participant, not per call.
  std::string Token(auth::Role role, const std::string& subject) const;

  const std::string& data_dir() const { return dir_; }

 private:
  std::string dir_;
  testing::TestTokens tokens_;
  // Service -> what address() returns.
  std::map<std::string, std::string> targets_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<testing::ServerProcess>> processes_;
};

}  // namespace switchboard::loadgen
