// Fuzzes the sessions logic (Sessions) the way SessionsService drives it:
// each input is a sequence of calls (sessions_fuzz.proto), each a request
// of the service with the caller making it, run against a fresh SQLite
// store in a temporary folder, a fake clock, and fake bot and routing
// peers.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks what the
// service promises whatever the input:
//   - bad input is refused with a client error, never INTERNAL or UNKNOWN;
//   - a stream subscriber gets every event committed after its
//     subscription point, once each and in order;
//   - nothing accepted is lost: after the input, a restart (a new Sessions
//     over the same file) shows every session exactly as before, and every
//     stored attachment.
//
// Calls are read one at a time from the wire form of Input, so a mutation
// that breaks one call leaves the others intact.

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/blob/file_blob_store.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/clamd/fake_scanner.h"
#include "libs/testing/test_tokens.h"
#include "prometheus/registry.h"
#include "third_party/fuzzing/calls.h"
#include "services/sessions/fuzz/sessions_fuzz.pb.h"
#include "services/sessions/attachments.h"
#include "services/sessions/sessions.h"
#include "services/sessions/sqlite_store.h"

namespace switchboard::sessions {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr int kMaxCalls = 48;

// The bot as sessions sees it: answers, asks for a human on "human", fails
// when told to.
class FakeBot : public BotClient {
 public:
  absl::StatusOr<bot::v1::AnswerResponse> Answer(const bot::v1::AnswerRequest& r) override {
    if (fail) return absl::UnavailableError("bot down");
    bot::v1::AnswerResponse response;
    response.set_reply_language("en");
    if (r.text() == "human") {
      response.set_outcome(bot::v1::ANSWER_OUTCOME_ESCALATED);
      response.set_reply_text("An agent is coming.");
      response.mutable_handoff()->set_reason(common::v1::ESCALATION_REASON_CUSTOMER_REQUESTED);
      response.mutable_handoff()->set_category(common::v1::CATEGORY_DEPOSIT);
    } else {
      response.set_outcome(bot::v1::ANSWER_OUTCOME_ANSWERED);
      response.set_reply_text(absl::StrCat("about ", r.text().substr(0, 40)));
      response.set_answered_intent_id("faq");
      response.set_category(common::v1::CATEGORY_GENERAL);
    }
    return response;
  }
  absl::Status ResetDialogue(const std::string&) override {
    return fail ? absl::UnavailableError("bot down") : absl::OkStatus();
  }
  bool fail = false;
};

class FakeRouting : public RoutingClient {
 public:
  absl::StatusOr<routing::v1::EnqueueSessionResponse> Enqueue(
      const routing::v1::EnqueueSessionRequest&) override {
    if (fail) return absl::UnavailableError("routing down");
    return routing::v1::EnqueueSessionResponse();
  }
  absl::Status Cancel(const std::string&, routing::v1::CancelReason) override {
    return fail ? absl::UnavailableError("routing down") : absl::OkStatus();
  }
  // Every queue keeps no hours (always open).
  absl::StatusOr<routing::v1::GetQueueHoursResponse> QueueHours(
      const routing::v1::GetQueueHoursRequest&) override {
    if (fail) return absl::UnavailableError("routing down");
    return routing::v1::GetQueueHoursResponse();
  }
  bool fail = false;
};

// A StreamSessionEvents subscriber: records the sequence of every event it
// is given, on whichever thread.
class Listener : public SessionListener {
 public:
  void OnEvent(const v1::SessionEvent& event) override {
    absl::MutexLock lock(&mu_);
    sequences_.push_back(event.sequence());
  }
  void OnTyping(const v1::TypingIndication&) override {}

