#include "tools/loadgen/platform.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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

Platform::Platform(Options options) : dir_(storage::MakeTempDir()), tokens_("platform") {
  if (options.replicas < 1 || (options.replicas > 1 && options.database.empty())) {
    std::fprintf(stderr, "platform: replicas need a PostgreSQL database\n");
    std::exit(1);
  }
  tokens_.WriteFolder(dir_ + "/keys");
  // Sessions and routing call each other, and replicas are dialled as a
  // list: every port is chosen up front.
  const int presence = FreePort(), routing = FreePort(), sessions = FreePort();
  std::vector<int> bot, feedback;
  for (int r = 0; r < options.replicas; ++r) {
    bot.push_back(FreePort());
    feedback.push_back(FreePort());
  }
  const auto target = [](const std::vector<int>& ports) {
    if (ports.size() == 1) return Loopback(ports[0]);
    std::vector<std::string> addresses;
    for (int port : ports) addresses.push_back(Loopback(port));
    return absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  };
  targets_ = {{"presence", Loopback(presence)}, {"routing", Loopback(routing)},
              {"sessions", Loopback(sessions)}, {"bot", target(bot)},
              {"feedback", target(feedback)}};
  const std::string srcdir = std::getenv("TEST_SRCDIR");
  auto start = [&](const std::string& name, int replica, int port,
                   std::vector<std::string> flags) {
    const std::string label = replica == 1 ? name : absl::StrCat(name, "-", replica);
    const std::string data_dir = replica == 1 ? dir_ : absl::StrCat(dir_, "/", label);
    std::filesystem::create_directories(data_dir);
    flags.insert(flags.end(), {"--data_dir=" + data_dir, "--keys_dir=" + dir_ + "/keys",
                               absl::StrCat("--port=", port), "--metrics_port=0",
                               "--bind_address=127.0.0.1"});
    if (!options.database.empty()) flags.push_back("--database=" + options.database);
    processes_.push_back(std::make_unique<testing::ServerProcess>(
        absl::StrCat("services/", name, "/", name, "_server"), flags,
        absl::StrCat(dir_, "/", label, ".log")));
    names_.push_back(label);
    if (processes_.back()->grpc_port() == 0) {
      std::fprintf(stderr, "%s did not start:\n%s\n", label.c_str(),
                   processes_.back()->log().c_str());
      std::exit(1);
    }
  };
  for (int r = 1; r <= options.replicas; ++r) {
    start("bot", r, bot[r - 1],
          {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"});
  }
  start("presence", 1, presence, {});
  start("routing", 1, routing,
        {"--presence_address=" + Loopback(presence), "--sessions_address=" + Loopback(sessions),
         "--dispatch_interval=50ms"});
  start("sessions", 1, sessions,
        {"--bot_address=" + target(bot), "--routing_address=" + Loopback(routing),
         "--routing_retry_interval=100ms"});
  for (int r = 1; r <= options.replicas; ++r) {
    start("feedback", r, feedback[r - 1],
          {"--sessions_address=" + Loopback(sessions), "--routing_address=" + Loopback(routing)});
  }
}

Platform::~Platform() {
  for (auto& process : processes_) process->Terminate(absl::Seconds(10));
}

std::string Platform::address(const std::string& service) const {
  auto it = targets_.find(service);
  if (it == targets_.end()) {
    std::fprintf(stderr, "platform: no service %s\n", service.c_str());
    std::exit(1);
  }
  return it->second;
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
