// The authorization matrix: every RPC of every service, called by every kind
// of caller, against the policy the protos write down.
//
// The six services run as processes on real SQLite, wired as in production
// (routing to presence and sessions, feedback to sessions and routing;
// sessions without bot and routing, so that nothing but this test moves its
// sessions), all reading one key folder. The RPCs are enumerated from the
// services' descriptors: an RPC without a row here fails the test, so a new
// RPC cannot ship without its authorization being checked.
//
// Each RPC is called with: no token, garbage, an expired token, a token
// signed with another key under the real issuer's kid, one with an unknown
// kid, `alg: none`, a supervisor token signed with a service's key, a
// service token of the bot's claiming to be routing; as customer A (the
// object's owner), customer B, the object's agent, another agent, a
// supervisor; as each of the six services, and as the exchange's account
// system (the one outside caller with a service key). The expected answer follows
// from the RPC's (switchboard.auth.v1.access) option and the row's
// per-object rule:
//   - a bad token: UNAUTHENTICATED;
//   - a caller the option does not admit: PERMISSION_DENIED;
//   - an admitted caller who may not touch the object: the same code and
//     message as a call on a missing object (or PERMISSION_DENIED where the
//     RPC's comment says so);
//   - everyone else: the call succeeds.
// A refused call changes nothing: every service's database (the outbox
// included) and events file are the same before and after it.
#include <grpcpp/grpcpp.h>
#include <sqlite3.h>

#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/policy.h"
#include "libs/auth/verification_token.h"
#include "libs/blob/blob_store.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/clamd/clamd.h"
#include "libs/testing/process.h"
#include "libs/testing/test_tokens.h"
#include "services/identity/totp.h"
#include "switchboard/bot/v1/bot_service.grpc.pb.h"
#include "switchboard/feedback/v1/feedback_service.grpc.pb.h"
#include "switchboard/identity/v1/code_delivery.pb.h"
#include "switchboard/identity/v1/identity_service.grpc.pb.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

namespace bv1 = bot::v1;
namespace fv1 = feedback::v1;
namespace iv1 = identity::v1;
namespace pv1 = presence::v1;
namespace rv1 = routing::v1;
namespace sv1 = sessions::v1;
using auth::Role;
using grpc::StatusCode;

// Every kind of caller.
enum class Who {
  kNoToken,
  kGarbage,
  kExpired,
  kOtherKey,
  kUnknownKey,
  kAlgNone,
  kServiceKeyAsIssuer,
  kBotAsRouting,
  kCustomerA,
  kCustomerB,
  kAgentA,
  kAgentB,
  kSupervisor,
  kSessions,
  kRouting,
  kBot,
  kPresence,
  kIdentity,
  kFeedback,
  kAccounts,
};

const std::vector<Who>& AllCallers() {
  static const auto* all = new std::vector<Who>{
      Who::kNoToken,    Who::kGarbage,    Who::kExpired,    Who::kOtherKey,
      Who::kUnknownKey, Who::kAlgNone,    Who::kServiceKeyAsIssuer, Who::kBotAsRouting,
      Who::kCustomerA,  Who::kCustomerB,  Who::kAgentA,     Who::kAgentB,
      Who::kSupervisor, Who::kSessions,   Who::kRouting,    Who::kBot,
      Who::kPresence,   Who::kIdentity,   Who::kFeedback,   Who::kAccounts};
  return *all;
}

std::string Name(Who who) {
  switch (who) {
    case Who::kNoToken: return "no token";
    case Who::kGarbage: return "garbage";
    case Who::kExpired: return "expired";
    case Who::kOtherKey: return "another key under the issuer's kid";
    case Who::kUnknownKey: return "an unknown key";
    case Who::kAlgNone: return "alg none";
    case Who::kServiceKeyAsIssuer: return "a service's key as the access issuer";
    case Who::kBotAsRouting: return "the bot's key claiming routing";
    case Who::kCustomerA: return "customer A";
    case Who::kCustomerB: return "customer B";
    case Who::kAgentA: return "the object's agent";
    case Who::kAgentB: return "another agent";
    case Who::kSupervisor: return "a supervisor";
    case Who::kSessions: return "sessions";
    case Who::kRouting: return "routing";
    case Who::kBot: return "bot";
    case Who::kPresence: return "presence";
    case Who::kIdentity: return "identity";
    case Who::kFeedback: return "feedback";
    case Who::kAccounts: return "the account system";
  }
  return "?";
}

// The principal a well-formed token of `who` names; nullopt for bad tokens.
std::optional<auth::Principal> PrincipalOf(Who who) {
  const absl::Time forever = absl::InfiniteFuture();
  switch (who) {
    case Who::kCustomerA: return auth::Principal{"cust-a", Role::kCustomer, forever};
    case Who::kCustomerB: return auth::Principal{"cust-b", Role::kCustomer, forever};
    case Who::kAgentA: return auth::Principal{"agent-a", Role::kAgent, forever};
    case Who::kAgentB: return auth::Principal{"agent-b", Role::kAgent, forever};
    case Who::kSupervisor: return auth::Principal{"sup-1", Role::kSupervisor, forever};
    case Who::kSessions: return auth::Principal{"sessions", Role::kService, forever};
    case Who::kRouting: return auth::Principal{"routing", Role::kService, forever};
    case Who::kBot: return auth::Principal{"bot", Role::kService, forever};
    case Who::kPresence: return auth::Principal{"presence", Role::kService, forever};
    case Who::kIdentity: return auth::Principal{"identity", Role::kService, forever};
    case Who::kFeedback: return auth::Principal{"feedback", Role::kService, forever};
    case Who::kAccounts: return auth::Principal{"accounts", Role::kService, forever};
    default: return std::nullopt;
  }
}

constexpr char kAgentA[] = "agent-a";

// What one call acts on: `id` names the object (a missing one is `id` with
// a prefix); `customer` is customer A for this object (fresh per object, so
// per-customer limits never bite); `extra` is anything else the call needs.
struct Target {
  std::string id;
  std::string customer = "cust-a";
  std::string extra;
};

Target Missing(Target target) {
  target.id = "missing-" + target.id;
  return target;
}

// How an admitted caller who may not touch the object is refused.
enum class Denial { kAsMissing, kPermissionDenied };

// One RPC's row.
struct Row {
  // Admitted callers who may act on the object; empty: every admitted one.
  std::set<Who> owners;
  Denial denial = Denial::kAsMissing;
  // Makes a fresh object for one call.
  std::function<Target()> prepare;
  // Calls the RPC as `who` (holding `token`) on `target`.
  std::function<grpc::Status(Who who, const std::string& token, const Target& target)> call;
};

// The six servers: every service key's name but the account system's.
const std::vector<std::string>& ServiceNames() {
  static const auto* names = [] {
    auto* out = new std::vector<std::string>();
    for (std::string& name : auth::ServiceNames()) {
      if (name != "accounts") out->push_back(std::move(name));
    }
    return out;
  }();
  return *names;
}

std::string FullServiceName(const std::string& service) {
  std::string upper = service;
  upper[0] = static_cast<char>(std::toupper(upper[0]));
  return absl::StrCat("switchboard.", service, ".v1.", upper, "Service");
}

std::unique_ptr<grpc::ClientContext> Context(const std::string& token,
                                             absl::Duration deadline = absl::Seconds(15)) {
  auto context = std::make_unique<grpc::ClientContext>();
  if (!token.empty()) auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + deadline));
  return context;
}

// A server stream's answer: OK once its first message arrives, else how it
// ended.
template <typename Response>
grpc::Status FirstMessage(grpc::ClientContext& context,
                          std::unique_ptr<grpc::ClientReader<Response>> reader) {
  Response first;
  if (reader->Read(&first)) {
    context.TryCancel();
    reader->Finish();
    return grpc::Status::OK;
  }
  return reader->Finish();
}