  std::vector<int64_t> sequences() {
    absl::MutexLock lock(&mu_);
    return sequences_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> sequences_ ABSL_GUARDED_BY(mu_);
};

struct Subscription {
  std::string session_id;
  // The last sequence in the store when it subscribed: later events are
  // the listener's to get.
  int64_t subscribed = 0;
  std::unique_ptr<Listener> listener;
};

// Identity's verification key and the verifier sessions checks tokens
// with, made once: a fresh key pair per input would cost more than the
// input.
const testing::TestTokens& Tokens() {
  static const auto* tokens = new testing::TestTokens("sessions");
  return *tokens;
}

// libmagic's classifier, loaded once (its database takes milliseconds).
const filetype::FileTypeClassifier& Classifier() {
  static const auto* classifier = filetype::FileTypeClassifier::Create()->release();
  return *classifier;
}

// One store, and the Sessions over it (replaced on a restart).
class Harness {
 public:
  Harness() : dir_(storage::MakeTempDir()), metrics_(registry_) {
    const std::string path = dir_ + "/sessions.db";
    db_ = *OpenSessionsDatabase({path});
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    std::vector<std::unique_ptr<storage::Database>> readers;
    readers.push_back(*storage::Database::Open({path}));
    store_ = std::make_unique<SqliteSessionStore>(committer_.get(), std::move(readers),
                                                  "switchboard.sessions.v1", nullptr);
    blobs_ = *blob::FileBlobStore::Open(dir_ + "/attachments");
    Start();
  }

  ~Harness() {
    Stop();
    committer_->Stop();
    store_.reset();
    committer_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }

  // A new Sessions over the same store, as after a clean restart.
  void Restart() {
    Stop();
    Start();
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 7 * 24 * 3600)));
    bot_.fail = call.bot_fails();
    routing_.fail = call.routing_fails();
    const Caller caller = CallerOf(call);
    const std::string id = SessionId(call);
    switch (call.request_case()) {
      case fuzz::Call::kCreateSession: {
        v1::CreateSessionRequest request = call.create_session();
        if (request.has_callback() && request.callback().verification_token() == "mint") {
          request.mutable_callback()->set_verification_token(
              Verification(request.customer_id().empty() ? caller.id : request.customer_id(), ""));
        }
        absl::StatusOr<Sessions::Created> created = sessions_->Create(caller, request);
        CheckServed(created.status(), "Create");
        if (created.ok()) created_.push_back(created->session.session_id());
        break;
      }
      case fuzz::Call::kGetSession: {
        if (auto quick = sessions_->TryGet(caller, id)) {
          CheckServed(quick->status(), "TryGet");
        } else {
          CheckServed(sessions_->Get(caller, id).status(), "Get");
        }
        break;
      }
      case fuzz::Call::kListSessions: {
        const v1::ListSessionsRequest& r = call.list_sessions();
        Sessions::ListFilter filter;
        filter.customer_id = r.customer_id();
        filter.agent_id = r.agent_id();
        for (int state : r.states()) filter.states.push_back(static_cast<v1::SessionState>(state));
        filter.category = r.category();
        filter.channel = r.channel();
        if (r.has_created_after()) {
          filter.created_after = protoutil::FromTimestamp(r.created_after());
        }
        if (r.has_created_before()) {
          filter.created_before = protoutil::FromTimestamp(r.created_before());
        }
        CheckServed(sessions_->List(caller, filter, r.page_size(), r.page_token()).status(),
                    "List");
        break;
      }
      case fuzz::Call::kSendMessage: {
        const v1::SendMessageRequest& r = call.send_message();
        CheckServed(
            sessions_->SendMessage(caller, id, r.client_message_id(), r.message()).status(),
            "SendMessage");
        break;
      }
      case fuzz::Call::kListMessages: {
        const v1::ListMessagesRequest& r = call.list_messages();
        CheckServed(sessions_
                        ->ListMessages(caller, id, r.after_sequence(), r.before_sequence(),
                                       r.newest_first(), r.page_size(), r.page_token())
                        .status(),
                    "ListMessages");
        break;
      }
      case fuzz::Call::kStreamSessionEvents: {
        const int64_t after = call.stream_session_events().after_sequence();
        if (after < 0) break;  // refused by the adapter before the logic
        auto listener = std::make_unique<Listener>();
        absl::StatusOr<int64_t> subscribed =
            sessions_->Subscribe(caller, id, after, listener.get());
        CheckServed(subscribed.status(), "Subscribe");
        if (subscribed.ok()) subscriptions_.push_back({id, *subscribed, std::move(listener)});
        break;
      }
      case fuzz::Call::kUpdateTyping: {
        const bool typing = call.update_typing().typing();
        if (auto quick = sessions_->TryUpdateTyping(caller, id, typing)) {
          CheckServed(quick->status(), "TryUpdateTyping");
        } else {
          CheckServed(sessions_->UpdateTyping(caller, id, typing).status(), "UpdateTyping");
        }
        break;
      }
      case fuzz::Call::kAttachVerification: {
        std::string token = call.attach_verification().verification_token();
        if (token == "mint") token = Verification(caller.id, id);
        if (token == "mint-unbound") token = Verification(caller.id, "");
        CheckServed(sessions_->AttachVerification(caller, id, token).status(),
                    "AttachVerification");
        break;
      }
      case fuzz::Call::kEscalateSession:
        CheckServed(sessions_->Escalate(caller, id).status(), "Escalate");
        break;
      case fuzz::Call::kRecordOffer: {
        const v1::RecordOfferRequest& r = call.record_offer();
        if (!r.has_expires_at()) break;  // refused by the adapter
        CheckServed(sessions_->RecordOffer(caller, id, r.agent_id(), r.offer_id(),
                                           protoutil::FromTimestamp(r.expires_at())),
                    "RecordOffer");
        break;
      }
      case fuzz::Call::kAssignAgent: {
        const v1::AssignAgentRequest& r = call.assign_agent();
        CheckServed(
            sessions_->AssignAgent(caller, id, r.agent_id(), r.agent_display_name(), r.offer_id())
                .status(),
            "AssignAgent");
        break;
      }
      case fuzz::Call::kTransferSession: {
        v1::TransferSessionRequest r = call.transfer_session();
        r.set_session_id(id);
        CheckServed(sessions_->Transfer(caller, r).status(), "Transfer");
        break;
      }
      case fuzz::Call::kRequeueSession:
        CheckServed(
            sessions_->Requeue(caller, id, call.requeue_session().agent_id()).status(),
            "Requeue");
        break;
      case fuzz::Call::kResolveSession: {
        const v1::ResolveSessionRequest& r = call.resolve_session();
        CheckServed(
            sessions_->Resolve(caller, id, r.resolution_summary(), r.request_id()).status(),
            "Resolve");
        break;
      }
      case fuzz::Call::kReopenSession: {
        const v1::ReopenSessionRequest& r = call.reopen_session();
        CheckServed(sessions_->Reopen(caller, id, r.reason(), r.request_id()).status(),
                    "Reopen");
        break;
      }
      case fuzz::Call::kCloseSession:
        CheckServed(sessions_->Close(caller, id, call.close_session().reason()).status(),
                    "Close");
        break;
      case fuzz::Call::kRequestCallback: {
        v1::RequestCallbackRequest r = call.request_callback();
        if (!r.has_callback()) break;  // refused by the adapter
        if (r.callback().verification_token() == "mint") {
          r.mutable_callback()->set_verification_token(Verification(caller.id, ""));
        }
        absl::StatusOr<Sessions::Callback> callback =
            sessions_->RequestCallback(caller, id, r.callback(), r.request_id());
        CheckServed(callback.status(), "RequestCallback");
        if (callback.ok()) created_.push_back(callback->phone_session.session_id());
        break;
      }
      case fuzz::Call::kUploadAttachment:
        Upload(caller, call.upload_attachment(), id);
        break;
      case fuzz::Call::kDownloadAttachment: {
        const fuzz::Download& d = call.download_attachment();
        std::string attachment = d.request().attachment_id();
        if (d.has_attachment() && !uploaded_.empty()) {
          attachment = uploaded_[d.attachment() % uploaded_.size()];
        }
        CheckServed(attachments_->Get(caller, id, attachment, d.request().prefer_url()).status(),
                    "Download");
        break;
      }
      case fuzz::Call::kBackground: {
        const fuzz::Background& b = call.background();
        if (b.scan()) CheckServed(attachments_->ScanPending().status(), "ScanPending");
        if (b.run_tasks()) RunTasks();
        if (b.sweep()) CheckServed(sessions_->Sweep().status(), "Sweep");
        if (b.retry_routing()) sessions_->RetryRouting();
        if (b.resume_bot_turns()) sessions_->ResumeBotTurns();
        break;
      }
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

  // Runs what the calls left to the background, then checks that a restart
  // shows every session as it was.
  void Finish() {
    bot_.fail = false;
    routing_.fail = false;
    RunTasks();
    // Listeners are told after a commit, on the commit thread: once a later
    // commit is through, they have been told of everything before it.
    Check(committer_->Commit([](storage::Database&) { return absl::OkStatus(); }).ok(),
          "barrier commit");
    for (const Subscription& s : subscriptions_) {
      std::vector<int64_t> expected;
      absl::StatusOr<std::vector<v1::SessionEvent>> events =
          sessions_->ReadEvents(s.session_id, s.subscribed, INT64_MAX, 100'000);
      Check(events.ok(), "ReadEvents");
      for (const v1::SessionEvent& event : *events) expected.push_back(event.sequence());
      std::vector<int64_t> got;
      for (int64_t sequence : s.listener->sequences()) {
        if (sequence > s.subscribed) got.push_back(sequence);
      }
      Check(got == expected,
            absl::StrCat("stream of ", s.session_id, " after ", s.subscribed, " got ",
                         got.size(), " events, the store has ", expected.size()));
    }
    const Caller supervisor{"sup-0", auth::Role::kSupervisor};
    std::vector<std::pair<std::string, v1::Session>> before;
    for (const std::string& id : created_) {
      absl::StatusOr<v1::Session> session = sessions_->Get(supervisor, id);
      Check(session.ok(), absl::StrCat("created session ", id, " is gone: ",
                                       session.status().ToString()));
      before.emplace_back(id, *session);
    }
    Restart();
    for (const std::string& id : uploaded_) {
      absl::StatusOr<std::optional<AttachmentRecord>> found = sessions_->FindAttachment(id);
      Check(found.ok() && found->has_value(), absl::StrCat("attachment ", id, " lost"));
      Check(*blobs_->Exists((*found)->blob_key), absl::StrCat("blob of ", id, " lost"));
    }
    for (const auto& [id, session] : before) {
      absl::StatusOr<v1::Session> after = sessions_->Get(supervisor, id);
      Check(after.ok(), absl::StrCat("session ", id, " lost by a restart"));
      std::string diff;
      google::protobuf::util::MessageDifferencer differ;
      differ.ReportDifferencesToString(&diff);
      Check(differ.Compare(session, *after),
            absl::StrCat("session ", id, " differs after a restart: ", diff));
    }
  }

 private:
  void Start() {
    sessions_ = std::make_unique<Sessions>(
        store_.get(), &clock_, &metrics_, &Tokens().verifier(), &bot_, &routing_,
        [this](std::function<void()> task) { tasks_.push_back(std::move(task)); },
        [this](std::function<void()> task) {
          if (tasks_.size() >= 64) return false;
          tasks_.push_back(std::move(task));
          return true;
        },
        SessionsOptions());
    CheckServed(sessions_->Load(), "Load");
    attachments_ = std::make_unique<Attachments>(sessions_.get(), blobs_.get(), &Classifier(),
                                                 &scanner_, &clock_, &metrics_,
                                                 AttachmentsOptions());
  }

  void Stop() {
    for (Subscription& s : subscriptions_) sessions_->Unsubscribe(s.session_id, s.listener.get());
    subscriptions_.clear();
    // Work a crash would lose: the next Sessions resumes it from the store.
    tasks_.clear();
    attachments_.reset();
    sessions_.reset();
  }

  // As the UploadAttachment reactor drives Attachments: the header first,
  // then the chunks up to the declared size, then the stored file.
  void Upload(const Caller& caller, const fuzz::Upload& upload, const std::string& session) {
    v1::UploadHeader header = upload.header();
    header.set_session_id(session);
    std::string bytes;
    for (const std::string& chunk : upload.chunks()) bytes += chunk;
    if (upload.declare_actual()) {
      header.set_size_bytes(static_cast<int64_t>(bytes.size()));
      header.set_sha256(blob::ContentAddress(bytes));
    }
    absl::StatusOr<Attachments::Began> began = attachments_->BeginUpload(caller, header);
    CheckServed(began.status(), "BeginUpload");
    if (!began.ok() || began->replayed) return;
    if (static_cast<int64_t>(bytes.size()) > header.size_bytes()) return;  // refused
    absl::StatusOr<Attachments::Uploaded> stored =
        attachments_->FinishUpload(caller, header, std::move(bytes));
    CheckServed(stored.status(), "FinishUpload");
    if (stored.ok() && !stored->replayed) uploaded_.push_back(stored->attachment.attachment_id());
  }

  void RunTasks() {
    // Tasks may queue more (a bot turn escalates, then routing is told);
    // bounded so that a loop cannot hang the fuzzer.
    for (int i = 0; i < 256 && !tasks_.empty(); ++i) {
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      task();
    }
  }

  Caller CallerOf(const fuzz::Call& call) const {
    static constexpr const char* kPrefix[] = {"cust-", "agent-", "sup-", "svc-"};
    static constexpr auth::Role kRole[] = {auth::Role::kCustomer, auth::Role::kAgent,
                                           auth::Role::kSupervisor, auth::Role::kService};
    const int role = call.role() >= 0 && call.role() <= 3 ? call.role() : 0;
    return {absl::StrCat(kPrefix[role], call.caller() % 3), kRole[role]};
  }

  std::string SessionId(const fuzz::Call& call) const {
    if (call.has_session() && !created_.empty()) {
      return created_[call.session() % created_.size()];
    }
    switch (call.request_case()) {
      case fuzz::Call::kGetSession: return call.get_session().session_id();
      case fuzz::Call::kSendMessage: return call.send_message().session_id();
      case fuzz::Call::kListMessages: return call.list_messages().session_id();
      case fuzz::Call::kStreamSessionEvents: return call.stream_session_events().session_id();
      case fuzz::Call::kUpdateTyping: return call.update_typing().session_id();
      case fuzz::Call::kAttachVerification: return call.attach_verification().session_id();
      case fuzz::Call::kEscalateSession: return call.escalate_session().session_id();
      case fuzz::Call::kRecordOffer: return call.record_offer().session_id();
      case fuzz::Call::kAssignAgent: return call.assign_agent().session_id();
      case fuzz::Call::kTransferSession: return call.transfer_session().session_id();
      case fuzz::Call::kRequeueSession: return call.requeue_session().session_id();
      case fuzz::Call::kResolveSession: return call.resolve_session().session_id();
      case fuzz::Call::kReopenSession: return call.reopen_session().session_id();
      case fuzz::Call::kCloseSession: return call.close_session().session_id();
      case fuzz::Call::kRequestCallback: return call.request_callback().session_id();
      case fuzz::Call::kUploadAttachment: return call.upload_attachment().header().session_id();
      case fuzz::Call::kDownloadAttachment:
        return call.download_attachment().request().session_id();
      default: return "";
    }
  }

  // A verification token identity would issue for `customer` (bound to
  // `session` unless empty), signed with the key the sessions logic checks.
  std::string Verification(const std::string& customer, const std::string& session) {
    auth::VerificationClaims claims;
    claims.customer_id = customer;
    claims.method = "sms_otp";
    claims.level = auth::kLevelStrong;
    claims.token_id = "tid-1";
    claims.session_id = session;
    claims.issued_at = clock_.Now();
    claims.expires_at = clock_.Now() + absl::Minutes(15);
    absl::StatusOr<std::string> token =
        auth::SignVerificationToken(Tokens().verification_signer(), claims);
    return token.ok() ? *token : "";
  }

  const std::string dir_;
  prometheus::Registry registry_;
  SessionsMetrics metrics_;
  FakeClock clock_;
  FakeBot bot_;
  FakeRouting routing_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteSessionStore> store_;
  std::unique_ptr<Sessions> sessions_;
  std::unique_ptr<blob::FileBlobStore> blobs_;
  testing::FakeScanner scanner_;
  std::unique_ptr<Attachments> attachments_;
  std::deque<std::function<void()>> tasks_;
  std::vector<std::string> created_;
  std::vector<std::string> uploaded_;
  std::vector<Subscription> subscriptions_;
};

}  // namespace
}  // namespace switchboard::sessions

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::sessions::Harness;
  using switchboard::sessions::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::sessions::kMaxCalls);
  if (calls.empty()) return 0;
  Harness harness;
  for (const Call& call : calls) harness.Run(call);
  harness.Finish();
  return 0;
}
