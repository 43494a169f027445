#include "tools/loadgen/platform.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "libs/storage/test_dir.h"

namespace switchboard::loadgen {
namespace {

std::string Loopback(int port) { return absl::StrCat("127.0.0.1:", port); }

// The services that run as one leader and hot standbys on PostgreSQL.
bool LeaderElected(const std::string& service) {
  return service == "presence" || service == "routing" || service == "sessions";
}

}  // namespace

Platform::Platform(Options options)
    : dir_(storage::MakeTempDir()), keep_data_(options.keep_data), tokens_("platform") {
  if (options.replicas < 1 || (options.replicas > 1 && options.database.empty())) {
    std::fprintf(stderr, "platform: replicas need a PostgreSQL database\n");
    std::exit(1);
  }
  tokens_.WriteFolder(dir_ + "/keys");
  // Sessions and routing call each other, and replicas are dialled as a
  // list: every port is chosen up front, and held while the platform runs,
  // since a standby that cannot forward (libs/host) listens only once it
  // leads: a port merely found free could meanwhile go to any bind on port
  // 0 (a /metrics listener, which would then answer its clients in
  // HTTP/1.1).
  std::vector<std::string> services = {"bot", "presence", "routing", "sessions", "feedback"};
  if (options.identity) services.push_back("identity");
  std::map<std::string, std::vector<int>> ports;
  for (const std::string& service : services) {
    for (int r = 0; r < options.replicas; ++r) {
      ports[service].push_back(held_ports_.emplace_back().port());
    }
    std::vector<std::string> addresses;
    for (int port : ports[service]) addresses.push_back(Loopback(port));
    targets_[service] = addresses.size() == 1
                            ? addresses[0]
                            : absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  }
  const std::string srcdir = std::getenv("TEST_SRCDIR");
  const std::map<std::string, std::vector<std::string>> flags_of = {
      {"bot", {"--knowledge_base=" + srcdir + "/switchboard/services/bot/kb/intents.kb"}},
      {"presence", {}},
      {"routing",
       {"--presence_address=" + targets_["presence"],
        "--sessions_address=" + targets_["sessions"], "--dispatch_interval=50ms"}},
      {"sessions",
       {"--bot_address=" + targets_["bot"], "--routing_address=" + targets_["routing"],
        "--routing_retry_interval=100ms"}},
      {"feedback",
       {"--sessions_address=" + targets_["sessions"],
        "--routing_address=" + targets_["routing"]}},
      {"identity", {}},
  };
  auto start = [&](const std::string& service, int replica) {
    const std::string name = replica == 1 ? service : absl::StrCat(service, "-", replica);
    const std::string data_dir = data_dir_of(name);
    std::filesystem::create_directories(data_dir);
    const int port = ports[service][replica - 1];
    std::vector<std::string> flags = flags_of.at(service);
    flags.insert(flags.end(), {"--data_dir=" + data_dir, "--keys_dir=" + dir_ + "/keys",
                               absl::StrCat("--port=", port), "--metrics_port=0",
                               "--bind_address=127.0.0.1", "--drain_deadline=3s"});
    if (!options.database.empty()) flags.push_back("--database=" + options.database);
    Server& server = servers_.emplace_back();
    server.process = {name, service, 0, port, 0};
    server.binary = absl::StrCat("services/", service, "/", service, "_server");
    server.flags = std::move(flags);
    StartChild(server);
    // A standby logs "standby" and passes its calls to the leader until it
    // leads.
    const bool standby = replica > 1 && LeaderElected(service);
    if (standby != server.child->standby()) {
      std::fprintf(stderr, "%s started %s\n", name.c_str(),
                   standby ? "serving, not as a standby" : "as a standby");
      std::exit(1);
    }
  };
  // Each service's first process before the standbys, so that it leads.
  for (const std::string& service : services) {
    for (int r = 1; r <= options.replicas; ++r) {
      if (r == 1 || !LeaderElected(service)) start(service, r);
    }
  }
  for (int r = 2; r <= options.replicas; ++r) {
    for (const std::string& service : services) {
      if (LeaderElected(service)) start(service, r);
    }
  }
}

Platform::~Platform() {
  Stop();
  if (keep_data_) {
    std::fprintf(stderr, "platform: data kept in %s\n", dir_.c_str());
    return;
  }
  std::error_code ignored;  // a folder left behind costs only disk
  std::filesystem::remove_all(dir_, ignored);
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
  for (const Server& server : servers_) out.push_back(server.process);
  return out;
}

std::optional<Platform::Process> Platform::Leader(const std::string& service) const {
  for (const Server& server : servers_) {
    if (server.process.service == service && !server.stopped &&
        testing::LeaderGauge(*server.child, service) == 1) {
      return server.process;
    }
  }
  return std::nullopt;
}

void Platform::StartChild(Server& server) {
  const std::string& name = server.process.name;
  server.child = std::make_unique<testing::ServerProcess>(server.binary, server.flags,
                                                          absl::StrCat(dir_, "/", name, ".log"));
  if (!server.child->standby() && server.child->grpc_port() == 0) {
    std::fprintf(stderr, "%s did not start:\n%s\n", name.c_str(), server.child->log().c_str());
    std::exit(1);
  }
  server.process.pid = server.child->pid();
  server.process.metrics_port = server.child->metrics_port();
  server.stopped = false;
}

int Platform::Restart(const std::string& name) {
  for (Server& server : servers_) {
    if (server.process.name != name || server.stopped) continue;
    const int code = server.child->Terminate(absl::Seconds(10));
    StartChild(server);
    return code;
  }
  std::fprintf(stderr, "platform: no running process %s\n", name.c_str());
  std::exit(1);
}

void Platform::Kill(const std::string& name) {
  for (Server& server : servers_) {
    if (server.process.name == name && !server.stopped) {
      server.child->Kill();
      server.stopped = true;
    }
  }
}

std::map<std::string, int> Platform::Stop() {
  std::map<std::string, int> codes;
  std::set<std::string> leaders;
  for (const Server& server : servers_) {
    if (!LeaderElected(server.process.service)) continue;
    if (std::optional<Process> leader = Leader(server.process.service)) {
      leaders.insert(leader->name);
    }
  }
  for (bool leading : {false, true}) {
    for (Server& server : servers_) {
      if (server.stopped || leaders.count(server.process.name) != leading) continue;
      codes[server.process.name] = server.child->Terminate(absl::Seconds(10));
      server.stopped = true;
    }
  }
  return codes;
}

std::string Platform::Token(auth::Role role, const std::string& subject) const {
  return tokens_.Access({subject, role, absl::Now() + absl::Hours(2)}, absl::Now());
}

std::string Platform::data_dir_of(const std::string& name) const {
  return name.find('-') == std::string::npos ? dir_ : absl::StrCat(dir_, "/", name);
}

}  // namespace switchboard::loadgen