// RFC 4648 base32 (upper case, no padding) to bytes.
std::string Base32Decode(absl::string_view text) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : text) {
    int value = c >= 'A' && c <= 'Z' ? c - 'A' : c >= '2' && c <= '7' ? c - '2' + 26 : -1;
    if (value < 0) continue;
    buffer = (buffer << 5) | static_cast<uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<char>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

// Every table of a SQLite file, as text, read without writing.
std::string DumpDatabase(const std::string& path) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return "cannot open " + path;
  }
  sqlite3_busy_timeout(db, 5000);
  std::vector<std::string> tables;
  sqlite3_stmt* list = nullptr;
  sqlite3_prepare_v2(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", -1,
                     &list, nullptr);
  while (list != nullptr && sqlite3_step(list) == SQLITE_ROW) {
    tables.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(list, 0)));
  }
  sqlite3_finalize(list);
  for (const std::string& table : tables) {
    absl::StrAppend(&out, "[", table, "]\n");
    sqlite3_stmt* rows = nullptr;
    sqlite3_prepare_v2(db, absl::StrCat("SELECT * FROM \"", table, "\"").c_str(), -1, &rows,
                       nullptr);
    while (rows != nullptr && sqlite3_step(rows) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(rows); ++c) {
        const void* blob = sqlite3_column_blob(rows, c);
        absl::StrAppend(&out, absl::CEscape(absl::string_view(
                                  static_cast<const char*>(blob),
                                  static_cast<size_t>(sqlite3_column_bytes(rows, c)))),
                        "|");
      }
      out += "\n";
    }
    sqlite3_finalize(rows);
  }
  sqlite3_close(db);
  return out;
}

// The lines in which two dumps differ (at most a few), or "". A line
// that changed is shown from a little before its first changed byte.
std::string Difference(const std::string& before, const std::string& after) {
  const std::vector<std::string> a = absl::StrSplit(before, '\n');
  const std::vector<std::string> b = absl::StrSplit(after, '\n');
  std::set<std::string> in_a(a.begin(), a.end());
  std::set<std::string> in_b(b.begin(), b.end());
  std::vector<std::string> removed;
  std::vector<std::string> added;
  for (const std::string& line : a) {
    if (!in_b.count(line)) removed.push_back(line);
  }
  for (const std::string& line : b) {
    if (!in_a.count(line)) added.push_back(line);
  }
  std::string out;
  for (size_t i = 0; i < removed.size() && i < 3; ++i) {
    size_t from = 0;
    if (i < added.size()) {
      while (from < removed[i].size() && from < added[i].size() &&
             removed[i][from] == added[i][from]) {
        ++from;
      }
      from = from > 60 ? from - 60 : 0;
    }
    absl::StrAppend(&out, "\n- [", from, "] ", removed[i].substr(from, 300));
    if (i < added.size()) absl::StrAppend(&out, "\n+ [", from, "] ", added[i].substr(from, 300));
  }
  for (size_t i = removed.size(); i < added.size() && i < 3; ++i) {
    absl::StrAppend(&out, "\n+ ", added[i].substr(0, 300));
  }
  return out;
}

int64_t OutboxRows(const std::string& path) {
  sqlite3* db = nullptr;
  int64_t rows = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt* count = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM outbox", -1, &count, nullptr) == SQLITE_OK &&
        sqlite3_step(count) == SQLITE_ROW) {
      rows = sqlite3_column_int64(count, 0);
    }
    sqlite3_finalize(count);
  }
  sqlite3_close(db);
  return rows;
}

class AuthzMatrixTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(storage::MakeTempDir());
    tokens_ = new testing::TestTokens(testing::TestTokens::InFolder(*dir_ + "/keys", "matrix"));
    servers_ = new std::map<std::string, std::unique_ptr<testing::ServerProcess>>();
    const auto start = [](const std::string& name, std::vector<std::string> flags) {
      flags.insert(flags.end(), {"--data_dir=" + *dir_ + "/" + name,
                                 "--keys_dir=" + *dir_ + "/keys",
                                 "--port=0", "--metrics_port=0", "--bind_address=127.0.0.1",
                                 "--drain_deadline=2s"});
      auto server = std::make_unique<testing::ServerProcess>(
          absl::StrCat("services/", name, "/", name, "_server"), std::move(flags),
          absl::StrCat(*dir_, "/", name, ".log"));
      const std::string address = server->address();
      (*servers_)[name] = std::move(server);
      return address;
    };
    // Nothing runs on a timer during the test: leases, offers (9 minutes,
    // the longest presence holds capacity for), sweeps and sessions' retries
    // towards routing (which it does not have) outlast it, so that only the
    // calls change state.
    const std::string presence =
        start("presence", {"--lease=1h", "--sweep_interval=1h"});
    start("bot", {});
    start("identity", {"--resend_interval=0s", "--max_starts_per_hour=100000",
                       "--lockout_failures=100000", "--sweep_interval=1h"});
    // Scans are the one timer left: each uploading call waits for its
    // file's verdict before it returns (see Upload), so no scan lands
    // inside another call's check.
    clamd_ = new testing::ClamdServer();
    const std::string sessions =
        start("sessions", {"--bot_address=", "--routing_address=", "--sweep_interval=1h",
                           "--routing_retry_interval=1h",
                           "--clamd_address=" + clamd_->unix_address(),
                           "--scan_interval=100ms"});
    const std::string routing =
        start("routing", {"--presence_address=" + presence, "--sessions_address=" + sessions,
                          "--offer_timeout=9m", "--reconcile_interval=1h"});
    start("feedback", {"--sessions_address=" + sessions, "--routing_address=" + routing});
  }

  static void TearDownTestSuite() {
    for (auto& [name, server] : *servers_) server->Kill();
    delete servers_;
    delete clamd_;
    delete tokens_;
    delete dir_;
  }

  void SetUp() override {
    for (const auto& [name, server] : *servers_) {
      ASSERT_GT(server->grpc_port(), 0) << name << ": " << server->log();
    }
    sessions_ = sv1::SessionsService::NewStub(Channel("sessions"));
    routing_ = rv1::RoutingService::NewStub(Channel("routing"));
    bot_ = bv1::BotService::NewStub(Channel("bot"));
    presence_ = pv1::PresenceService::NewStub(Channel("presence"));
    identity_ = iv1::IdentityService::NewStub(Channel("identity"));
    feedback_ = fv1::FeedbackService::NewStub(Channel("feedback"));
    AddRows();
  }

  static std::shared_ptr<grpc::Channel> Channel(const std::string& name) {
    return grpc::CreateChannel(servers_->at(name)->address(), grpc::InsecureChannelCredentials());
  }

  // --- Tokens -------------------------------------------------------------

  // A token whose header and payload are given, signed with `key`.
  static std::string Crafted(absl::string_view header, absl::string_view payload,
                             const auth::SigningKey* key) {
    const std::string input =
        absl::StrCat(auth::Base64UrlEncode(header), ".", auth::Base64UrlEncode(payload));
    if (key == nullptr) return input + ".";
    return absl::StrCat(input, ".", auth::Base64UrlEncode(*key->Sign(input)));
  }
  static std::string SupervisorPayload() {
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    return absl::StrCat(R"({"iss":"switchboard-development","sub":"sup-1",)",
                        R"("aud":"switchboard-api",)",
                        R"("role":"supervisor","iat":)", now, R"(,"exp":)", now + 3600, "}");
  }

  // The token `who` presents to `service` about `target`.
  std::string Token(Who who, const std::string& service, const Target& target) {
    const std::string issuer_kid = tokens_->keys().issuer.kid();
    switch (who) {
      case Who::kNoToken: return "";
      case Who::kGarbage: return "not-a-token";
      case Who::kExpired:
        return tokens_->Access({"sup-1", Role::kSupervisor, absl::Now() - absl::Minutes(1)},
                               absl::Now() - absl::Hours(1));
      case Who::kOtherKey:
        return Crafted(absl::StrCat(R"({"alg":"ES256","kid":")", issuer_kid, "\"}"),
                       SupervisorPayload(), &other_key_);
      case Who::kUnknownKey:
        return Crafted(absl::StrCat(R"({"alg":"ES256","kid":")", other_key_.kid(), "\"}"),
                       SupervisorPayload(), &other_key_);
      case Who::kAlgNone:
        return Crafted(absl::StrCat(R"({"alg":"none","kid":")", issuer_kid, "\"}"),
                       SupervisorPayload(), nullptr);
      case Who::kServiceKeyAsIssuer: {
        const auth::TokenSigner bot_as_issuer(tokens_->keys().services.at("bot"),
                                              std::string(auth::kDevelopmentIssuer));
        return *auth::MintAccessToken(
            bot_as_issuer, {"sup-1", Role::kSupervisor, absl::Now() + absl::Hours(1)},
            absl::Now());
      }
      case Who::kBotAsRouting:
        return *auth::MintServiceToken(tokens_->service_signer("bot"), "routing", service,
                                       absl::Now(), absl::Minutes(5));
      case Who::kCustomerA: return tokens_->For(Role::kCustomer, target.customer);
      default: break;
    }
    const auth::Principal principal = *PrincipalOf(who);
    if (principal.role == Role::kService) {
      return tokens_->ServiceToken(principal.subject, service);
    }
    return tokens_->For(principal.role, principal.subject);
  }

  // --- Fixtures -----------------------------------------------------------

  std::string Fresh(absl::string_view prefix) { return absl::StrCat(prefix, "-", ++serial_); }

  // Uploads a small text file to `session_id`; once stored, waits (up to
  // 10 s) for its scan, so that the verdict lands inside this call. The
  // attachment's id goes to `attachment_id`.
  grpc::Status Upload(const std::string& token, const std::string& session_id,
                      std::string* attachment_id = nullptr) {
    const std::string text = "withdrawal 42 is stuck\n";
    sv1::UploadAttachmentResponse out;
    auto context = Context(token);
    auto writer = sessions_->UploadAttachment(context.get(), &out);
    sv1::UploadAttachmentRequest header;
    header.mutable_header()->set_session_id(session_id);
    header.mutable_header()->set_upload_id(Fresh("up"));
    header.mutable_header()->set_file_name("log.txt");
    header.mutable_header()->set_content_type("text/plain");
    header.mutable_header()->set_size_bytes(static_cast<int64_t>(text.size()));
    header.mutable_header()->set_sha256(blob::ContentAddress(text));
    sv1::UploadAttachmentRequest chunk;
    chunk.set_chunk(text);
    if (writer->Write(header)) writer->Write(chunk);
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    if (!status.ok()) return status;
    if (attachment_id != nullptr) *attachment_id = out.attachment().attachment_id();
    for (int i = 0; i < 200; ++i) {
      grpc::Status downloaded = Download(token, session_id, out.attachment().attachment_id());
      if (downloaded.error_code() != grpc::StatusCode::FAILED_PRECONDITION) return downloaded;
      absl::SleepFor(absl::Milliseconds(50));
    }
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "no scan verdict in 10 s");
  }

  grpc::Status Download(const std::string& token, const std::string& session_id,
                        const std::string& attachment_id) {
    sv1::DownloadAttachmentRequest r;
    r.set_session_id(session_id);
    r.set_attachment_id(attachment_id);
    auto context = Context(token);
    auto reader = sessions_->DownloadAttachment(context.get(), r);
    sv1::DownloadAttachmentResponse response;
    while (reader->Read(&response)) {
    }
    return reader->Finish();
  }

  // A QUEUED EMAIL session of a fresh customer A, in `category`.
  Target QueuedSession(common::v1::Category category = common::v1::CATEGORY_DEPOSIT) {
    Target target;
    target.customer = Fresh("cust-a");
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_EMAIL);
    request.set_category(category);
    request.set_language("en");
    request.set_subject("help");
    request.mutable_first_message()->set_text("My deposit has not arrived.");
    sv1::CreateSessionResponse response;
    grpc::Status status = sessions_->CreateSession(
        Context(tokens_->For(Role::kCustomer, target.customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.session().state(), sv1::SESSION_STATE_QUEUED);
    target.id = response.session().session_id();
    return target;
  }

  // A session assigned to agent A.
  Target AssignedSession() {
    Target target = QueuedSession();
    sv1::AssignAgentRequest request;
    request.set_session_id(target.id);
    request.set_agent_id(kAgentA);
    request.set_offer_id(Fresh("offer"));
    sv1::AssignAgentResponse response;
    grpc::Status status = sessions_->AssignAgent(
        Context(tokens_->ServiceToken("routing", "sessions")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  // A CHAT session of a fresh customer A, escalated (no bot): QUEUED.
  Target QueuedChat() {
    Target target;
    target.customer = Fresh("cust-a");
    const std::string token = tokens_->For(Role::kCustomer, target.customer);
    sv1::CreateSessionRequest request;
    request.set_channel(common::v1::CHANNEL_CHAT);
    request.set_category(common::v1::CATEGORY_DEPOSIT);
    request.set_language("en");
    request.mutable_first_message()->set_text("My deposit has not arrived.");
    sv1::CreateSessionResponse response;
    grpc::Status status = sessions_->CreateSession(Context(token).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    target.id = response.session().session_id();
    sv1::EscalateSessionRequest escalate;
    escalate.set_session_id(target.id);
    sv1::EscalateSessionResponse escalated;
    status = sessions_->EscalateSession(Context(token).get(), escalate, &escalated);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(escalated.session().state(), sv1::SESSION_STATE_QUEUED);
    return target;
  }

  // A schedule that governs no queue (so that no other row's queue closes):
  // target.id is its id.
  Target Schedule() {
    Target target;
    target.id = Fresh("hours");
    rv1::SetScheduleResponse response;
    grpc::Status status = routing_->SetSchedule(
        Context(tokens_->For(Role::kSupervisor, "sup-1")).get(), ScheduleRequest(target.id),
        &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  static rv1::SetScheduleRequest ScheduleRequest(const std::string& schedule_id) {
    rv1::SetScheduleRequest request;
    request.mutable_schedule()->set_schedule_id(schedule_id);
    request.mutable_schedule()->set_time_zone("Asia/Shanghai");
    rv1::WeeklyHours* monday = request.mutable_schedule()->add_weekly_hours();
    monday->set_day(rv1::DAY_OF_WEEK_MONDAY);
    monday->set_start_time("09:00");
    monday->set_end_time("18:00");
    return request;
  }

  // A session agent A resolved.
  Target ResolvedSession() {
    Target target = AssignedSession();
    sv1::ResolveSessionRequest request;
    request.set_session_id(target.id);
    sv1::ResolveSessionResponse response;
    grpc::Status status = sessions_->ResolveSession(
        Context(tokens_->For(Role::kAgent, kAgentA)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  // A resolved session that customer A rated.
  Target RatedSession() {
    Target target = ResolvedSession();
    grpc::Status status = Rate(tokens_->For(Role::kCustomer, target.customer), target.id);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  grpc::Status Rate(const std::string& token, const std::string& session_id) {
    fv1::SubmitFeedbackRequest request;
    request.set_session_id(session_id);
    request.mutable_ratings()->set_response_speed(4);
    request.mutable_ratings()->set_professionalism(5);
    request.mutable_ratings()->set_problem_resolution(5);
    request.set_overall_satisfaction(5);
    fv1::SubmitFeedbackResponse response;
    return feedback_->SubmitFeedback(Context(token).get(), request, &response);
  }

  // A verification token of `customer`, as identity signs them.
  std::string VerificationToken(const std::string& customer) {
    auth::VerificationClaims claims;
    claims.customer_id = customer;
    claims.method = "email_otp";
    claims.level = auth::kLevelBasic;
    claims.token_id = Fresh("vt");
    claims.issued_at = absl::Now();
    claims.expires_at = absl::Now() + absl::Minutes(15);
    return *auth::SignVerificationToken(tokens_->verification_signer(), claims);
  }

  // A complaint customer A filed.
  Target Complaint() {
    Target target;
    target.customer = Fresh("cust-a");
    fv1::FileComplaintRequest request;
    request.set_reason(fv1::COMPLAINT_REASON_OTHER);
    request.set_description("Nobody answered.");
    fv1::FileComplaintResponse response;
    grpc::Status status = feedback_->FileComplaint(
        Context(tokens_->For(Role::kCustomer, target.customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    target.id = response.complaint().complaint_id();
    return target;
  }

  // A session of customer A waiting in routing (a category no agent serves).
  Target WaitingEntry() {
    Target target;
    target.customer = Fresh("cust-a");
    target.id = Fresh("entry");
    rv1::EnqueueSessionRequest request = EnqueueRequest(target.id, target.customer);
    rv1::EnqueueSessionResponse response;
    grpc::Status status = routing_->EnqueueSession(
        Context(tokens_->ServiceToken("sessions", "routing")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  static rv1::EnqueueSessionRequest EnqueueRequest(
      const std::string& session_id, const std::string& customer,
      common::v1::Category category = common::v1::CATEGORY_DEPOSIT) {
    rv1::EnqueueSessionRequest request;
    request.set_session_id(session_id);
    request.set_customer_id(customer);
    request.set_channel(common::v1::CHANNEL_EMAIL);
    request.set_category(category);
    request.set_language("en");
    request.set_reason(rv1::ENQUEUE_REASON_NEW_SESSION);
    return request;
  }

  // Agent A's profile: the only agent who serves TRADING e-mails, which only
  // the offer fixture queues.
  static pv1::AgentProfile AgentProfile() {
    pv1::AgentProfile profile;
    profile.set_display_name("Ana");
    profile.mutable_skills()->add_categories(common::v1::CATEGORY_TRADING);
    profile.mutable_skills()->add_languages("en");
    pv1::ChannelCapacity* email = profile.add_capacities();
    email->set_channel(common::v1::CHANNEL_EMAIL);
    email->set_capacity(100);
    return profile;
  }

  static pv1::SetAgentProfileRequest AgentAProfile() {
    pv1::SetAgentProfileRequest request;
    request.set_agent_id(kAgentA);
    *request.mutable_profile() = AgentProfile();
    return request;
  }

  static pv1::SetStatusRequest AgentAOnline() {
    pv1::SetStatusRequest request;
    request.set_agent_id(kAgentA);
    request.set_status(pv1::AGENT_STATUS_ONLINE);
    return request;
  }

  // A supervisor sets agent A's profile (a retry after the first time),
  // then agent A goes online.
  void EnsureAgentAOnline() {
    pv1::SetAgentProfileResponse profiled;
    grpc::Status status = presence_->SetAgentProfile(
        Context(tokens_->For(Role::kSupervisor, "sup-1")).get(), AgentAProfile(), &profiled);
    ASSERT_TRUE(status.ok()) << status.error_message();
    pv1::SetStatusResponse online;
    status = presence_->SetStatus(Context(tokens_->For(Role::kAgent, kAgentA)).get(),
                                  AgentAOnline(), &online);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // An open offer of a fresh session to agent A: target.id is the offer id.
  Target Offer() {
    EnsureAgentAOnline();
    Target session = QueuedSession(common::v1::CATEGORY_TRADING);
    auto context = Context(tokens_->For(Role::kAgent, kAgentA), absl::Seconds(20));
    auto offers = routing_->WatchOffers(context.get(), {});
    rv1::EnqueueSessionResponse queued;
    grpc::Status status = routing_->EnqueueSession(
        Context(tokens_->ServiceToken("sessions", "routing")).get(),
        EnqueueRequest(session.id, session.customer, common::v1::CATEGORY_TRADING), &queued);
    EXPECT_TRUE(status.ok()) << status.error_message();
    Target target;
    target.customer = session.customer;
    target.extra = session.id;
    rv1::WatchOffersResponse message;
    while (target.id.empty() && offers->Read(&message)) {
      if (message.has_offer() && message.offer().entry().session_id() == session.id) {
        target.id = message.offer().offer_id();
      }
    }
    context->TryCancel();
    offers->Finish();
    EXPECT_FALSE(target.id.empty()) << "no offer for " << session.id;
    return target;
  }

  // A reservation routing holds on agent A: target.id is its session id.
  Target Reservation() {
    EnsureAgentAOnline();
    Target target;
    target.id = Fresh("reserved");
    pv1::ReserveCapacityRequest request = ReserveRequest(target.id);
    pv1::ReserveCapacityResponse response;
    grpc::Status status = presence_->ReserveCapacity(
        Context(tokens_->ServiceToken("routing", "presence")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return target;
  }

  static pv1::ReserveCapacityRequest ReserveRequest(const std::string& session_id) {
    pv1::ReserveCapacityRequest request;
    request.set_agent_id(kAgentA);
    request.set_session_id(session_id);
    request.set_channel(common::v1::CHANNEL_EMAIL);
    request.mutable_hold()->set_seconds(540);
    request.set_holder_id(1);
    return request;
  }

  // A challenge of customer A's (an e-mail code, read from identity's
  // development outbox): target.extra is the code.
  Target Challenge() {
    Target target;
    target.customer = Fresh("cust-a");
    RegisterContact(target.customer);
    iv1::StartVerificationRequest request;
    request.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    iv1::StartVerificationResponse response;
    grpc::Status status = identity_->StartVerification(
        Context(tokens_->For(Role::kCustomer, target.customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    target.id = response.challenge_id();
    target.extra = DeliveredCode([&](const iv1::CodeDeliveryRequest& delivery) {
      return delivery.challenge_id() == target.id;
    });
    EXPECT_FALSE(target.extra.empty()) << "no code for " << target.id;
    return target;
  }

  // The code of the last delivery in identity's development outbox that
  // `matches`, or "".
  static std::string DeliveredCode(
      const std::function<bool(const iv1::CodeDeliveryRequest&)>& matches) {
    const std::string outbox =
        testing::ReadFile(*dir_ + "/identity/DEVELOPMENT-ONLY-code-outbox.jsonl");
    std::string code;
    for (absl::string_view line : absl::StrSplit(outbox, '\n', absl::SkipEmpty())) {
      iv1::CodeDeliveryRequest delivery;
      if (google::protobuf::util::JsonStringToMessage(std::string(line), &delivery).ok() &&
          matches(delivery)) {
        code = delivery.code();
      }
    }
    return code;
  }

  // A supervisor's change of customer A's e-mail address, pending:
  // target.id is the change, target.extra the confirmation code the notice
  // took to the address the account system set.
  Target PendingChange() {
    Target target;
    target.customer = Fresh("cust-a");
    RegisterContact(target.customer);
    iv1::RegisterContactRequest request;
    request.set_customer_id(target.customer);
    request.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    request.set_address(target.customer + "@elsewhere.example.com");
    iv1::RegisterContactResponse response;
    grpc::Status status = identity_->RegisterContact(
        Context(tokens_->For(Role::kSupervisor, "sup-1")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    target.id = response.pending_change().change_id();
    EXPECT_FALSE(target.id.empty()) << "a supervisor's change applied at once";
    target.extra = DeliveredCode([&](const iv1::CodeDeliveryRequest& delivery) {
      return delivery.purpose() == iv1::DELIVERY_PURPOSE_ACCOUNT_CHANGE_NOTICE &&
             delivery.account_change().change_id() == target.id;
    });
    EXPECT_FALSE(target.extra.empty()) << "no notice for " << target.id;
    return target;
  }

  void RegisterContact(const std::string& customer) {
    iv1::RegisterContactRequest request;
    request.set_customer_id(customer);
    request.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
    request.set_address(customer + "@example.com");
    iv1::RegisterContactResponse response;
    grpc::Status status = identity_->RegisterContact(
        Context(tokens_->ServiceToken("accounts", "identity")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    EXPECT_FALSE(response.has_pending_change()) << "the account system's contact waits";
  }

  // An authenticator enrollment a supervisor started for customer A:
  // target.extra is its secret (base32).
  Target Enrollment() {
    Target target;
    target.customer = Fresh("cust-a");
    iv1::StartTotpEnrollmentRequest request;
    request.set_customer_id(target.customer);
    iv1::StartTotpEnrollmentResponse response;
    grpc::Status status = identity_->StartTotpEnrollment(
        Context(tokens_->For(Role::kSupervisor, "sup-1")).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    target.id = response.enrollment_id();
    target.extra = response.secret_base32();
    return target;
  }

  // --- State --------------------------------------------------------------

  // Every service's database and events file, once its outbox is empty (the
  // relay has published what earlier calls committed).
  std::map<std::string, std::string> State() {
    std::map<std::string, std::string> state;
    for (const std::string& name : ServiceNames()) {
      const std::string db = absl::StrCat(*dir_, "/", name, "/", name, ".db");
      for (int i = 0; i < 200 && OutboxRows(db) != 0; ++i) absl::SleepFor(absl::Milliseconds(50));
      state[name] = absl::StrCat(
          DumpDatabase(db), "\n[events] ",
          testing::ReadFile(absl::StrCat(*dir_, "/", name, "/events/", name, ".jsonl")).size());
    }
    return state;
  }

  // State() once it holds still: work a fixture set off in the background
  // (feedback queuing a complaint in routing, routing offering a session)
  // has finished.
  std::map<std::string, std::string> SettledState() {
    std::map<std::string, std::string> state = State();
    for (int i = 0; i < 50; ++i) {
      absl::SleepFor(absl::Milliseconds(200));
      std::map<std::string, std::string> again = State();
      if (again == state) break;
      state = std::move(again);
    }
    return state;
  }

  // --- The matrix ---------------------------------------------------------

  void Check(const std::string& service, const std::string& method, const Row& row) {
    const auth::MethodAccess* access =
        auth::ServicePolicy::Of(FullServiceName(service)).Find(method);
    ASSERT_NE(access, nullptr) << service << "." << method;
    const std::string rpc = absl::StrCat(service, ".", method);

    // Refused callers share one object: none of them may change it.
    const Target shared = row.prepare();
    const std::map<std::string, std::string> before = SettledState();
    for (Who who : AllCallers()) {
      const std::optional<auth::Principal> principal = PrincipalOf(who);
      const bool admitted = principal.has_value() && access->Admits(*principal);
      const bool owner = admitted && (row.owners.empty() || row.owners.count(who) > 0);
      if (owner) continue;
      const grpc::Status status = row.call(who, Token(who, service, shared), shared);
      if (!principal.has_value()) {
        EXPECT_EQ(status.error_code(), StatusCode::UNAUTHENTICATED)
            << rpc << " as " << Name(who) << ": " << status.error_message();
      } else if (!admitted) {
        EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED)
            << rpc << " as " << Name(who) << ": " << status.error_message();
      } else if (row.denial == Denial::kPermissionDenied) {
        EXPECT_EQ(status.error_code(), StatusCode::PERMISSION_DENIED)
            << rpc << " as " << Name(who) << " on another's object: " << status.error_message();
      } else {
        const Target missing = Missing(shared);
        const grpc::Status absent = row.call(who, Token(who, service, missing), missing);
        EXPECT_NE(absent.error_code(), StatusCode::OK) << rpc << " on a missing object";
        EXPECT_EQ(status.error_code(), absent.error_code())
            << rpc << " as " << Name(who) << ": " << status.error_message();
        EXPECT_EQ(absl::StrReplaceAll(status.error_message(), {{shared.id, missing.id}}),
                  absent.error_message())
            << rpc << " as " << Name(who);
      }
      const std::map<std::string, std::string> after = State();
      for (const auto& [name, text] : before) {
        EXPECT_EQ(Difference(text, after.at(name)), "")
            << rpc << " as " << Name(who) << " changed " << name << "'s state";
      }
    }

    // Each admitted owner on an object of its own.
    for (Who who : AllCallers()) {
      const std::optional<auth::Principal> principal = PrincipalOf(who);
      if (!principal.has_value() || !access->Admits(*principal)) continue;
      if (!row.owners.empty() && row.owners.count(who) == 0) continue;
      const Target target = row.prepare();
      const grpc::Status status = row.call(who, Token(who, service, target), target);
      EXPECT_TRUE(status.ok()) << rpc << " as " << Name(who) << ": "
                               << static_cast<int>(status.error_code()) << " "
                               << status.error_message();
    }
  }

  void CheckService(const std::string& service) {
    const google::protobuf::ServiceDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            FullServiceName(service));
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      const std::string method = descriptor->method(i)->name();
      auto row = rows_.find(absl::StrCat(service, ".", method));
      if (row == rows_.end()) {
        ADD_FAILURE() << descriptor->method(i)->full_name()
                      << " has no row in the authorization matrix";
        continue;
      }
      SCOPED_TRACE(descriptor->method(i)->full_name());
      Check(service, method, row->second);
    }
  }

  void Add(const std::string& rpc, Row row) { rows_[rpc] = std::move(row); }

  void AddRows();

  static std::string* dir_;
  static testing::TestTokens* tokens_;
  static std::map<std::string, std::unique_ptr<testing::ServerProcess>>* servers_;
  static testing::ClamdServer* clamd_;

  auth::SigningKey other_key_ = *auth::SigningKey::Generate();
  int serial_ = 0;
  std::map<std::string, Row> rows_;
  std::unique_ptr<sv1::SessionsService::Stub> sessions_;
  std::unique_ptr<rv1::RoutingService::Stub> routing_;
  std::unique_ptr<bv1::BotService::Stub> bot_;
  std::unique_ptr<pv1::PresenceService::Stub> presence_;
  std::unique_ptr<iv1::IdentityService::Stub> identity_;
  std::unique_ptr<fv1::FeedbackService::Stub> feedback_;
};

std::string* AuthzMatrixTest::dir_ = nullptr;
testing::TestTokens* AuthzMatrixTest::tokens_ = nullptr;
std::map<std::string, std::unique_ptr<testing::ServerProcess>>* AuthzMatrixTest::servers_ =
    nullptr;
testing::ClamdServer* AuthzMatrixTest::clamd_ = nullptr;

const Target kNoObject;

void AuthzMatrixTest::AddRows() {
  const auto none = [] { return kNoObject; };
  const std::set<Who> kSessionPeople = {Who::kCustomerA, Who::kAgentA, Who::kSupervisor};

  // --- sessions -------------------------------------------------------------
  Add("sessions.CreateSession",
      {{}, Denial::kAsMissing, none, [this](Who who, const std::string& token, const Target&) {
         sv1::CreateSessionRequest r;
         if (who == Who::kSupervisor) r.set_customer_id(Fresh("cust-s"));
         r.set_channel(common::v1::CHANNEL_EMAIL);
         r.set_category(common::v1::CATEGORY_DEPOSIT);
         r.set_subject("help");
         r.mutable_first_message()->set_text("hello");
         sv1::CreateSessionResponse out;
         return sessions_->CreateSession(Context(token).get(), r, &out);
       }});
  Add("sessions.GetSession",
      {{Who::kCustomerA, Who::kAgentA, Who::kSupervisor, Who::kRouting, Who::kFeedback},
       Denial::kAsMissing,
       [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::GetSessionRequest r;
         r.set_session_id(t.id);
         sv1::GetSessionResponse out;
         return sessions_->GetSession(Context(token).get(), r, &out);
       }});
  Add("sessions.ListSessions",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         sv1::ListSessionsResponse out;
         return sessions_->ListSessions(Context(token).get(), {}, &out);
       }});
  Add("sessions.SendMessage",
      {kSessionPeople, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::SendMessageRequest r;
         r.set_session_id(t.id);
         r.set_client_message_id(Fresh("m"));
         r.mutable_message()->set_text("hi");
         sv1::SendMessageResponse out;
         return sessions_->SendMessage(Context(token).get(), r, &out);
       }});
  Add("sessions.ListMessages",
      {kSessionPeople, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::ListMessagesRequest r;
         r.set_session_id(t.id);
         sv1::ListMessagesResponse out;
         return sessions_->ListMessages(Context(token).get(), r, &out);
       }});
  Add("sessions.StreamSessionEvents",
      {kSessionPeople, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::StreamSessionEventsRequest r;
         r.set_session_id(t.id);
         auto context = Context(token);
         return FirstMessage(*context, sessions_->StreamSessionEvents(context.get(), r));
       }});
  Add("sessions.UpdateTyping",
      {{Who::kCustomerA, Who::kAgentA}, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::UpdateTypingRequest r;
         r.set_session_id(t.id);
         r.set_typing(true);
         sv1::UpdateTypingResponse out;
         return sessions_->UpdateTyping(Context(token).get(), r, &out);
       }});
  Add("sessions.AttachVerification",
      {{Who::kCustomerA}, Denial::kAsMissing,
       [this] {
         Target t = AssignedSession();
         t.extra = VerificationToken(t.customer);
         return t;
       },
       [this](Who, const std::string& token, const Target& t) {
         sv1::AttachVerificationRequest r;
         r.set_session_id(t.id);
         r.set_verification_token(t.extra);
         sv1::AttachVerificationResponse out;
         return sessions_->AttachVerification(Context(token).get(), r, &out);
       }});
  Add("sessions.EscalateSession",
      {{Who::kCustomerA}, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::EscalateSessionRequest r;
         r.set_session_id(t.id);
         sv1::EscalateSessionResponse out;
         return sessions_->EscalateSession(Context(token).get(), r, &out);
       }});
  Add("sessions.RecordOffer",
      {{}, Denial::kAsMissing, [this] { return QueuedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::RecordOfferRequest r;
         r.set_session_id(t.id);
         r.set_agent_id(kAgentA);
         r.set_offer_id(Fresh("offer"));
         protoutil::ToTimestamp(absl::Now() + absl::Minutes(5), r.mutable_expires_at());
         sv1::RecordOfferResponse out;
         return sessions_->RecordOffer(Context(token).get(), r, &out);
       }});
  Add("sessions.AssignAgent",
      {{}, Denial::kAsMissing, [this] { return QueuedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::AssignAgentRequest r;
         r.set_session_id(t.id);
         r.set_agent_id(kAgentA);
         r.set_offer_id(Fresh("offer"));
         sv1::AssignAgentResponse out;
         return sessions_->AssignAgent(Context(token).get(), r, &out);
       }});
  Add("sessions.TransferSession",
      {{Who::kAgentA, Who::kSupervisor}, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::TransferSessionRequest r;
         r.set_session_id(t.id);
         r.mutable_queue()->set_category(common::v1::CATEGORY_WITHDRAWAL);
         sv1::TransferSessionResponse out;
         return sessions_->TransferSession(Context(token).get(), r, &out);
       }});
  Add("sessions.RequeueSession",
      {{}, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::RequeueSessionRequest r;
         r.set_session_id(t.id);
         r.set_agent_id(kAgentA);
         sv1::RequeueSessionResponse out;
         return sessions_->RequeueSession(Context(token).get(), r, &out);
       }});
  Add("sessions.ResolveSession",
      {kSessionPeople, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::ResolveSessionRequest r;
         r.set_session_id(t.id);
         sv1::ResolveSessionResponse out;
         return sessions_->ResolveSession(Context(token).get(), r, &out);
       }});
  Add("sessions.ReopenSession",
      {kSessionPeople, Denial::kAsMissing, [this] { return ResolvedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::ReopenSessionRequest r;
         r.set_session_id(t.id);
         sv1::ReopenSessionResponse out;
         return sessions_->ReopenSession(Context(token).get(), r, &out);
       }});
  Add("sessions.CloseSession",
      {{Who::kCustomerA, Who::kAgentA, Who::kSupervisor, Who::kFeedback}, Denial::kAsMissing,
       [this] { return ResolvedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::CloseSessionRequest r;
         r.set_session_id(t.id);
         sv1::CloseSessionResponse out;
         return sessions_->CloseSession(Context(token).get(), r, &out);
       }});
  Add("sessions.UploadAttachment",
      {{Who::kCustomerA, Who::kAgentA}, Denial::kAsMissing, [this] { return AssignedSession(); },
       [this](Who, const std::string& token, const Target& t) { return Upload(token, t.id); }});
  Add("sessions.DownloadAttachment",
      {kSessionPeople, Denial::kAsMissing,
       [this] {
         Target t = AssignedSession();
         EXPECT_TRUE(Upload(tokens_->For(Role::kCustomer, t.customer), t.id, &t.extra).ok());
         return t;
       },
       [this](Who, const std::string& token, const Target& t) {
         return Download(token, t.id, t.extra);
       }});
  Add("sessions.ContinueByEmail",
      {{Who::kCustomerA}, Denial::kAsMissing, [this] { return QueuedChat(); },
       [this](Who, const std::string& token, const Target& t) {
         sv1::ContinueByEmailRequest r;
         r.set_session_id(t.id);
         sv1::ContinueByEmailResponse out;
         return sessions_->ContinueByEmail(Context(token).get(), r, &out);
       }});
  Add("sessions.RequestCallback",
      {{Who::kCustomerA}, Denial::kAsMissing,
       [this] {
         Target t = AssignedSession();
         t.extra = VerificationToken(t.customer);
         return t;
       },
       [this](Who, const std::string& token, const Target& t) {
         sv1::RequestCallbackRequest r;
         r.set_session_id(t.id);
         r.set_request_id(Fresh("cb"));
         r.mutable_callback()->set_phone_number("+8613800138000");
         protoutil::ToTimestamp(absl::Now() + absl::Hours(2),
                                r.mutable_callback()->mutable_window_end());
         r.mutable_callback()->set_verification_token(t.extra);
         sv1::RequestCallbackResponse out;
         return sessions_->RequestCallback(Context(token).get(), r, &out);
       }});

  // --- routing --------------------------------------------------------------
  Add("routing.EnqueueSession",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::EnqueueSessionResponse out;
         return routing_->EnqueueSession(Context(token).get(),
                                         EnqueueRequest(Fresh("enq"), Fresh("cust")), &out);
       }});
  Add("routing.CancelSession",
      {{}, Denial::kAsMissing, [this] { return WaitingEntry(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::CancelSessionRequest r;
         r.set_session_id(t.id);
         r.set_reason(rv1::CANCEL_REASON_CUSTOMER_LEFT);
         rv1::CancelSessionResponse out;
         return routing_->CancelSession(Context(token).get(), r, &out);
       }});
  Add("routing.EnqueueComplaint",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::EnqueueComplaintRequest r;
         r.set_complaint_id(Fresh("cmp"));
         r.set_customer_id(Fresh("cust"));
         r.set_category(common::v1::CATEGORY_DEPOSIT);
         rv1::EnqueueComplaintResponse out;
         return routing_->EnqueueComplaint(Context(token).get(), r, &out);
       }});
  Add("routing.CancelComplaint",
      {{}, Denial::kAsMissing,
       [this] {
         Target t;
         t.id = Fresh("cmp");
         rv1::EnqueueComplaintRequest r;
         r.set_complaint_id(t.id);
         r.set_customer_id(Fresh("cust"));
         r.set_category(common::v1::CATEGORY_DEPOSIT);
         rv1::EnqueueComplaintResponse out;
         const auto context = Context(tokens_->ServiceToken("feedback", "routing"));
         EXPECT_TRUE(routing_->EnqueueComplaint(context.get(), r, &out).ok());
         return t;
       },
       [this](Who, const std::string& token, const Target& t) {
         rv1::CancelComplaintRequest r;
         r.set_complaint_id(t.id);
         r.set_reason(rv1::CANCEL_REASON_COMPLAINT_HANDLED);
         rv1::CancelComplaintResponse out;
         return routing_->CancelComplaint(Context(token).get(), r, &out);
       }});
  Add("routing.WatchOffers",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         auto context = Context(token);
         return FirstMessage(*context, routing_->WatchOffers(context.get(), {}));
       }});
  Add("routing.AcceptOffer",
      {{Who::kAgentA}, Denial::kAsMissing, [this] { return Offer(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::AcceptOfferRequest r;
         r.set_offer_id(t.id);
         rv1::AcceptOfferResponse out;
         return routing_->AcceptOffer(Context(token).get(), r, &out);
       }});
  Add("routing.DeclineOffer",
      {{Who::kAgentA}, Denial::kAsMissing, [this] { return Offer(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::DeclineOfferRequest r;
         r.set_offer_id(t.id);
         rv1::DeclineOfferResponse out;
         return routing_->DeclineOffer(Context(token).get(), r, &out);
       }});
  Add("routing.GetQueueEntry",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kAsMissing, [this] { return WaitingEntry(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::GetQueueEntryRequest r;
         r.set_session_id(t.id);
         rv1::GetQueueEntryResponse out;
         return routing_->GetQueueEntry(Context(token).get(), r, &out);
       }});
  Add("routing.ListQueueEntries",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::ListQueueEntriesResponse out;
         return routing_->ListQueueEntries(Context(token).get(), {}, &out);
       }});
  Add("routing.GetQueueStats",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::GetQueueStatsResponse out;
         return routing_->GetQueueStats(Context(token).get(), {}, &out);
       }});
  // Agent A's settings: another agent is refused outright, as the RPC says.
  Add("routing.GetAgentSettings",
      {{Who::kAgentA, Who::kSupervisor}, Denial::kPermissionDenied, none,
       [this](Who, const std::string& token, const Target&) {
         rv1::GetAgentSettingsRequest r;
         r.set_agent_id(kAgentA);
         rv1::GetAgentSettingsResponse out;
         return routing_->GetAgentSettings(Context(token).get(), r, &out);
       }});
  Add("routing.UpdateAgentSettings",
      {{Who::kAgentA, Who::kSupervisor}, Denial::kPermissionDenied, none,
       [this](Who, const std::string& token, const Target&) {
         rv1::UpdateAgentSettingsRequest r;
         r.set_agent_id(kAgentA);
         r.mutable_settings()->set_auto_accept(false);
         rv1::UpdateAgentSettingsResponse out;
         return routing_->UpdateAgentSettings(Context(token).get(), r, &out);
       }});

  Add("routing.SetSchedule",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::SetScheduleResponse out;
         return routing_->SetSchedule(Context(token).get(), ScheduleRequest(Fresh("hours")),
                                      &out);
       }});
  Add("routing.GetSchedule",
      {{}, Denial::kAsMissing, [this] { return Schedule(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::GetScheduleRequest r;
         r.set_schedule_id(t.id);
         rv1::GetScheduleResponse out;
         return routing_->GetSchedule(Context(token).get(), r, &out);
       }});
  Add("routing.ListSchedules",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::ListSchedulesResponse out;
         return routing_->ListSchedules(Context(token).get(), {}, &out);
       }});
  Add("routing.DeleteSchedule",
      {{}, Denial::kAsMissing, [this] { return Schedule(); },
       [this](Who, const std::string& token, const Target& t) {
         rv1::DeleteScheduleRequest r;
         r.set_schedule_id(t.id);
         rv1::DeleteScheduleResponse out;
         return routing_->DeleteSchedule(Context(token).get(), r, &out);
       }});
  Add("routing.GetQueueHours",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         rv1::GetQueueHoursRequest r;
         r.set_channel(common::v1::CHANNEL_EMAIL);
         r.set_category(common::v1::CATEGORY_DEPOSIT);
         r.set_language("en");
         rv1::GetQueueHoursResponse out;
         return routing_->GetQueueHours(Context(token).get(), r, &out);
       }});

  // --- bot ------------------------------------------------------------------
  Add("bot.Answer",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         bv1::AnswerRequest r;
         r.set_session_id(Fresh("s"));
         r.set_turn_id("t-1");
         r.set_text("hello");
         r.set_channel(common::v1::CHANNEL_CHAT);
         bv1::AnswerResponse out;
         return bot_->Answer(Context(token).get(), r, &out);
       }});
  Add("bot.ListIntents",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         bv1::ListIntentsResponse out;
         return bot_->ListIntents(Context(token).get(), {}, &out);
       }});
  Add("bot.ReloadKnowledgeBase",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         bv1::ReloadKnowledgeBaseResponse out;
         return bot_->ReloadKnowledgeBase(Context(token, absl::Seconds(60)).get(), {}, &out);
       }});
  Add("bot.ResetDialogue",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         bv1::ResetDialogueRequest r;
         r.set_session_id(Fresh("s"));
         bv1::ResetDialogueResponse out;
         return bot_->ResetDialogue(Context(token).get(), r, &out);
       }});

  // --- presence: the object is agent A's presence ---------------------------
  const std::set<Who> kAgentAOrSupervisor = {Who::kAgentA, Who::kSupervisor};
  Add("presence.SetStatus",
      {kAgentAOrSupervisor, Denial::kPermissionDenied,
       [this] {
         EnsureAgentAOnline();
         return kNoObject;
       },
       [this](Who, const std::string& token, const Target&) {
         pv1::SetStatusResponse out;
         return presence_->SetStatus(Context(token).get(), AgentAOnline(), &out);
       }});
  // Agent A's profile, the same each time: a supervisor's retry.
  Add("presence.SetAgentProfile",
      {{}, Denial::kAsMissing,
       [this] {
         EnsureAgentAOnline();
         return kNoObject;
       },
       [this](Who, const std::string& token, const Target&) {
         pv1::SetAgentProfileResponse out;
         return presence_->SetAgentProfile(Context(token).get(), AgentAProfile(), &out);
       }});
  Add("presence.Heartbeat",
      {{Who::kAgentA}, Denial::kPermissionDenied,
       [this] {
         EnsureAgentAOnline();
         return kNoObject;
       },
       [this](Who, const std::string& token, const Target&) {
         pv1::HeartbeatRequest r;
         r.set_agent_id(kAgentA);
         pv1::HeartbeatResponse out;
         return presence_->Heartbeat(Context(token).get(), r, &out);
       }});
  Add("presence.GetAgent",
      {kAgentAOrSupervisor, Denial::kPermissionDenied,
       [this] {
         EnsureAgentAOnline();
         return kNoObject;
       },
       [this](Who, const std::string& token, const Target&) {
         pv1::GetAgentRequest r;
         r.set_agent_id(kAgentA);
         pv1::GetAgentResponse out;
         return presence_->GetAgent(Context(token).get(), r, &out);
       }});
  Add("presence.ListAgents",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         pv1::ListAgentsResponse out;
         return presence_->ListAgents(Context(token).get(), {}, &out);
       }});
  Add("presence.WatchPresence",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         auto context = Context(token);
         return FirstMessage(*context, presence_->WatchPresence(context.get(), {}));
       }});
  Add("presence.ReserveCapacity",
      {{}, Denial::kAsMissing,
       [this] {
         EnsureAgentAOnline();
         return kNoObject;
       },
       [this](Who, const std::string& token, const Target&) {
         pv1::ReserveCapacityResponse out;
         return presence_->ReserveCapacity(Context(token).get(), ReserveRequest(Fresh("res")),
                                           &out);
       }});
  Add("presence.ConfirmReservation",
      {{}, Denial::kAsMissing, [this] { return Reservation(); },
       [this](Who, const std::string& token, const Target& t) {
         pv1::ConfirmReservationRequest r;
         r.set_agent_id(kAgentA);
         r.set_session_id(t.id);
         pv1::ConfirmReservationResponse out;
         return presence_->ConfirmReservation(Context(token).get(), r, &out);
       }});
  Add("presence.ReleaseCapacity",
      {{}, Denial::kAsMissing, [this] { return Reservation(); },
       [this](Who, const std::string& token, const Target& t) {
         pv1::ReleaseCapacityRequest r;
         r.set_agent_id(kAgentA);
         r.set_session_id(t.id);
         r.set_holder_id(1);
         pv1::ReleaseCapacityResponse out;
         return presence_->ReleaseCapacity(Context(token).get(), r, &out);
       }});
  Add("presence.ReconcileReservations",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         // A range with no agent in it: nothing to release.
         pv1::ReconcileReservationsRequest r;
         r.set_agent_id_from("zzz-none-0");
         r.set_agent_id_to("zzz-none-1");
         pv1::ReconcileReservationsResponse out;
         return presence_->ReconcileReservations(Context(token).get(), r, &out);
       }});

  // --- identity: customer A's challenges, enrollments and contacts ----------
  Add("identity.StartVerification",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         iv1::StartVerificationRequest r;
         r.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
         iv1::StartVerificationResponse out;
         return identity_->StartVerification(Context(token).get(), r, &out);
       }});
  Add("identity.CompleteVerification",
      {{Who::kCustomerA}, Denial::kAsMissing, [this] { return Challenge(); },
       [this](Who, const std::string& token, const Target& t) {
         iv1::CompleteVerificationRequest r;
         r.set_challenge_id(t.id);
         r.set_code(t.extra);
         iv1::CompleteVerificationResponse out;
         return identity_->CompleteVerification(Context(token).get(), r, &out);
       }});
  Add("identity.ValidateToken",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         iv1::ValidateTokenRequest r;
         r.set_verification_token(VerificationToken("cust-a"));
         iv1::ValidateTokenResponse out;
         return identity_->ValidateToken(Context(token).get(), r, &out);
       }});
  Add("identity.RegisterContact",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         iv1::RegisterContactRequest r;
         r.set_customer_id(Fresh("cust"));
         r.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
         r.set_address("someone@example.com");
         iv1::RegisterContactResponse out;
         return identity_->RegisterContact(Context(token).get(), r, &out);
       }});
  // Customer A's enrollment: customer B naming them is refused outright.
  Add("identity.StartTotpEnrollment",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kPermissionDenied,
       [this] {
         Target t;
         t.customer = Fresh("cust-a");
         t.extra = VerificationToken(t.customer);
         return t;
       },
       [this](Who, const std::string& token, const Target& t) {
         iv1::StartTotpEnrollmentRequest r;
         r.set_customer_id(t.customer);
         r.set_verification_token(t.extra);
         iv1::StartTotpEnrollmentResponse out;
         return identity_->StartTotpEnrollment(Context(token).get(), r, &out);
       }});
  Add("identity.ConfirmTotpEnrollment",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kAsMissing, [this] { return Enrollment(); },
       [this](Who, const std::string& token, const Target& t) {
         iv1::ConfirmTotpEnrollmentRequest r;
         r.set_enrollment_id(t.id);
         r.set_code(identity::Hotp(Base32Decode(t.extra), identity::TotpStep(absl::Now()), 6));
         iv1::ConfirmTotpEnrollmentResponse out;
         return identity_->ConfirmTotpEnrollment(Context(token).get(), r, &out);
       }});

  // Customer A's account changes: customer B naming them is refused
  // outright, as the RPC says.
  Add("identity.ListAccountChanges",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kPermissionDenied,
       [this] { return PendingChange(); },
       [this](Who, const std::string& token, const Target& t) {
         iv1::ListAccountChangesRequest r;
         r.set_customer_id(t.customer);
         iv1::ListAccountChangesResponse out;
         return identity_->ListAccountChanges(Context(token).get(), r, &out);
       }});
  Add("identity.ConfirmAccountChange",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kAsMissing, [this] { return PendingChange(); },
       [this](Who, const std::string& token, const Target& t) {
         iv1::ConfirmAccountChangeRequest r;
         r.set_change_id(t.id);
         r.set_code(t.extra);
         iv1::ConfirmAccountChangeResponse out;
         return identity_->ConfirmAccountChange(Context(token).get(), r, &out);
       }});
  Add("identity.CancelAccountChange",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kAsMissing, [this] { return PendingChange(); },
       [this](Who, const std::string& token, const Target& t) {
         iv1::CancelAccountChangeRequest r;
         r.set_change_id(t.id);
         iv1::CancelAccountChangeResponse out;
         return identity_->CancelAccountChange(Context(token).get(), r, &out);
       }});

  // --- feedback: customer A's sessions and complaints -----------------------
  Add("feedback.SubmitFeedback",
      {{Who::kCustomerA}, Denial::kAsMissing, [this] { return ResolvedSession(); },
       [this](Who, const std::string& token, const Target& t) { return Rate(token, t.id); }});
  Add("feedback.GetFeedback",
      {kSessionPeople, Denial::kAsMissing, [this] { return RatedSession(); },
       [this](Who, const std::string& token, const Target& t) {
         fv1::GetFeedbackRequest r;
         r.set_session_id(t.id);
         fv1::GetFeedbackResponse out;
         return feedback_->GetFeedback(Context(token).get(), r, &out);
       }});
  Add("feedback.ListFeedback",
      {{}, Denial::kAsMissing, none, [this](Who who, const std::string& token, const Target&) {
         fv1::ListFeedbackRequest r;
         if (who == Who::kAgentA || who == Who::kAgentB) r.set_agent_id(PrincipalOf(who)->subject);
         fv1::ListFeedbackResponse out;
         return feedback_->ListFeedback(Context(token).get(), r, &out);
       }});
  Add("feedback.FileComplaint",
      {{}, Denial::kAsMissing, none, [this](Who who, const std::string& token, const Target&) {
         fv1::FileComplaintRequest r;
         if (who == Who::kSupervisor) r.set_customer_id(Fresh("cust-s"));
         r.set_reason(fv1::COMPLAINT_REASON_OTHER);
         r.set_description("Nobody answered.");
         fv1::FileComplaintResponse out;
         return feedback_->FileComplaint(Context(token).get(), r, &out);
       }});
  Add("feedback.UpdateComplaint",
      {{}, Denial::kAsMissing, [this] { return Complaint(); },
       [this](Who, const std::string& token, const Target& t) {
         fv1::UpdateComplaintRequest r;
         r.set_complaint_id(t.id);
         r.set_note("Looking into it.");
         fv1::UpdateComplaintResponse out;
         return feedback_->UpdateComplaint(Context(token).get(), r, &out);
       }});
  Add("feedback.GetComplaint",
      {{Who::kCustomerA, Who::kSupervisor}, Denial::kAsMissing, [this] { return Complaint(); },
       [this](Who, const std::string& token, const Target& t) {
         fv1::GetComplaintRequest r;
         r.set_complaint_id(t.id);
         fv1::GetComplaintResponse out;
         return feedback_->GetComplaint(Context(token).get(), r, &out);
       }});
  Add("feedback.ListComplaints",
      {{}, Denial::kAsMissing, none, [this](Who, const std::string& token, const Target&) {
         fv1::ListComplaintsResponse out;
         return feedback_->ListComplaints(Context(token).get(), {}, &out);
       }});
  Add("feedback.GetSummary",
      {{}, Denial::kAsMissing, none, [this](Who who, const std::string& token, const Target&) {
         fv1::GetSummaryRequest r;
         if (who == Who::kAgentA || who == Who::kAgentB) r.set_agent_id(PrincipalOf(who)->subject);
         protoutil::ToTimestamp(absl::Now() - absl::Hours(1), r.mutable_start_time());
         fv1::GetSummaryResponse out;
         return feedback_->GetSummary(Context(token).get(), r, &out);
       }});
}

