// Sessions with a year of history: does start-up, memory and latency depend
// on open work only, as they must?
//
// Seeds sessions.db directly, through the real schema and migrations and the
// store's own write statements (ApplyDirect), with --closed_sessions CLOSED
// sessions holding --messages messages between them and --open_sessions
// open ones (BOT, QUEUED, ASSIGNED, RESOLVED). Seeding runs in a child
// process, in one transaction with synchronous=OFF on its own connection,
// and the file is cached (keyed by the sizes and the schema version) under
// --cache_dir; each run works on a copy, so runs do not drift.
//
// Then, in this process, the real Sessions logic over the real SQLite store
// behind a real gRPC server on loopback (SessionsService, as the server's
// main wires it; no bot, no routing), measured:
//   start_seconds    opening the database (migrations, column backfill
//                    check), loading open work, starting the server;
//   rss_kib          this process's peak resident memory (VmHWM) after all
//                    of it;
//   get_session_p99_ms, send_message_p99_ms
//                    GetSession and SendMessage (customers, EMAIL sessions
//                    created for the probe), one call at a time;
//   empty_get_session_p99_ms, empty_send_message_p99_ms
//                    the same on a second server over an empty database in
//                    this process, the calls alternating between the two so
//                    that the machine's other load weighs on both alike;
//   *_p50_ms         the medians of the same, steadier than a p99 on a
//                    shared machine whose disk flushes set SendMessage's tail;
//   get_session_p99_ms_under_list_flood
//                    customer B's GetSession (an open session, one call per
//                    millisecond) while customer A, who has
//                    --flood_customer_sessions sessions in the history,
//                    calls ListSessions back to back on --flood_threads
//                    threads (the per-caller read limit raised so that the
//                    lists really run);
//   get_closed_session_p99_ms, list_sessions_p99_ms
//                    reading a random CLOSED session (mostly cache misses:
//                    the store), and A's list pages.
// Prints one JSON line.
//
//   bazel run -c opt //tools/loadgen:history_benchmark [-- --smoke]
//   history_benchmark [--closed_sessions=1000000] [--messages=5000000]
//                     [--open_sessions=10000] [--samples=2000]
//                     [--cache_dir=~/.cache/switchboard-history] [--smoke]
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/key_folder.h"
#include "libs/auth/token.h"
#include "libs/auth/verifier.h"
#include "libs/blob/file_blob_store.h"
#include "libs/clock/clock.h"
#include "libs/config/flags.h"
#include "libs/filetype/file_type.h"
#include "libs/protoutil/time.h"
#include "libs/scan/clamd_client.h"
#include "libs/server/blocking_pool.h"
#include "libs/server/server.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "prometheus/registry.h"
#include "services/sessions/attachments.h"
#include "services/sessions/metrics.h"
#include "services/sessions/model.h"
#include "services/sessions/sessions.h"
#include "services/sessions/sessions_service.h"
#include "services/sessions/sqlite_store.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"
#include "tools/loadgen/histogram.h"

namespace switchboard::loadgen {
namespace {

namespace sv1 = ::switchboard::sessions::v1;
namespace cv1 = ::switchboard::common::v1;
using sessions::SessionRecord;
using sessions::SessionWrite;

// Bumped when what the seeder writes changes, so a cached file is redone.
constexpr int kSeedFormat = 1;
constexpr char kFloodCustomer[] = "cust-flood";
constexpr char kProbeCustomer[] = "cust-b";

struct Config {
  int64_t closed_sessions = 1'000'000;
  int64_t messages = 5'000'000;
  int open_sessions = 10'000;
  int flood_customer_sessions = 500;
  int flood_threads = 1;
  // Sessions the probe creates through the API, and calls measured per
  // figure.
  int probe_sessions = 200;
  int samples = 2000;
  std::string cache_dir;
  bool smoke = false;
};

void SetTs(absl::Time t, google::protobuf::Timestamp* out) { protoutil::ToTimestamp(t, out); }

int64_t ReadStatusKib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(field + ":", 0) != 0) continue;
    int64_t kib = 0;
    std::vector<std::string> parts = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) return kib;
  }
  return 0;
}

double Ms(const Histogram& h, double quantile) { return h.Percentile(quantile) / 1e6; }

void Die(const std::string& what) {
  std::fprintf(stderr, "history_benchmark: %s\n", what.c_str());
  std::exit(1);
}

