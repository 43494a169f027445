#pragma once

#include <sys/types.h>

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
// key folder (as tools/run.sh makes them), durable SQLite with group commit,
// outboxes and JSON-lines events. Every process logs to DATA_DIR/NAME.log.
// Identity is not started: nothing in a support conversation calls it.
//
// Construct it only after testing::UseRunfilesOf. Exits the benchmark (status 1) when a
// server does not start. The destructor stops every server with SIGTERM.
class Platform {
 public:
  Platform();
  ~Platform();
  Platform(const Platform&) = delete;
  Platform& operator=(const Platform&) = delete;

  // "127.0.0.1:PORT" of a service: "presence", "routing", "sessions", "bot"
  // or "feedback".
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
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<testing::ServerProcess>> processes_;
};

}  // namespace switchboard::loadgen
