#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <thread>
#include <string>
#include <tuple>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "services/routing/metrics.h"
#include "services/routing/model.h"
#include "services/routing/peers.h"
#include "services/routing/store.h"
#include "switchboard/presence/v1/presence_service.pb.h"

namespace switchboard::routing {

struct RouterOptions {
  // How long an agent has to accept an offer.
  absl::Duration offer_timeout = absl::Seconds(30);
  // Presence holds a reservation this much longer than the offer, so that it
  // never lapses before routing decides.
  absl::Duration hold_margin = absl::Seconds(30);
  // Closed offers remembered for idempotent AcceptOffer/DeclineOffer replies.
  size_t closed_offers_kept = 10'000;
  // Longest pause before retrying an entry whose offer a peer refused for a
  // reason that may pass (session not yet QUEUED, presence unreachable).
  absl::Duration max_retry_backoff = absl::Seconds(30);
};

// Receives offers of one agent, in commit order. Called on the store's
// commit thread or with the router's listener lock held; must not block and
// must not call back into the Router.
class OfferListener {
 public:
  virtual ~OfferListener() = default;
  // A new offer (auto-accepted ones arrive already ACCEPTED), or, with
  // `closed`, an offer that closed.
  virtual void OnOffer(const v1::Offer& offer, bool closed) = 0;
};

// The routing logic: queues, the routing decision, offers and assignments.
//
// State lives in memory and in the store; every change is decided under one
// lock, queued to the store in that order and answered once committed (as
// presence does; a failed commit makes the router refuse writes until a
// restart). Calls to presence and sessions happen outside the lock: an entry
// being offered or accepted is marked busy so that no one else touches it,
// and a change that happened meanwhile (a cancel) is noticed afterwards.
//
// The decision: queues are served in order (kind, channel, category,
// language); within a queue, entries by priority then order (see
// EntryRecord::order). An entry goes to the eligible agent idle the longest
// (presence's idle_since): ONLINE, with the category, a language whose
// primary subtag matches, capacity above zero on the channel and free
// capacity in routing's view. Presence has the last word: the reservation is
// made there before the offer goes out, so routing never exceeds capacity.
//
// Presence knowledge comes from ResetPresence/OnAgentChange (fed by the
// WatchPresence stream); an agent turning OFFLINE (or missing from a new
// snapshot) loses their open offers and their assigned sessions, which go
// back to the head of their queues.
//
// Thread-safe. Blocking (waits for commits and peers): call from worker
// threads, never from gRPC callback threads.
class Router {
 public:
  // None owned; all must outlive the router.
  Router(RoutingStore* store, PresencePort* presence, SessionsPort* sessions,
         Clock* clock, RoutingMetrics* metrics, RouterOptions options);
  ~Router();

  // Reads the store. Call once, before anything else.
  absl::Status Load();

  struct EnqueueSessionCommand {
    std::string session_id;
    std::string customer_id;
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
    common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
    std::string language;
    v1::EnqueueReason reason = v1::ENQUEUE_REASON_UNSPECIFIED;
    v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
    bool at_head = false;
    std::optional<common::v1::HandoffContext> handoff;
    std::string transfer_note;
    std::string target_agent_id;
    std::string preferred_agent_id;
    std::string excluded_agent_id;
    absl::Time first_response_due_at = absl::InfinitePast();
  };
  struct EnqueueResult {
    v1::QueueEntry entry;
    bool replayed = false;
  };
  // Errors: InvalidArgument naming the field.
  absl::StatusOr<EnqueueResult> EnqueueSession(const EnqueueSessionCommand& command);

  struct EnqueueComplaintCommand {
    std::string complaint_id;
    std::string customer_id;
    common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
    std::string session_id;
    v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
  };
  absl::StatusOr<EnqueueResult> EnqueueComplaint(const EnqueueComplaintCommand& command);

  // Returns whether routing held the entry. Idempotent.
  absl::StatusOr<bool> Cancel(v1::EntryKind kind, const std::string& id,
                              v1::CancelReason reason);

  // Errors: see AcceptOffer / DeclineOffer in routing_service.proto.
  absl::StatusOr<v1::Assignment> AcceptOffer(const std::string& agent_id,
                                             const std::string& offer_id);
  absl::StatusOr<v1::Offer> DeclineOffer(const std::string& agent_id,
                                         const std::string& offer_id,
                                         v1::DeclineReason reason);

  struct EntryView {
    v1::QueueEntry entry;  // with position
    int queue_depth = 0;
  };
  // A WAITING or OFFERED entry. Errors: NotFound.
  absl::StatusOr<EntryView> GetEntry(v1::EntryKind kind, const std::string& id) const;

  struct Filter {
    v1::EntryKind kind = v1::ENTRY_KIND_UNSPECIFIED;
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
    common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
    std::string language;  // primary subtag; empty for any
  };
  // Entries in listing order, skipping `offset`; `more` tells whether
  // entries follow the page.
  std::vector<v1::QueueEntry> ListEntries(const Filter& filter, size_t offset,
                                          size_t page_size, bool* more) const;
  std::vector<v1::QueueStats> Stats(const Filter& filter) const;

  SettingsRecord GetSettings(const std::string& agent_id) const;
  absl::StatusOr<SettingsRecord> UpdateSettings(const std::string& agent_id,
                                                const v1::AgentSettings& settings,
                                                const std::string& actor_id);

  // Registers `listener` for `agent_id`'s offers and returns the open ones.
  // `supervisor` makes the agent eligible for complaint offers while any of
  // their listeners is registered.
  std::vector<v1::Offer> SubscribeOffers(const std::string& agent_id, bool supervisor,
                                         OfferListener* listener);
  void UnsubscribeOffers(OfferListener* listener);