// ---------------------------------------------------------------- seeding

const char* const kTexts[] = {
    "My USDT deposit via TRC20 has not arrived after two hours, txid 9f3a...",
    "Please check the network: deposits need 20 confirmations on TRC20.",
    "I still cannot see it in my spot wallet, what should I do now?",
    "It is credited now, the confirmations were slow. Anything else?",
    "我的提币一直显示处理中，已经超过三个小时了，请帮忙查看一下",
};

sv1::SessionEvent MessageEvent(const std::string& session_id, int64_t sequence, bool customer,
                              const std::string& customer_id, const std::string& agent_id,
                              absl::Time at, int text, std::string* fingerprint) {
  sv1::SessionEvent event;
  event.set_session_id(session_id);
  event.set_sequence(sequence);
  SetTs(at, event.mutable_occurred_at());
  sv1::Message* m = event.mutable_message();
  m->set_session_id(session_id);
  m->set_sequence(sequence);
  m->set_message_id(absl::StrCat("m", sequence));
  m->set_sender_role(customer ? cv1::SENDER_ROLE_CUSTOMER : cv1::SENDER_ROLE_AGENT);
  m->set_sender_id(customer ? customer_id : agent_id);
  m->set_text(kTexts[text % 5]);
  m->set_client_message_id(absl::StrCat("c", sequence));
  SetTs(at, m->mutable_created_at());
  sv1::NewMessage sent;
  sent.set_text(m->text());
  *fingerprint = sent.SerializeAsString();
  return event;
}

sv1::SessionEvent StateEvent(const std::string& session_id, int64_t sequence,
                             sv1::SessionState from, sv1::SessionState to, absl::Time at) {
  sv1::SessionEvent event;
  event.set_session_id(session_id);
  event.set_sequence(sequence);
  SetTs(at, event.mutable_occurred_at());
  event.mutable_state_changed()->set_previous_state(from);
  event.mutable_state_changed()->set_state(to);
  return event;
}

// One seeded session: `state`, `messages` messages between the customer
// and an agent, created at `created`.
SessionWrite SeededSession(const std::string& id, const std::string& customer,
                           sv1::SessionState state, int messages, absl::Time created,
                           int64_t n) {
  SessionWrite write;
  SessionRecord r;
  sv1::Session& s = r.session;
  const std::string agent = absl::StrCat("agent-", n % 2000);
  s.set_session_id(id);
  s.set_customer_id(customer);
  s.set_channel(n % 7 == 0 ? cv1::CHANNEL_EMAIL : cv1::CHANNEL_CHAT);
  s.set_category(static_cast<cv1::Category>(1 + n % 8));
  s.set_language(n % 3 == 0 ? "zh-CN" : "en");
  SetTs(created, s.mutable_created_at());
  auto* customer_p = s.add_participants();
  customer_p->set_role(cv1::SENDER_ROLE_CUSTOMER);
  customer_p->set_id(customer);
  SetTs(created, customer_p->mutable_joined_at());
  auto* agent_p = s.add_participants();
  agent_p->set_role(cv1::SENDER_ROLE_AGENT);
  agent_p->set_id(agent);
  agent_p->set_display_name("Agent");
  SetTs(created + absl::Minutes(1), agent_p->mutable_joined_at());
  cv1::HandoffContext* h = s.mutable_handoff();
  h->set_reason(cv1::ESCALATION_REASON_CUSTOMER_REQUESTED);
  h->set_category(s.category());
  h->set_language(s.language());
  h->set_summary("Deposit of USDT via TRC20 not credited after 2 h; txid given");
  SetTs(created + absl::Minutes(1), s.mutable_queued_at());
  SetTs(created + absl::Minutes(1), s.mutable_first_assigned_at());
  int64_t sequence = 0;
  write.session_events.push_back(StateEvent(id, ++sequence, sv1::SESSION_STATE_UNSPECIFIED,
                                            sv1::SESSION_STATE_BOT, created));
  absl::Time at = created;
  for (int j = 0; j < messages; ++j) {
    at += absl::Seconds(40);
    std::string fingerprint;
    const bool from_customer = j % 2 == 0;
    sv1::SessionEvent event = MessageEvent(id, ++sequence, from_customer, customer, agent, at,
                                           static_cast<int>(n + j), &fingerprint);
    if (from_customer) {
      write.fingerprints.push_back({event.message().message_id(), fingerprint});
    } else {
      event.mutable_message()->clear_client_message_id();
    }
    write.session_events.push_back(std::move(event));
  }
  s.set_message_count(messages);
  SetTs(at, s.mutable_last_message_at());
  s.set_state(state);
  r.state_since = at;
  if (state == sv1::SESSION_STATE_ASSIGNED) {
    s.set_assigned_agent_id(agent);
    SetTs(created + absl::Minutes(1), s.mutable_assigned_at());
  }
  if (state == sv1::SESSION_STATE_RESOLVED || state == sv1::SESSION_STATE_CLOSED) {
    SetTs(at, s.mutable_resolved_at());
  }
  if (state == sv1::SESSION_STATE_CLOSED) {
    s.set_close_reason(sv1::CLOSE_REASON_RATED);
    SetTs(at, s.mutable_closed_at());
    write.session_events.push_back(
        StateEvent(id, ++sequence, sv1::SESSION_STATE_RESOLVED, sv1::SESSION_STATE_CLOSED, at));
  } else if (state != sv1::SESSION_STATE_BOT) {
    write.session_events.push_back(
        StateEvent(id, ++sequence, sv1::SESSION_STATE_BOT, state, at));
  }
  if (state == sv1::SESSION_STATE_BOT) r.bot_since = created;
  s.set_last_sequence(sequence);
  SetTs(at, s.mutable_updated_at());
  r.customer_messages = (messages + 1) / 2;
  r.agent_messages = messages / 2;
  r.assignments = 1;
  r.resolved_by = agent;
  write.sessions.push_back(std::move(r));
  return write;
}

