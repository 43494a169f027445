#pragma once

#include <atomic>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/server/blocking_pool.h"
#include "libs/storage/ordered_commits.h"
#include "services/routing/eligibility.h"
#include "services/routing/metrics.h"
#include "services/routing/model.h"
#include "services/routing/peers.h"
#include "services/routing/queue_order.h"
#include "services/routing/schedule_book.h"
#include "services/routing/store.h"
#include "switchboard/presence/v1/presence_service.pb.h"

namespace switchboard::routing {

struct RouterOptions {
  // How long an agent has to accept an offer.
  absl::Duration offer_timeout = absl::Seconds(30);
  // Presence holds a reservation this much longer than the offer, so that it
  // never lapses before routing decides.
  absl::Duration hold_margin = absl::Seconds(30);
  // Closed offers kept in memory for idempotent AcceptOffer/DeclineOffer
  // replies; older ones are read from the store.
  size_t closed_offers_cached = 1'000;
  // How long closed offers stay in the store for those replies.
  absl::Duration closed_offer_retention = absl::Hours(24);
  // Longest pause before retrying an entry whose offer a peer refused for a
  // reason that may pass (session not yet QUEUED, presence unreachable), an
  // owed release, or an accept in progress.
  absl::Duration max_retry_backoff = absl::Seconds(30);
  // How often presence's reservations are reconciled with routing's offers
  // and assignments (also at start, and soon after a sign of a leak).
  absl::Duration reconcile_interval = absl::Minutes(5);
  // Live reservations sent per ReconcileReservations call; larger views are
  // split by ranges of agent ids.
  size_t reconcile_batch = 5'000;
  // Queues that left the statistics (no entry, no agent) whose gauges are
  // kept at zero for dashboards; beyond this many, the least recently used
  // lose their series (customers choose languages, and with them queues).
  size_t idle_queue_gauges_kept = 256;
  // Session offers decided at once (each waits on presence's reservation
  // and sessions' record of the offer); at least 1.
  int concurrent_offers = 16;
  // How often the dispatcher's passes refresh the queue gauges: a refresh
  // walks every queued entry under the router's lock, and under load the
  // dispatcher passes hundreds of times a second. Zero: every pass.
  absl::Duration gauge_interval = absl::Seconds(1);
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
// lock, queued to the store in that order and answered once committed. A
// write that finds nothing to change (a client's retry: EnqueueSession of a
// waiting session, AcceptOffer of an accepted offer, a second cancel) is
// answered only once the newest commit decided before it is durable, which
// covers the first attempt (commits complete in order). A failed commit
// makes the router refuse writes with UNAVAILABLE until a restart (memory
// may be ahead of the disk). Client writes pass the store's admission check
// (RoutingStore::Admit) before anything is decided.
//
// Calls to presence and sessions happen outside the lock: an entry being
// offered or accepted is marked busy so that no one else touches it, and a
// change that happened meanwhile (a cancel) is noticed afterwards. Up to
// `concurrent_offers` session offers are decided at once, each at an agent
// no other decision holds (MakeOffers, AgentPool::Claim).
//
// The decision: the next entry is the first in priority then order across
// the queues some agent can serve (QueueOrder); it goes to the eligible
// agent idle the longest (AgentPool, eligibility.h): ONLINE, with the
// category, a language whose primary subtag matches, capacity above zero on
// the channel and free capacity in routing's view, honouring the entry's
// target, preferred and excluded agents. Presence has the last word: the
// reservation is made there before the offer goes out, so routing never
// exceeds capacity. The Router keeps the locking; the two units do not.
//
// Capacity cannot leak:
// - Every reservation belongs to the open offer or the assignment holding
//   it, named by a holder id routing issues in increasing order (durable
//   across restarts: ids are issued below a ceiling committed beforehand).
// - When an offer or assignment ends (declined, expired, withdrawn,
//   cancelled, resolved, transferred, re-queued, agent lapsed), the release
//   it owes presence is written in the same transaction as the change, then
//   sent; it is deleted once presence confirms and retried with back-off
//   until then, across restarts.
// - Accepting writes an accept intent before presence.ConfirmReservation
//   and sessions.AssignAgent; an intent left by a failure or a crash is
//   driven to completion by the dispatcher (both calls are idempotent), or
//   rolled back when presence no longer holds the capacity and sessions
//   (GetSession) says the session was not assigned.
// - Reconciliation, at start and every `reconcile_interval`, sends presence
//   routing's live offers and assignments with a fence (below every holder
//   id still in flight): presence frees what nobody holds and restores
//   missing assignments, so each agent's load equals their assignments plus
//   their live offers.
//
// Presence knowledge comes from ResetPresence/OnAgentChange (fed by the
// WatchPresence stream); an agent turning OFFLINE (or missing from a new
// snapshot) loses their open offers and their assigned sessions, which go
// back to the head of their queues.
//
// Memory is bounded by open work: entries waiting, offered or assigned (an
// entry leaves when its session is cancelled, resolved or closed), releases
// owed, a bounded cache of closed offers (the rest stay in the store until
// their retention passes), and per-agent maps (presence view, settings,
// supervisors' last complaint accept) bounded by the desk's headcount.
//
// Thread-safe. Blocking (waits for commits and peers): call from worker
// threads, never from gRPC callback threads.
class Router {
 public:
  // None owned; all must outlive the router. `hours` decides which queues
  // are open; null: every queue is always open. Destroy the router only once
  // the store calls back no more (GroupCommitter::Stop): a commit in flight
  // calls the router when it completes.
  Router(RoutingStore* store, PresencePort* presence, SessionsPort* sessions,
         Clock* clock, RoutingMetrics* metrics, RouterOptions options,
         const ScheduleBook* hours = nullptr);
  ~Router();

