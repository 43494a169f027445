#include "tools/loadgen/platform.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/storage/test_dir.h"

namespace switchboard::loadgen {
namespace {

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

}  // namespace

Platform::Platform() : dir_(storage::MakeTempDir()), tokens_("platform") {
  tokens_.WriteFolder(dir_ + "/keys");
  // Sessions and routing call each other: both ports are chosen up front.
  const int presence = FreePort(), routing = FreePort(), sessions = FreePort(),
            bot = FreePort(), feedback = FreePort();
  const std::string srcdir = std::getenv("TEST_SRCDIR");
  auto start = [&](const std::string& name, int port, std::vector<std::string> flags) {
    flags.insert(flags.end(), {"--data_dir=" + dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1"});
    processes_.push_back(std::make_unique<testing::ServerProcess>(
        absl::StrCat("services/", name, "/", name, "_server"), flags,
        absl::StrCat(dir_, "/", name, ".log")));
    names_.push_back(name);
    if (processes_.back()->grpc_port() == 0) {
      std::fprintf(stderr, "%s did not start:\n%s\n", name.c_str(),
                   processes_.back()->log().c_str());
      std::exit(1);
    }
  };
  start("bot", bot,
        {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"});
  start("presence", presence, {});
  start("routing", routing,
        {"--presence_address=" + Loopback(presence), "--sessions_address=" + Loopback(sessions),
         "--dispatch_interval=50ms"});
  start("sessions", sessions,
        {"--bot_address=" + Loopback(bot), "--routing_address=" + Loopback(routing),
         "--routing_retry_interval=100ms"});
  start("feedback", feedback,
        {"--sessions_address=" + Loopback(sessions), "--routing_address=" + Loopback(routing)});
}

Platform::~Platform() {
  for (auto& process : processes_) process->Terminate(absl::Seconds(10));
}

std::string Platform::address(const std::string& service) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == service) return processes_[i]->address();
  }
  std::fprintf(stderr, "platform: no service %s\n", service.c_str());
  std::exit(1);
}

std::vector<Platform::Process> Platform::processes() const {
  std::vector<Process> out;
  for (size_t i = 0; i < names_.size(); ++i) out.push_back({names_[i], processes_[i]->pid()});
  return out;
}

std::string Platform::Token(auth::Role role, const std::string& subject) const {
  return tokens_.Access({subject, role, absl::Now() + absl::Hours(2)}, absl::Now());
}

}  // namespace switchboard::loadgen