absl::Status Seed(const Config& config, const std::string& path) {
  auto db = sessions::OpenSessionsDatabase({path, /*synchronous_full=*/false});
  if (!db.ok()) return db.status();
  storage::Database& d = **db;
  // This connection only: the seeded file is scratch until it is complete.
  if (absl::Status s = d.Execute("PRAGMA synchronous=OFF; PRAGMA cache_size=-262144");
      !s.ok()) {
    return s;
  }
  const absl::Time now = absl::Now();
  const absl::Time year_ago = now - absl::Hours(24 * 365);
  const absl::Duration step =
      absl::Hours(24 * 360) / std::max<int64_t>(1, config.closed_sessions);
  return d.InTransaction([&]() -> absl::Status {
    int64_t messages_left = config.messages;
    for (int64_t i = 0; i < config.closed_sessions; ++i) {
      const int64_t sessions_left = config.closed_sessions - i;
      const int messages = static_cast<int>(messages_left / sessions_left);
      messages_left -= messages;
      const std::string customer = i < config.flood_customer_sessions
                                       ? std::string(kFloodCustomer)
                                       : absl::StrCat("cust-", i % 100'000);
      SessionWrite write = SeededSession(absl::StrCat("h-", i), customer,
                                         sv1::SESSION_STATE_CLOSED, messages,
                                         year_ago + step * i, i);
      if (absl::Status s = sessions::ApplyDirect(d, write, "seed"); !s.ok()) return s;
    }
    const sv1::SessionState open_states[] = {sv1::SESSION_STATE_BOT, sv1::SESSION_STATE_QUEUED,
                                             sv1::SESSION_STATE_ASSIGNED,
                                             sv1::SESSION_STATE_RESOLVED};
    for (int i = 0; i < config.open_sessions; ++i) {
      const std::string customer =
          i == 0 ? std::string(kProbeCustomer) : absl::StrCat("open-cust-", i);
      SessionWrite write =
          SeededSession(absl::StrCat("o-", i), customer, open_states[i % 4], 3,
                        now - absl::Minutes(10) + absl::Milliseconds(i), i);
      if (absl::Status s = sessions::ApplyDirect(d, write, "seed"); !s.ok()) return s;
    }
    return absl::OkStatus();
  });
}

// The seeded file for `config`, from the cache or seeded now (in a child
// process, so that the seeding's memory is not this process's).
std::string SeededFile(const Config& config) {
  std::filesystem::create_directories(config.cache_dir);
  const std::string name = absl::StrFormat(
      "sessions-%d-%d-%d-%d-schema%d-seed%d.db", config.closed_sessions, config.messages,
      config.open_sessions, config.flood_customer_sessions,
      sessions::SessionsMigrations().size(), kSeedFormat);
  const std::string path = config.cache_dir + "/" + name;
  if (std::filesystem::exists(path + ".done")) return path;
  std::error_code ignored;
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(path + suffix, ignored);
  }
  std::fprintf(stderr, "history_benchmark: seeding %s (one time)...\n", path.c_str());
  const absl::Time start = absl::Now();
  const pid_t child = fork();
  if (child < 0) Die("fork failed");
  if (child == 0) {
    absl::Status seeded = Seed(config, path);
    if (seeded.ok()) {
      auto db = storage::Database::Open({path});
      if (db.ok()) seeded = (*db)->Execute("PRAGMA wal_checkpoint(TRUNCATE)");
    }
    if (!seeded.ok()) std::fprintf(stderr, "seeding failed: %s\n", seeded.ToString().c_str());
    _exit(seeded.ok() ? 0 : 1);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) Die("seeding failed");
  std::ofstream(path + ".done") << "seeded in " << absl::ToDoubleSeconds(absl::Now() - start)
                                << " s\n";
  std::fprintf(stderr, "history_benchmark: seeded in %.1f s\n",
               absl::ToDoubleSeconds(absl::Now() - start));
  return path;
}