TEST_F(AuthzMatrixTest, EveryRpcOfEveryServiceHasARow) {
  std::set<std::string> rpcs;
  for (const std::string& service : ServiceNames()) {
    const google::protobuf::ServiceDescriptor* descriptor =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            FullServiceName(service));
    ASSERT_NE(descriptor, nullptr) << service;
    for (int i = 0; i < descriptor->method_count(); ++i) {
      const std::string rpc = absl::StrCat(service, ".", descriptor->method(i)->name());
      rpcs.insert(rpc);
      EXPECT_EQ(rows_.count(rpc), 1u) << rpc << " has no row in the authorization matrix";
      EXPECT_NE(auth::ServicePolicy::Of(FullServiceName(service)).Find(
                    descriptor->method(i)->name()),
                nullptr);
    }
  }
  for (const auto& [rpc, row] : rows_) {
    EXPECT_EQ(rpcs.count(rpc), 1u) << rpc << " is a row for an RPC that does not exist";
  }
}

TEST_F(AuthzMatrixTest, Sessions) { CheckService("sessions"); }
TEST_F(AuthzMatrixTest, Routing) { CheckService("routing"); }
TEST_F(AuthzMatrixTest, Bot) { CheckService("bot"); }
TEST_F(AuthzMatrixTest, Presence) { CheckService("presence"); }
TEST_F(AuthzMatrixTest, Identity) { CheckService("identity"); }
TEST_F(AuthzMatrixTest, Feedback) { CheckService("feedback"); }

}  // namespace
}  // namespace switchboard