  // Replaces routing's view of presence with a snapshot (agents not
  // OFFLINE); agents that were in the view and are not in the snapshot went
  // OFFLINE meanwhile.
  void ResetPresence(const std::vector<presence::v1::Agent>& agents);
  // Applies one change seen on WatchPresence.
  void OnAgentChange(const presence::v1::Agent& agent);

  // One pass of the dispatcher: expires offers past their deadline, lets
  // targeted entries fall back, tells sessions about re-queued sessions,
  // retries failed releases, makes every offer it can, refreshes the queue
  // gauges. Returns when there is nothing more to do now.
  void RunOnce();
  // Blocks until something may be routable (an enqueue, a change in
  // presence, a closed offer), the next offer deadline, or `max` of real
  // time, whichever comes first.
  void WaitForWork(absl::Duration max);
  // Wakes WaitForWork.
  void Wake();

 private:
  struct Pending;
  struct Entry;
  struct ClosedOffer {
    std::string agent_id;
    v1::Offer offer;
    std::optional<v1::Assignment> assignment;
  };
  using QueueOrder = std::tuple<int, int64_t, std::string>;  // -priority, order, key

  absl::Status CheckWritable() const;
  std::shared_ptr<Pending> Commit(RoutingWrite write,
                                  std::vector<std::pair<v1::Offer, bool>> offers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Wait(const std::shared_ptr<Pending>& pending);
  void Publish(const std::vector<std::pair<v1::Offer, bool>>& offers);

  // Queue bookkeeping.
  void AddToQueue(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveFromQueue(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t HeadOrder(const QueueId& queue, v1::Priority priority, int64_t fallback) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MoveToHead(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int PositionOf(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Closes the entry's open offer with `outcome` (memory only); returns the
  // closed offer for listeners.
  v1::Offer CloseOffer(Entry& entry, v1::OfferOutcome outcome, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Offer OfferOf(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Remember(ClosedOffer closed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes the entry out of routing (cancel): memory, write, events.
  void Drop(Entry& entry, v1::CancelReason reason, absl::Time now, RoutingWrite& write,
            std::vector<std::pair<v1::Offer, bool>>& offers,
            std::vector<std::pair<std::string, std::string>>& releases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent lapsed: withdraw their offers, re-queue their sessions.
  void LapseLocked(const std::string& agent_id, absl::Time now, RoutingWrite& write,
                   std::vector<std::pair<v1::Offer, bool>>& offers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Candidates for `entry`, best first.
  std::vector<std::string> Candidates(const Entry& entry, absl::Time now) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Eligible(const presence::v1::Agent& agent, const QueueId& queue) const;
  bool HasFreeCapacity(const presence::v1::Agent& agent, common::v1::Channel channel) const;
  // The next entry to offer and its candidates; marks it busy.
  bool PickNext(absl::Time now, std::string* key, uint64_t* wait_id,
                std::vector<std::string>* candidates) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Makes one offer for the busy entry `key`; returns false when the pass
  // should stop (a peer is down).
  bool OfferOne(const std::string& key, uint64_t wait_id,
                const std::vector<std::string>& candidates);
  // The accept path after the offer was marked busy; auto-accept too.
  absl::StatusOr<v1::Assignment> FinishAccept(const std::string& key, uint64_t wait_id,
                                              const std::string& agent_id,
                                              const std::string& offer_id, bool automatic);
  void Backoff(Entry& entry, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireDue();
  void TellSessionsRequeued();
  void RetryReleases();
  void ReleaseAll(std::vector<std::pair<std::string, std::string>> releases);
  void RefreshGauges();
  void SetAgent(const presence::v1::Agent& agent, absl::Time now, RoutingWrite& write,
                std::vector<std::pair<v1::Offer, bool>>& offers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RoutingStore* const store_;
  PresencePort* const presence_;
  SessionsPort* const sessions_;
  Clock* const clock_;
  RoutingMetrics* const metrics_;
  const RouterOptions options_;

  mutable absl::Mutex mu_;
  absl::CondVar work_ ABSL_GUARDED_BY(mu_);
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::map<QueueId, std::set<QueueOrder>> queues_ ABSL_GUARDED_BY(mu_);
  // Open offers and accepted session offers, by offer id -> entry key.
  absl::flat_hash_map<std::string, std::string> offers_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, ClosedOffer> closed_offers_ ABSL_GUARDED_BY(mu_);
  std::deque<std::string> closed_order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, presence::v1::Agent> agents_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, SettingsRecord> settings_ ABSL_GUARDED_BY(mu_);
  // Supervisors with an open WatchOffers stream, and how many streams.
  std::map<std::string, int> watching_supervisors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> last_complaint_accept_ ABSL_GUARDED_BY(mu_);
  // Releases that failed (presence unreachable), retried by the dispatcher.
  std::vector<std::pair<std::string, std::string>> failed_releases_ ABSL_GUARDED_BY(mu_);
  uint64_t next_wait_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::atomic<bool> store_failed_{false};

  // Separate from mu_: commit callbacks publish while other calls decide.
  mutable absl::Mutex listeners_mu_;
  std::multimap<std::string, OfferListener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);
};

// The router's dispatcher thread: RunOnce, then WaitForWork, until stopped.
class Dispatcher {
 public:
  // `idle` bounds how long it sleeps without being woken (gauges refresh at
  // least that often).
  Dispatcher(Router* router, absl::Duration idle);
  ~Dispatcher();  // Stop()
  void Stop();

 private:
  Router* const router_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// "zh-CN" -> "zh": the part of a language tag routing queues and matches on.
std::string PrimaryLanguage(absl::string_view tag);

}  // namespace switchboard::routing