// ------------------------------------------------------- the running server

// The sessions server as main() wires it, minus the bot, routing, relay and
// timers: storage, the logic, the gRPC service on a loopback port.
class Server {
 public:
  // Opens `path` and starts serving; `start_seconds` is set to the time
  // that took.
  Server(const std::string& path, const auth::TokenVerifier* tokens, double* start_seconds)
      : tokens_(tokens) {
    const absl::Time start = absl::Now();
    auto db = sessions::OpenSessionsDatabase({path});
    if (!db.ok()) Die(db.status().ToString());
    db_ = *std::move(db);
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    std::vector<std::unique_ptr<storage::Database>> readers;
    for (int i = 0; i < 4; ++i) {
      auto reader = storage::Database::Open({path});
      if (!reader.ok()) Die(reader.status().ToString());
      readers.push_back(*std::move(reader));
    }
    store_ = std::make_unique<sessions::SqliteSessionStore>(
        committer_.get(), std::move(readers), "switchboard.sessions.v1", nullptr);
    registry_ = std::make_shared<prometheus::Registry>();
    metrics_ = std::make_unique<sessions::SessionsMetrics>(*registry_);
    sessions::SessionsOptions options;
    options.max_open_sessions = 1000;
    options.max_creations_per_minute = 1000;
    logic_ = std::make_unique<sessions::Sessions>(
        store_.get(), RealClock(), metrics_.get(), tokens_, nullptr, nullptr,
        [this](std::function<void()> task) { pool_.Run(std::move(task)); },
        [this](std::function<void()> task) { return bot_pool_.TryRun(std::move(task)); },
        options);
    if (absl::Status s = logic_->Load(); !s.ok()) Die(s.ToString());
    sessions::SessionsService::Options service_options;
    // The flood must really read: the per-caller read limit would
    // otherwise refuse it (which is what it is for in production).
    service_options.reads_per_second = 1e9;
    service_options.reads_burst = 1e9;
    // Attachments are not exercised here, but the service needs them.
    blobs_ = *blob::FileBlobStore::Open(path + ".attachments");
    classifier_ = *filetype::FileTypeClassifier::Create();
    // Never dialled: nothing is uploaded here.
    scanner_ = *scan::ClamdClient::Create({"unix:/run/switchboard-benchmark-no-clamd.sock"});
    attachments_ = std::make_unique<sessions::Attachments>(
        logic_.get(), blobs_.get(), classifier_.get(), scanner_.get(), RealClock(),
        metrics_.get(), sessions::AttachmentsOptions());
    service_ = std::make_unique<sessions::SessionsService>(
        logic_.get(), attachments_.get(), tokens_, RealClock(), &pool_, service_options);
    server::ServerOptions server_options;
    server_options.service_name = "sessions";
    server_options.bind_address = "127.0.0.1";
    server_options.grpc_service_names = {sv1::SessionsService::service_full_name()};
    server_options.drain_deadline = absl::Seconds(1);
    auto started = server::Server::Start(server_options, {service_.get()}, registry_);
    if (!started.ok()) Die(started.status().ToString());
    server_ = *std::move(started);
    *start_seconds = absl::ToDoubleSeconds(absl::Now() - start);
    stub_ = sv1::SessionsService::NewStub(server_->InProcessChannel());
  }
  ~Server() {
    server_->Shutdown();
    bot_pool_.Stop();
    pool_.Stop();
    committer_->Stop();
  }
  sv1::SessionsService::Stub& stub() { return *stub_; }