  // Reads the store's open work and raises the holder-id ceiling. Call
  // once, before anything else.
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
    // InfinitePast: none (only EMAIL sessions have one).
    absl::Time first_response_due_at = absl::InfinitePast();
  };
  struct EnqueueResult {
    v1::QueueEntry entry;
    bool replayed = false;
    // The queue's hours at the enqueue (session entries).
    v1::QueueHours hours;
  };
  // `deadline` bounds the call releasing a transferred session's capacity
  // (if it does not finish, the release is retried in the background).
  // Errors: InvalidArgument naming the field.
  absl::StatusOr<EnqueueResult> EnqueueSession(const EnqueueSessionCommand& command,
                                               absl::Time deadline = absl::InfiniteFuture());

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
                              v1::CancelReason reason,
                              absl::Time deadline = absl::InfiniteFuture());

  // Errors: see AcceptOffer / DeclineOffer in routing_service.proto.
  // `deadline` bounds the calls to presence and sessions made for it.
  absl::StatusOr<v1::Assignment> AcceptOffer(const std::string& agent_id,
                                             const std::string& offer_id,
                                             absl::Time deadline = absl::InfiniteFuture());
  absl::StatusOr<v1::Offer> DeclineOffer(const std::string& agent_id,
                                         const std::string& offer_id,
                                         v1::DeclineReason reason,
                                         absl::Time deadline = absl::InfiniteFuture());

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
  // Every queue holding an entry or servable by an ONLINE agent, with its
  // hours.
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
  // OFFLINE meanwhile. Errors: the commit of the re-queued work failed.
  absl::Status ResetPresence(const std::vector<presence::v1::Agent>& agents);
  // Applies one change seen on WatchPresence. Errors as ResetPresence.
  absl::Status OnAgentChange(const presence::v1::Agent& agent);

