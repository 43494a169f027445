// Fuzzes the routing logic (Router) the way RoutingService and the
// WatchPresence feed drive it: each input is a sequence of calls
// (routing_fuzz.proto) against a fresh SQLite store in a temporary folder, a
// fake clock, and in-memory presence and sessions (fake_peers.h) that keep
// presence's capacity rules.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks what routing
// promises whatever the input:
//   - bad input is refused with a client error, never INTERNAL or UNKNOWN;
//   - capacity cannot leak: once the peers are healthy and the dispatcher
//     has run, every reservation presence holds belongs to an open offer or
//     an assignment, and every open offer has its reservation;
//   - nothing accepted is lost: a restart (a new Router over the same file)
//     lists the same queue entries.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "third_party/fuzzing/calls.h"
#include "services/routing/eligibility.h"
#include "services/routing/fake_peers.h"
#include "services/routing/fuzz/routing_fuzz.pb.h"
#include "services/routing/router.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr int kMaxCalls = 48;

// Every offer any agent was told of, in order: the ids a fuzzer could not
// guess.
class Offers : public OfferListener {
 public:
  void OnOffer(const v1::Offer& offer, bool closed) override {
    absl::MutexLock lock(&mu_);
    if (!closed) ids_.push_back(offer.offer_id());
  }
  std::string Get(uint32_t n) {
    absl::MutexLock lock(&mu_);
    return ids_.empty() ? "" : ids_[n % ids_.size()];
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

class Harness {
 public:
  Harness() : path_(storage::MakeTempDir() + "/routing.db"), metrics_(registry_) {
    Open();
  }

  ~Harness() {
    Close();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 24 * 3600)));
    const std::string agent =
        call.agent() % 4 == 3 ? "sup-0" : absl::StrCat("agent-", call.agent() % 4);
    switch (call.request_case()) {
      case fuzz::Call::kEnqueueSession: {
        const v1::EnqueueSessionRequest& r = call.enqueue_session();
        Router::EnqueueSessionCommand c;
        c.session_id = Ref(call, r.session_id());
        c.customer_id = r.customer_id();
        c.channel = r.channel();
        c.category = r.category();
        c.language = r.language();
        c.reason = r.reason();
        c.priority = r.priority();
        c.at_head = r.at_head();
        if (r.has_handoff()) c.handoff = r.handoff();
        c.transfer_note = r.transfer_note();
        c.target_agent_id = r.target_agent_id();
        c.preferred_agent_id = r.preferred_agent_id();
        c.excluded_agent_id = r.excluded_agent_id();
        if (r.has_first_response_due_at()) {
          c.first_response_due_at = protoutil::FromTimestamp(r.first_response_due_at());
        }
        absl::StatusOr<Router::EnqueueResult> result = router_->EnqueueSession(c);
        CheckServed(result.status(), "EnqueueSession");
        if (result.ok()) Remember(c.session_id);
        break;
      }
      case fuzz::Call::kCancelSession:
        CheckServed(router_
                        ->Cancel(v1::ENTRY_KIND_SESSION,
                                 Ref(call, call.cancel_session().session_id()),
                                 call.cancel_session().reason())
                        .status(),
                    "CancelSession");
        break;
      case fuzz::Call::kEnqueueComplaint: {
        const v1::EnqueueComplaintRequest& r = call.enqueue_complaint();
        Router::EnqueueComplaintCommand c{Ref(call, r.complaint_id()), r.customer_id(),
                                          r.category(), r.session_id(), r.priority()};
        absl::StatusOr<Router::EnqueueResult> result = router_->EnqueueComplaint(c);
        CheckServed(result.status(), "EnqueueComplaint");
        if (result.ok()) Remember(c.complaint_id);
        break;
      }
      case fuzz::Call::kCancelComplaint:
        CheckServed(router_
                        ->Cancel(v1::ENTRY_KIND_COMPLAINT,
                                 Ref(call, call.cancel_complaint().complaint_id()),
                                 call.cancel_complaint().reason())
                        .status(),
                    "CancelComplaint");
        break;
      case fuzz::Call::kWatchOffers: {
        // The adapter lets a caller watch their own offers only.
        const std::string& requested = call.watch_offers().agent_id();
        if (!requested.empty() && requested != agent) break;
        auto listener = std::make_unique<Offers>();
        router_->SubscribeOffers(agent, agent == "sup-0", listener.get());
        watchers_.push_back(std::move(listener));
        break;
      }
      case fuzz::Call::kAcceptOffer:
        CheckServed(router_->AcceptOffer(agent, OfferRef(call, call.accept_offer().offer_id()))
                        .status(),
                    "AcceptOffer");
        break;
      case fuzz::Call::kDeclineOffer:
        CheckServed(router_
                        ->DeclineOffer(agent, OfferRef(call, call.decline_offer().offer_id()),
                                       call.decline_offer().reason())
                        .status(),
                    "DeclineOffer");
        break;
      case fuzz::Call::kGetQueueEntry: {
        const v1::GetQueueEntryRequest& r = call.get_queue_entry();
        if (r.subject_case() == v1::GetQueueEntryRequest::kSessionId) {
          CheckServed(
              router_->GetEntry(v1::ENTRY_KIND_SESSION, Ref(call, r.session_id())).status(),
              "GetEntry");
        } else if (r.subject_case() == v1::GetQueueEntryRequest::kComplaintId) {
          CheckServed(
              router_->GetEntry(v1::ENTRY_KIND_COMPLAINT, Ref(call, r.complaint_id())).status(),
              "GetEntry");
        }
        break;
      }
      case fuzz::Call::kListQueueEntries: {
        const v1::ListQueueEntriesRequest& r = call.list_queue_entries();
        std::optional<Router::Filter> filter =
            FilterOf(r.kind(), r.channel(), r.category(), r.language());
        if (!filter || r.page_size() < 0 || r.page_size() > 500) break;  // the adapter refuses
        size_t offset = 0;
        if (!r.page_token().empty() &&
            (!absl::SimpleAtoi(r.page_token(), &offset) || offset > 100'000)) {
          break;
        }
        bool more = false;
        router_->ListEntries(*filter, offset, r.page_size() == 0 ? 100 : r.page_size(), &more);
        break;
      }
      case fuzz::Call::kGetQueueStats: {
        const v1::GetQueueStatsRequest& r = call.get_queue_stats();
        if (std::optional<Router::Filter> filter =
                FilterOf(r.kind(), r.channel(), r.category(), r.language())) {
          router_->Stats(*filter);
        }
        break;
      }
      case fuzz::Call::kGetAgentSettings:
        router_->GetSettings(agent);
        break;
      case fuzz::Call::kUpdateAgentSettings:
        if (!call.update_agent_settings().has_settings()) break;  // the adapter refuses
        CheckServed(
            router_->UpdateSettings(agent, call.update_agent_settings().settings(), agent)
                .status(),
            "UpdateSettings");
        break;
      case fuzz::Call::kPresence: {
        const fuzz::PresenceChange& change = call.presence();
        std::vector<presence::v1::Agent> agents;
        for (presence::v1::Agent a : change.agents()) {
          // Presence's view: ids it issued and capacities it enforces.
          a.set_agent_id(absl::StrCat("agent-", a.agent_id().size() % 3));
          int capacity = 0;
          for (const presence::v1::ChannelCapacity& c : a.profile().capacities()) {
            capacity = std::max(capacity, std::clamp(c.capacity(), 0, 100));
          }
          presence_.SetCapacity(a.agent_id(), capacity);
          agents.push_back(std::move(a));
        }
        if (change.snapshot()) {
          CheckServed(router_->ResetPresence(agents), "ResetPresence");
        } else {
          for (const presence::v1::Agent& a : agents) {
            CheckServed(router_->OnAgentChange(a), "OnAgentChange");
          }
        }
        break;
      }
      case fuzz::Call::kBackground: {
        const fuzz::Background& b = call.background();
        SetDown(b.presence_down(), b.sessions_down());
        if (b.has_close_session() && !ids_.empty()) {
          sessions_.Close(ids_[b.close_session() % ids_.size()]);
        }
        if (b.run_once()) router_->RunOnce();
        break;
      }
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

  // Heals the peers, lets the dispatcher settle, and checks that presence
  // holds exactly what routing holds; then that a restart lists the same
  // entries.
  void Finish() {
    SetDown(false, false);
    // Reconciliation runs at start and then every interval.
    clock_.Advance(absl::Minutes(6));
    for (int i = 0; i < 4; ++i) router_->RunOnce();
    const std::map<std::string, FakePresence::Held> held = presence_.held();
    std::map<std::string, std::string> offered;  // session -> agent
    for (const v1::QueueEntry& e : Entries()) {
      if (e.offered_agent_id().empty() || e.kind() != v1::ENTRY_KIND_SESSION) continue;
      offered[e.session_id()] = e.offered_agent_id();
      auto it = held.find(e.session_id());
      Check(it != held.end() && it->second.agent_id == e.offered_agent_id(),
            absl::StrCat("offer of ", e.session_id(), " to ", e.offered_agent_id(),
                         " has no reservation"));
    }
    for (const auto& [session, h] : held) {
      Check(h.assigned || offered.count(session),
            absl::StrCat("presence holds ", session, " for ", h.agent_id,
                         " but routing has no offer or assignment for it"));
    }
    const std::vector<v1::QueueEntry> before = Entries();
    Close();
    Open();
    const std::vector<v1::QueueEntry> after = Entries();
    Check(before.size() == after.size(),
          absl::StrCat("a restart lists ", after.size(), " entries, not ", before.size()));
    for (size_t i = 0; i < before.size(); ++i) {
      std::string diff;
      google::protobuf::util::MessageDifferencer differ;
      differ.ReportDifferencesToString(&diff);
      Check(differ.Compare(before[i], after[i]),
            absl::StrCat("entry ", i, " differs after a restart: ", diff));
    }
  }

 private:
  void Open() {
    db_ = *storage::Database::OpenMigrated({path_}, RoutingMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqliteRoutingStore>(committer_.get(), "switchboard.routing.v1",
                                                  nullptr);
    router_ = std::make_unique<Router>(store_.get(), &presence_, &sessions_, &clock_, &metrics_,
                                       RouterOptions());
    CheckServed(router_->Load(), "Load");
  }

  void Close() {
    for (const auto& watcher : watchers_) router_->UnsubscribeOffers(watcher.get());
    watchers_.clear();
    // The committer stops first: a commit in flight calls the router back.
    committer_->Stop();
    router_.reset();
    store_.reset();
    committer_.reset();
    db_.reset();
  }

  void SetDown(bool presence, bool sessions) {
    for (const char* method : {"Reserve", "Confirm", "Release", "Reconcile"}) {
      if (presence) {
        presence_.Fail(method, absl::UnavailableError("presence down"));
      } else {
        presence_.Heal(method);
      }
    }
    for (const char* method : {"RecordOffer", "AssignAgent", "RequeueSession", "GetSession"}) {
      if (sessions) {
        sessions_.Fail(method, absl::UnavailableError("sessions down"));
      } else {
        sessions_.Heal(method);
      }
    }
  }

  std::vector<v1::QueueEntry> Entries() {
    bool more = false;
    return router_->ListEntries(Router::Filter(), 0, 100'000, &more);
  }

  // The adapter's checks of a queue filter (ToFilter in routing_service.cc).
  static std::optional<Router::Filter> FilterOf(v1::EntryKind kind, common::v1::Channel channel,
                                                common::v1::Category category,
                                                const std::string& language) {
    if (!v1::EntryKind_IsValid(kind) || !common::v1::Channel_IsValid(channel) ||
        !common::v1::Category_IsValid(category) || language.size() > 35) {
      return std::nullopt;
    }
    return Router::Filter{kind, channel, category, PrimaryLanguage(language)};
  }

  std::string Ref(const fuzz::Call& call, const std::string& id) const {
    if (call.has_session() && !ids_.empty()) return ids_[call.session() % ids_.size()];
    return id;
  }

  std::string OfferRef(const fuzz::Call& call, const std::string& id) const {
    if (!call.has_offer()) return id;
    for (const auto& watcher : watchers_) {
      std::string offer = watcher->Get(call.offer());
      if (!offer.empty()) return offer;
    }
    return id;
  }

  void Remember(const std::string& id) {
    if (std::find(ids_.begin(), ids_.end(), id) == ids_.end()) ids_.push_back(id);
  }

  const std::string path_;
  prometheus::Registry registry_;
  RoutingMetrics metrics_;
  FakeClock clock_;
  FakePresence presence_;
  FakeSessions sessions_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> store_;
  std::unique_ptr<Router> router_;
  std::vector<std::unique_ptr<Offers>> watchers_;
  std::vector<std::string> ids_;
};

}  // namespace
}  // namespace switchboard::routing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::routing::Harness;
  using switchboard::routing::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::routing::kMaxCalls);
  if (calls.empty()) return 0;
  Harness harness;
  for (const Call& call : calls) harness.Run(call);
  harness.Finish();
  return 0;
}