 private:
  const auth::TokenVerifier* const tokens_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<sessions::SqliteSessionStore> store_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<sessions::SessionsMetrics> metrics_;
  server::BlockingPool pool_{32};
  server::BlockingPool bot_pool_{2, 64};
  std::unique_ptr<sessions::Sessions> logic_;
  std::unique_ptr<blob::FileBlobStore> blobs_;
  std::unique_ptr<filetype::FileTypeClassifier> classifier_;
  std::unique_ptr<scan::ClamdClient> scanner_;
  std::unique_ptr<sessions::Attachments> attachments_;
  std::unique_ptr<sessions::SessionsService> service_;
  std::unique_ptr<server::Server> server_;
  std::unique_ptr<sv1::SessionsService::Stub> stub_;
};

class Tokens {
 public:
  explicit Tokens(const auth::TokenSigner* issuer) : issuer_(issuer) {}
  std::string For(const std::string& customer) {
    auto token = auth::MintAccessToken(
        *issuer_, {customer, auth::Role::kCustomer, absl::Now() + absl::Hours(2)}, absl::Now());
    if (!token.ok()) Die(token.status().ToString());
    return *token;
  }

 private:
  const auth::TokenSigner* const issuer_;
};

std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
  auto context = std::make_unique<grpc::ClientContext>();
  auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  return context;
}

// GetSession and SendMessage, one call at a time, over sessions the probe
// creates (EMAIL: QUEUED, no bot turn).
struct Probe {
  Histogram get;
  Histogram send;
};

class ProbeTargets {
 public:
  ProbeTargets(Server& server, Tokens& tokens, const Config& config, const std::string& label)
      : server_(server) {
    for (int i = 0; i < config.probe_sessions; ++i) {
      Target t;
      t.token = tokens.For(absl::StrCat("probe-", label, "-", i));
      sv1::CreateSessionRequest create;
      create.set_channel(cv1::CHANNEL_EMAIL);
      create.set_category(cv1::CATEGORY_DEPOSIT);
      create.set_subject("Deposit not credited");
      create.mutable_first_message()->set_text(kTexts[0]);
      sv1::CreateSessionResponse created;
      grpc::Status status =
          server.stub().CreateSession(Context(t.token).get(), create, &created);
      if (!status.ok()) Die("CreateSession: " + status.error_message());
      t.session_id = created.session().session_id();
      targets_.push_back(std::move(t));
    }
  }

  void Get(int i, Probe& out) {
    const Target& t = targets_[i % targets_.size()];
    sv1::GetSessionRequest get;
    get.set_session_id(t.session_id);
    sv1::GetSessionResponse got;
    const absl::Time start = absl::Now();
    grpc::Status status = server_.stub().GetSession(Context(t.token).get(), get, &got);
    out.get.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    if (!status.ok()) Die("GetSession: " + status.error_message());
  }

  void Send(int i, Probe& out) {
    const Target& t = targets_[i % targets_.size()];
    sv1::SendMessageRequest send;
    send.set_session_id(t.session_id);
    send.set_client_message_id(absl::StrCat("k-", i));
    send.mutable_message()->set_text(kTexts[i % 5]);
    sv1::SendMessageResponse sent;
    const absl::Time start = absl::Now();
    grpc::Status status = server_.stub().SendMessage(Context(t.token).get(), send, &sent);
    out.send.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    if (!status.ok()) Die("SendMessage: " + status.error_message());
  }

 private:
  struct Target {
    std::string token;
    std::string session_id;
  };
  Server& server_;
  std::vector<Target> targets_;
};

// The same calls on both servers, alternating (which one goes first
// alternates too), so that whatever else the machine does weighs on both
// figures alike.
void RunProbes(ProbeTargets& empty_targets, Probe& empty, ProbeTargets& history_targets,
               Probe& history, const Config& config) {
  for (int i = 0; i < config.samples; ++i) {
    if (i % 2 == 0) {
      empty_targets.Get(i, empty);
      history_targets.Get(i, history);
    } else {
      history_targets.Get(i, history);
      empty_targets.Get(i, empty);
    }
  }
  for (int i = 0; i < config.samples; ++i) {
    if (i % 2 == 0) {
      empty_targets.Send(i, empty);
      history_targets.Send(i, history);
    } else {
      history_targets.Send(i, history);
      empty_targets.Send(i, empty);
    }
  }
}