  // One pass of the dispatcher: drives accepts in progress, retries owed
  // releases, tells sessions about re-queued sessions, reconciles presence
  // when due, expires offers past their deadline, lets targeted entries fall
  // back, prunes old closed offers, makes every offer it can, refreshes the
  // queue gauges (at most once per gauge_interval). Returns when there is
  // nothing more to do now.
  void RunOnce();
  // Blocks until something may be routable (an enqueue, a change in
  // presence, a closed offer), the next deadline or retry, or `max` of real
  // time, whichever comes first.
  void WaitForWork(absl::Duration max);
  // Wakes WaitForWork.
  void Wake();
  // From now on passes make no new offers; the decisions under way finish.
  // For a stop: a pass can make offers for seconds when peers are slow, and
  // a leader hands over to a standby only once its last pass has returned.
  void StopMakingOffers();

 private:
  struct Entry;
  struct Owed {
    OwedRelease record;
    absl::Time next_attempt = absl::InfinitePast();
    int attempts = 0;
    // Being sent to presence now.
    bool inflight = false;
  };
  using OfferBatch = std::vector<std::pair<v1::Offer, bool>>;
  using ReleaseKeys = std::vector<std::pair<std::string, std::string>>;  // agent, session

  // Whether `queue` is open at `now` (its schedule; complaint queues and
  // queues without one always are).
  bool Open(const QueueId& queue, absl::Time now) const;
  v1::QueueHours HoursOf(const QueueId& queue, absl::Time now) const;
  // Queues `write` to the store; listeners get `offers` once it commits
  // (at once when there is nothing to write).
  std::shared_ptr<storage::PendingWrite> Commit(RoutingWrite write, OfferBatch offers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(const OfferBatch& offers);
  void WakeLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts `entry` (new, or leaving a settled state) among those the passes
  // look at.
  void Unsettle(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Removes the entry with `key` from entries_ (and from the passes' view).
  void Erase(const std::string& key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The entries a pass acts on, in key order: every entry but the settled
  // ones, whose keys it forgets (a settled offer's goes to offer_deadlines_).
  std::vector<Entry*> Unsettled() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Holder ids.
  absl::StatusOr<int64_t> IssueHolder() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Queue bookkeeping.
  void AddToQueue(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveFromQueue(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MoveToHead(Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tells the queue order whether the entry, if queued, is offered.
  void MarkOffered(const Entry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int PositionOf(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Closes the entry's open offer with `outcome`: memory, the closed-offer
  // record (in `write`) and the release it owes (sessions); returns the
  // closed offer for listeners.
  v1::Offer CloseOffer(Entry& entry, v1::OfferOutcome outcome, absl::Time now,
                       RoutingWrite& write, ReleaseKeys* releases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Offer OfferOf(const Entry& entry) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Closed offers: the bounded cache in front of the store.
  void Remember(ClosedOfferRecord record, RoutingWrite& write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Cache(ClosedOfferRecord record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const ClosedOfferRecord* Recall(const std::string& offer_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A closed offer from the cache, else from the store. Takes mu_.
  absl::StatusOr<std::optional<ClosedOfferRecord>> FindClosed(const std::string& offer_id);
  // Takes the entry out of routing (cancel): memory, write, events.
  void Drop(Entry& entry, v1::CancelReason reason, absl::Time now, RoutingWrite& write,
            OfferBatch& offers, ReleaseKeys& releases) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The agent lapsed: withdraw their offers, re-queue their sessions.
  void LapseLocked(const std::string& agent_id, absl::Time now, RoutingWrite& write,
                   OfferBatch& offers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts an ASSIGNED session back at the head of its queue (its agent
  // lapsed) and owes the release of its capacity.
  void Requeue(Entry& entry, absl::Time now, RoutingWrite& write)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Releases owed to presence.
  void Owe(const std::string& agent_id, const std::string& session_id, int64_t holder_id,
           absl::Time now, RoutingWrite& write, ReleaseKeys* releases)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends the owed releases of `keys` now (those not already being sent),
  // within `deadline`; failures stay owed for the dispatcher.
  void ReleaseNow(const ReleaseKeys& keys, absl::Time deadline);
  void SendReleases(std::vector<OwedRelease> releases, absl::Time deadline);
  void RetryOwedReleases();

  // Candidates for `entry`, best first.
  std::vector<std::string> Candidates(const Entry& entry) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The next entry to offer and its candidates; marks it busy and, for a
  // session, claims its first candidate (AgentPool::Claim) for DecideOffer.
  bool PickNext(absl::Time now, std::string* key, uint64_t* wait_id,
                std::vector<std::string>* candidates) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // An offer decided and its commit issued, not yet known durable.
  struct DecidedOffer {
    std::string key;
    uint64_t wait_id = 0;
    std::string agent_id;
    std::string offer_id;
    bool made = false;  // else the entry went back to wait
    bool auto_accept = false;
    std::shared_ptr<storage::PendingWrite> pending;
    ReleaseKeys releases;
  };
  // Picks entries in order and decides their offers, up to
  // `concurrent_offers` at once, until none is left to offer, a peer is
  // down or the pass made kMaxOffersPerPass.
  void MakeOffers();
  // Decides the offer for the busy entry `key` (reserves an agent at
  // presence, records the offer at sessions, issues its commit) into
  // `decided` for SettleOffer; returns false when the pass should stop (a
  // peer is down). Ends the claims of its candidates.
  bool DecideOffer(const std::string& key, uint64_t wait_id,
                   const std::vector<std::string>& candidates, DecidedOffer* decided);
  // Awaits the offer's commit, then sends its owed releases and drives its
  // auto-accept (an offer with neither is not awaited); false when the pass
  // should stop.
  bool SettleOffer(DecidedOffer& offer);
  // The accept path once the entry is busy and its accept intent durable
  // (sessions) — from AcceptOffer, auto-accept and the dispatcher.
  absl::StatusOr<v1::Assignment> DriveAccept(const std::string& key, uint64_t wait_id,
                                             const std::string& agent_id,
                                             const std::string& offer_id, bool automatic,
                                             absl::Time deadline);
  // Commits the accepted offer (the assignment, or the complaint leaving).
  absl::StatusOr<v1::Assignment> CommitAccept(const std::string& key, uint64_t wait_id,
                                              const std::string& agent_id,
                                              const std::string& offer_id, bool automatic);
  // Sessions no longer waits for this accept: the entry leaves routing.
  void Abandon(const std::string& key, uint64_t wait_id, const std::string& detail);
  // The capacity behind the offer is gone and the session still waits: the
  // offer is withdrawn and the entry goes to the next agent.
  void RollBackAccept(const std::string& key, uint64_t wait_id);
  // Gives a busy entry back after a peer failure, to be retried later.
  absl::Status Unbusy(const std::string& key, uint64_t wait_id, absl::Status status);
  void DriveIntents();
  void Backoff(Entry& entry, absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration BackoffAfter(int attempts) const;
  void ExpireDue();
  void TellSessionsRequeued();
  void ReconcileIfDue();
  void RequestReconcile(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PruneClosedOffers();
  void RefreshGauges();
  void SetAgent(const presence::v1::Agent& agent, absl::Time now, RoutingWrite& write,
                OfferBatch& offers) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RoutingStore* const store_;
  PresencePort* const presence_;
  SessionsPort* const sessions_;
  Clock* const clock_;
  RoutingMetrics* const metrics_;
  const RouterOptions options_;
  const ScheduleBook* const hours_;

  mutable absl::Mutex mu_;
  absl::CondVar work_ ABSL_GUARDED_BY(mu_);
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  // The entries of entries_ that are not settled, by key. Settled: no
  // re-queue to tell sessions, no accept and no call in progress, and either
  // ASSIGNED, or WAITING with no back-off ahead and no target agent to fall
  // back from; nothing a dispatcher pass does concerns it but MakeOffers,
  // which finds waiting entries through queues_. An ASSIGNED entry leaves
  // that state only through Requeue, a WAITING one through PickNext (busy)
  // or Backoff, and each puts it back here. On a busy floor almost every
  // entry is settled (or, in a surge, waiting), and a pass (one per wake-up,
  // hundreds a second) must not walk them all.
  //
  // An OFFERED entry nobody is accepting is settled until its offer
  // expires: it waits in offer_deadlines_ instead, and ExpireDue puts it
  // back when the time comes. It leaves that state through CloseOffer
  // (which forgets its deadline) or AcceptOffer (which puts it back here).
  // In a surge thousands of offers are open at once.
  std::map<std::string, Entry*> unsettled_ ABSL_GUARDED_BY(mu_);
  // (offer_expires_at, key) of each settled OFFERED entry, soonest first.
  std::set<std::pair<absl::Time, std::string>> offer_deadlines_ ABSL_GUARDED_BY(mu_);
  QueueOrder queues_ ABSL_GUARDED_BY(mu_);
  // Open offers and accepted session offers, by offer id -> entry key.
  absl::flat_hash_map<std::string, std::string> offers_ ABSL_GUARDED_BY(mu_);
  // The most recently used closed offers, most recent first, and an index.
  std::list<ClosedOfferRecord> closed_cache_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::list<ClosedOfferRecord>::iterator> closed_index_
      ABSL_GUARDED_BY(mu_);
  AgentPool agents_ ABSL_GUARDED_BY(mu_);
  // A snapshot of presence was applied (the view is trustworthy).
  bool presence_live_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, SettingsRecord> settings_ ABSL_GUARDED_BY(mu_);
  // Supervisors with an open WatchOffers stream, and how many streams.
  std::map<std::string, int> watching_supervisors_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> last_complaint_accept_ ABSL_GUARDED_BY(mu_);
  // Releases owed to presence, by (agent, session).
  std::map<std::pair<std::string, std::string>, Owed> owed_ ABSL_GUARDED_BY(mu_);
  uint64_t next_wait_id_ ABSL_GUARDED_BY(mu_) = 1;
  // Holder ids: the next to issue, and those issued to offers still being
  // made (their reservations must survive a reconciliation).
  int64_t next_holder_ ABSL_GUARDED_BY(mu_) = 1;
  std::multiset<int64_t> inflight_holders_ ABSL_GUARDED_BY(mu_);
  // Ids below this are safe to issue (the ceiling is committed); set from
  // commit callbacks.
  std::atomic<int64_t> holder_ceiling_{0};
  std::atomic<bool> raising_ceiling_{false};
  std::atomic<bool> offers_stopped_{false};
  absl::Time next_reconcile_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time last_reconcile_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int reconcile_failures_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time next_prune_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // Writes are queued under mu_; answers wait for them outside it.
  storage::OrderedCommits commits_;

  // Separate from mu_: commit callbacks publish while other calls decide.
  mutable absl::Mutex listeners_mu_;
  std::multimap<std::string, OfferListener*> listeners_ ABSL_GUARDED_BY(listeners_mu_);

  // Queues whose gauges were set by the last refresh, and those since
  // zeroed, most recently zeroed first.
  absl::Mutex gauges_mu_;
  absl::Time gauges_refreshed_ ABSL_GUARDED_BY(gauges_mu_) = absl::InfinitePast();
  // A pass skipped the refresh: the dispatcher wakes for it when it is due.
  bool gauges_due_ ABSL_GUARDED_BY(gauges_mu_) = false;
  std::set<QueueId> gauged_ ABSL_GUARDED_BY(gauges_mu_);
  std::list<QueueId> idle_gauges_ ABSL_GUARDED_BY(gauges_mu_);

  // Where MakeOffers decides session offers. Last: its threads end first.
  server::BlockingPool deciders_;
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

}  // namespace switchboard::routing