struct HistoryFigures {
  Histogram flood_get;
  Histogram closed_get;
  Histogram list;
  int64_t lists = 0;
};

void RunHistoryReads(Server& server, Tokens& tokens, const Config& config,
                     HistoryFigures& out) {
  // Random CLOSED sessions: mostly cache misses, read from the store.
  std::mt19937_64 random(42);
  std::uniform_int_distribution<int64_t> pick(0, config.closed_sessions - 1);
  for (int i = 0; i < config.samples; ++i) {
    const int64_t n = pick(random);
    const std::string customer = n < config.flood_customer_sessions
                                     ? std::string(kFloodCustomer)
                                     : absl::StrCat("cust-", n % 100'000);
    sv1::GetSessionRequest get;
    get.set_session_id(absl::StrCat("h-", n));
    sv1::GetSessionResponse got;
    const std::string token = tokens.For(customer);
    const absl::Time start = absl::Now();
    grpc::Status status = server.stub().GetSession(Context(token).get(), get, &got);
    out.closed_get.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    if (!status.ok()) Die("GetSession (closed): " + status.error_message());
  }

  // Customer A lists in a tight loop while customer B reads its session.
  const std::string flood_token = tokens.For(kFloodCustomer);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> lists{0};
  std::vector<std::thread> flooders;
  for (int t = 0; t < config.flood_threads; ++t) {
    flooders.emplace_back([&] {
      std::string page_token;
      while (!stop.load()) {
        sv1::ListSessionsRequest list;
        list.set_page_token(page_token);
        sv1::ListSessionsResponse listed;
        const absl::Time start = absl::Now();
        grpc::Status status = server.stub().ListSessions(Context(flood_token).get(), list, &listed);
        out.list.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
        if (!status.ok()) Die("ListSessions: " + status.error_message());
        page_token = listed.next_page_token();
        lists.fetch_add(1);
      }
    });
  }
  // Let the flood get going, then measure B.
  while (lists.load() < 20) absl::SleepFor(absl::Milliseconds(1));
  const std::string b_token = tokens.For(kProbeCustomer);
  for (int i = 0; i < config.samples; ++i) {
    sv1::GetSessionRequest get;
    get.set_session_id("o-0");
    sv1::GetSessionResponse got;
    const absl::Time start = absl::Now();
    grpc::Status status = server.stub().GetSession(Context(b_token).get(), get, &got);
    out.flood_get.Record(absl::ToInt64Nanoseconds(absl::Now() - start));
    if (!status.ok()) Die("GetSession (under flood): " + status.error_message());
    absl::SleepFor(absl::Milliseconds(1));
  }
  stop = true;
  for (std::thread& t : flooders) t.join();
  out.lists = lists.load();
}

int Run(int argc, char** argv) {
  Config config;
  const char* home = std::getenv("HOME");
  config.cache_dir = absl::StrCat(home ? home : "/tmp", "/.cache/switchboard-history");
  config::FlagSet flags("history_benchmark");
  flags.Add("closed_sessions", &config.closed_sessions, "CLOSED sessions in the history");
  flags.Add("messages", &config.messages, "messages across the CLOSED sessions");
  flags.Add("open_sessions", &config.open_sessions, "open sessions (the working set)");
  flags.Add("flood_customer_sessions", &config.flood_customer_sessions,
            "sessions of the customer who floods ListSessions");
  flags.Add("flood_threads", &config.flood_threads, "threads calling ListSessions");
  flags.Add("probe_sessions", &config.probe_sessions,
            "sessions created for the GetSession and SendMessage probe");
  flags.Add("samples", &config.samples, "calls measured per figure");
  flags.Add("cache_dir", &config.cache_dir, "where seeded files are kept between runs");
  flags.Add("smoke", &config.smoke, "a small size that runs in seconds (for the test)");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) return 0;
    std::fprintf(stderr, "history_benchmark: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  if (config.smoke) {
    config.closed_sessions = 3000;
    config.messages = 15000;
    config.open_sessions = 200;
    config.flood_customer_sessions = 300;
    config.probe_sessions = 20;
    config.samples = 200;
    const char* tmp = std::getenv("TEST_TMPDIR");
    config.cache_dir = absl::StrCat(tmp ? tmp : "/tmp", "/history-smoke");
  }
  if (config.closed_sessions < 1 || config.messages < 0 || config.open_sessions < 1 ||
      config.flood_customer_sessions > config.closed_sessions || config.probe_sessions < 1 ||
      config.samples < config.probe_sessions || config.samples > 10 * config.probe_sessions) {
    std::fprintf(stderr,
                 "history_benchmark: sizes must be positive, flood_customer_sessions at most "
                 "closed_sessions, and samples 1 to 10 times probe_sessions (each probe "
                 "session takes at most 10 messages, under the per-sender limit)\n");
    return 2;
  }
  const std::string seeded = SeededFile(config);

  absl::StatusOr<auth::KeyFolder> keys = auth::KeyFolder::Generate();
  if (!keys.ok()) Die(keys.status().ToString());
  const auth::TokenSigner issuer(keys->issuer, std::string(auth::kDevelopmentIssuer));
  auth::VerifierOptions verifier_options;
  verifier_options.service = "sessions";
  const auth::TokenVerifier verifier({auth::FixedKeys(keys->AccessKeys()),
                                      auth::FixedKeys(keys->ServiceKeys()),
                                      auth::FixedKeys(keys->VerificationKeys())},
                                     verifier_options);
  Tokens tokens(&issuer);
  const std::string work = absl::StrCat(config.cache_dir, "/run-", getpid());
  std::filesystem::create_directories(work);

  std::filesystem::copy_file(seeded, work + "/history.db");
  double empty_start = 0;
  double start_seconds = 0;
  Probe empty;
  Probe history;
  HistoryFigures reads;
  int64_t rss_after_start = 0;
  {
    // The empty database: its figures are the baseline.
    Server empty_server(work + "/empty.db", &verifier, &empty_start);
    Server server(work + "/history.db", &verifier, &start_seconds);
    rss_after_start = ReadStatusKib("VmRSS");
    ProbeTargets empty_targets(empty_server, tokens, config, "empty");
    ProbeTargets history_targets(server, tokens, config, "history");
    RunProbes(empty_targets, empty, history_targets, history, config);
    RunHistoryReads(server, tokens, config, reads);
  }
  const int64_t rss_peak = ReadStatusKib("VmHWM");
  std::error_code ignored;
  std::filesystem::remove_all(work, ignored);

  std::printf("%s", absl::StrFormat(
      "{\"closed_sessions\":%d,\"messages\":%d,\"open_sessions\":%d,"
      "\"start_seconds\":%.3f,\"rss_kib\":%d,\"rss_kib_after_start\":%d,"
      "\"get_session_p99_ms\":%.3f,\"send_message_p99_ms\":%.3f,"
      "\"empty_get_session_p99_ms\":%.3f,\"empty_send_message_p99_ms\":%.3f,"
      "\"get_session_p50_ms\":%.3f,\"send_message_p50_ms\":%.3f,"
      "\"empty_get_session_p50_ms\":%.3f,\"empty_send_message_p50_ms\":%.3f,"
      "\"get_session_p99_ms_under_list_flood\":%.3f,"
      "\"get_closed_session_p99_ms\":%.3f,\"list_sessions_p99_ms\":%.3f,"
      "\"list_sessions_calls\":%d,\"empty_start_seconds\":%.3f,\"samples\":%d}\n",
      config.closed_sessions, config.messages, config.open_sessions, start_seconds, rss_peak,
      rss_after_start, Ms(history.get, 0.99), Ms(history.send, 0.99), Ms(empty.get, 0.99),
      Ms(empty.send, 0.99), Ms(history.get, 0.5), Ms(history.send, 0.5), Ms(empty.get, 0.5),
      Ms(empty.send, 0.5), Ms(reads.flood_get, 0.99), Ms(reads.closed_get, 0.99),
      Ms(reads.list, 0.99), reads.lists, empty_start, config.samples).c_str());
  std::fflush(stdout);
  return 0;
}

}  // namespace
}  // namespace switchboard::loadgen

int main(int argc, char** argv) { return switchboard::loadgen::Run(argc, argv); }
