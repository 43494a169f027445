#include "services/routing/router.h"

#include <algorithm>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/fault/fault_point.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::routing {
namespace {

using common::v1::Channel;
using presence::v1::Agent;
using protoutil::ToDuration;
using protoutil::ToTimestamp;

constexpr char kProducer[] = "routing";
constexpr size_t kMaxNote = 1000;
// Offers made in one pass before the gauges are refreshed and the pass ends.
constexpr int kMaxOffersPerPass = 1000;
// Holder ids are issued below a committed ceiling, raised by this much when
// half of the headroom is used: a restart resumes above every id issued.
constexpr int64_t kHolderBlock = int64_t{1} << 20;
// Closed offers deleted per pruning commit, and how often pruning runs.
constexpr int kPruneLimit = 1000;
constexpr absl::Duration kPruneInterval = absl::Minutes(1);

bool IsLanguageTag(absl::string_view tag) {
  if (tag.size() < 2 || tag.size() > 35) return false;
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return absl::ascii_isalpha(static_cast<unsigned char>(tag[0]));
}

QueueId QueueOf(const v1::QueueEntry& entry) {
  return QueueId{entry.queue().kind(), entry.queue().channel(), entry.queue().category(),
                 entry.queue().language()};
}

void ToProto(const QueueId& queue, v1::QueueKey* out) {
  out->set_kind(queue.kind);
  out->set_channel(queue.channel);
  out->set_category(queue.category);
  out->set_language(queue.language);
}

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

const std::string& SubjectOf(const v1::QueueEntry& entry) {
  return entry.kind() == v1::ENTRY_KIND_COMPLAINT ? entry.complaint_id() : entry.session_id();
}

events::v1::Event Sealed(events::v1::Event event, const std::string& key, absl::Time now) {
  events::Seal(event, kProducer, key, now).IgnoreError();
  return event;
}

// A peer's answer that is a decision about the request, not a failure to
// reach the peer: retrying the same call would get the same answer.
bool IsDecision(const absl::Status& s) {
  return absl::IsResourceExhausted(s) || absl::IsFailedPrecondition(s) ||
         absl::IsNotFound(s) || absl::IsAlreadyExists(s) || absl::IsInvalidArgument(s) ||
         absl::IsPermissionDenied(s);
}

bool Matches(const Router::Filter& filter, const QueueId& queue) {
  return (filter.kind == v1::ENTRY_KIND_UNSPECIFIED || filter.kind == queue.kind) &&
         (filter.channel == common::v1::CHANNEL_UNSPECIFIED ||
          filter.channel == queue.channel) &&
         (filter.category == common::v1::CATEGORY_UNSPECIFIED ||
          filter.category == queue.category) &&
         (filter.language.empty() || filter.language == queue.language);
}

std::string OutcomeName(v1::OfferOutcome outcome) {
  return v1::OfferOutcome_Name(outcome).substr(sizeof("OFFER_OUTCOME_") - 1);
}

void FillWithdrawn(events::v1::OfferWithdrawn* withdrawn, const std::string& offer_id,
                   bool session, const std::string& subject, const std::string& agent_id) {
  withdrawn->set_offer_id(offer_id);
  (session ? withdrawn->mutable_session_id() : withdrawn->mutable_complaint_id())
      ->assign(subject);
  withdrawn->set_agent_id(agent_id);
}

}  // namespace

struct Router::Entry {
  EntryRecord record;
  // Changes whenever the entry is created anew, so that a busy caller can
  // tell that the entry it worked on was cancelled (and maybe re-queued).
  uint64_t wait_id = 0;
  // An offer or an accept is in progress outside the lock.
  bool busy = false;
  // Not offered (or, for an accept in progress, not driven) before this: a
  // peer refused for a reason that may pass.
  absl::Time retry_after = absl::InfinitePast();
  int retries = 0;
  bool in_queue = false;
  QueueOrder::Slot queued_as;

  v1::EntryState state() const { return record.entry.state(); }
  QueueId queue() const { return QueueOf(record.entry); }
  bool session() const { return record.entry.kind() == v1::ENTRY_KIND_SESSION; }
};

Router::Router(RoutingStore* store, PresencePort* presence, SessionsPort* sessions,
               Clock* clock, RoutingMetrics* metrics, RouterOptions options,
               const ScheduleBook* hours)
    : store_(store),
      presence_(presence),
      sessions_(sessions),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      hours_(hours),
      commits_("routing", storage::OrderedCommits::FailedWrite::kUnavailable),
      deciders_(options.concurrent_offers) {}

bool Router::Open(const QueueId& queue, absl::Time now) const {
  if (hours_ == nullptr) return true;
  const Governing governing = hours_->For(queue);
  return governing.schedule == nullptr || governing.schedule->IsOpen(now);
}

v1::QueueHours Router::HoursOf(const QueueId& queue, absl::Time now) const {
  if (hours_ != nullptr) return hours_->HoursOf(queue, now);
  v1::QueueHours hours;
  hours.set_open(true);
  ToTimestamp(now, hours.mutable_next_opening_at());
  return hours;
}

Router::~Router() = default;

absl::Status Router::Load() {
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  if (!contents.ok()) return contents.status();
  int64_t ceiling = 0;
  {
    absl::MutexLock lock(&mu_);
    for (EntryRecord& record : contents->entries) {
      // Entries written before the fix carry a first-response due time of
      // the Unix epoch where they had none.
      if (record.entry.has_first_response_due_at() &&
          record.entry.first_response_due_at().seconds() <= 0) {
        record.entry.clear_first_response_due_at();
      }
      auto entry = std::make_unique<Entry>();
      entry->wait_id = next_wait_id_++;
      entry->record = std::move(record);
      Entry& e = *entry;
      const std::string key = e.record.key;
      entries_[key] = std::move(entry);
      Unsettle(e);
      if (e.state() == v1::ENTRY_STATE_ASSIGNED) {
        if (!e.record.accepted_offer_id.empty()) offers_[e.record.accepted_offer_id] = key;
        continue;
      }
      if (e.state() == v1::ENTRY_STATE_OFFERED) offers_[e.record.offer_id] = key;
      AddToQueue(e);
    }
    for (SettingsRecord& r : contents->settings) settings_[r.agent_id] = std::move(r);
    for (OwedRelease& r : contents->owed_releases) {
      Owed& owed = owed_[{r.agent_id, r.session_id}];
      owed.record = std::move(r);
    }
    // Every id issued before is below the committed ceiling.
    next_holder_ = std::max<int64_t>(1, contents->holder_ceiling);
    ceiling = next_holder_ + kHolderBlock;
  }
  RoutingWrite raise;
  raise.holder_ceiling = ceiling;
  absl::Notification done;
  absl::Status raised;
  store_->Apply(std::move(raise), [&](absl::Status status) {
    raised = status;
    done.Notify();
  });
  done.WaitForNotification();
  if (!raised.ok()) return raised;
  holder_ceiling_ = ceiling;
  return absl::OkStatus();
}

std::shared_ptr<storage::PendingWrite> Router::Commit(RoutingWrite write, OfferBatch offers) {
  if (write.empty()) {
    Publish(offers);
    return storage::OrderedCommits::Nothing();
  }
  return commits_.Commit(*store_, std::move(write),
                         {[this, offers = std::move(offers)] { Publish(offers); }});
}

void Router::Publish(const OfferBatch& offers) {
  absl::MutexLock lock(&listeners_mu_);
  for (const auto& [offer, closed] : offers) {
    auto [begin, end] = listeners_.equal_range(offer.agent_id());
    for (auto it = begin; it != end; ++it) it->second->OnOffer(offer, closed);
  }
}

void Router::WakeLocked() {
  woken_ = true;
  work_.SignalAll();
}

void Router::StopMakingOffers() { offers_stopped_ = true; }

void Router::Wake() {
  absl::MutexLock lock(&mu_);
  WakeLocked();
}

void Router::Unsettle(Entry& entry) { unsettled_.emplace(entry.record.key, &entry); }

void Router::Erase(const std::string& key) {
  unsettled_.erase(key);
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  offer_deadlines_.erase({it->second->record.offer_expires_at, key});
  entries_.erase(it);
}

std::vector<Router::Entry*> Router::Unsettled() {
  const absl::Time now = clock_->Now();
  std::vector<Entry*> out;
  for (auto it = unsettled_.begin(); it != unsettled_.end();) {
    const Entry& entry = *it->second;
    const bool quiet = entry.record.requeued_from.empty() && !entry.record.accepting &&
                       !entry.busy;
    const bool assigned = entry.state() == v1::ENTRY_STATE_ASSIGNED;
    // A waiting entry with no back-off ahead and no target to fall back
    // from is MakeOffers' alone, which finds it through the queues.
    const bool waiting = entry.state() == v1::ENTRY_STATE_WAITING &&
                         entry.retry_after <= now && !entry.record.entry.has_target_until();
    if (quiet && (assigned || waiting)) {
      it = unsettled_.erase(it);
      continue;
    }
    // An offer nobody is accepting: nothing to do until it expires.
    if (quiet && entry.state() == v1::ENTRY_STATE_OFFERED && entry.retry_after <= now &&
        entry.record.offer_expires_at > now) {
      offer_deadlines_.emplace(entry.record.offer_expires_at, it->first);
      it = unsettled_.erase(it);
      continue;
    }
    out.push_back(it->second);
    ++it;
  }
  return out;
}

void Router::WaitForWork(absl::Duration max) {
  absl::MutexLock lock(&mu_);
  absl::Duration wait = max;
  const absl::Time now = clock_->Now();
  if (!commits_.failed()) {
    // Only what a pass would act on counts: a busy entry, or a back-off that
    // already passed without the entry being offerable, must not make the
    // dispatcher spin.
    for (const Entry* entry : Unsettled()) {
      if (entry->busy) continue;
      if (entry->state() == v1::ENTRY_STATE_OFFERED && !entry->record.accepting) {
        wait = std::min(wait, entry->record.offer_expires_at - now);
      }
      if (entry->retry_after > now) wait = std::min(wait, entry->retry_after - now);
    }
    if (!offer_deadlines_.empty()) wait = std::min(wait, offer_deadlines_.begin()->first - now);
    for (const auto& [key, owed] : owed_) {
      if (!owed.inflight) wait = std::min(wait, owed.next_attempt - now);
    }
    wait = std::min(wait, next_reconcile_ - now);
    // A closed queue holding entries opens: its entries are offered then.
    if (hours_ != nullptr) {
      for (const auto& [queue, order] : queues_.queues()) {
        const Governing governing = hours_->For(queue);
        if (governing.schedule == nullptr || governing.schedule->IsOpen(now)) continue;
        const std::optional<absl::Time> opening = governing.schedule->NextTransition(now);
        if (opening.has_value()) wait = std::min(wait, *opening - now);
      }
    }
  }
  {
    absl::MutexLock gauges(&gauges_mu_);
    if (gauges_due_) wait = std::min(wait, gauges_refreshed_ + options_.gauge_interval - now);
  }
  if (!woken_ && wait > absl::ZeroDuration()) {
    work_.WaitWithTimeout(&mu_, wait);
  }
  woken_ = false;
}

absl::StatusOr<int64_t> Router::IssueHolder() {
  const int64_t ceiling = holder_ceiling_;
  if (next_holder_ >= ceiling) {
    return absl::UnavailableError("holder ids wait for their ceiling to be committed");
  }
  const int64_t id = next_holder_++;
  if (next_holder_ + kHolderBlock / 2 > ceiling && !raising_ceiling_.exchange(true)) {
    const int64_t raised = ceiling + kHolderBlock;
    RoutingWrite write;
    write.holder_ceiling = raised;
    commits_.Commit(*store_, std::move(write),
                    {[this, raised] { holder_ceiling_ = raised; },
                     [this] { raising_ceiling_ = false; }});
  }
  return id;
}

// ---- queue bookkeeping ----

void Router::AddToQueue(Entry& entry) {
  if (entry.in_queue) return;
  entry.queued_as = QueueOrder::Slot{entry.record.entry.priority(), entry.record.order,
                                     entry.record.key};
  queues_.Add(entry.queue(), entry.queued_as);
  entry.in_queue = true;
  MarkOffered(entry);
}

void Router::MarkOffered(const Entry& entry) {
  if (!entry.in_queue) return;
  queues_.SetOffered(entry.queue(), entry.queued_as,
                     entry.state() == v1::ENTRY_STATE_OFFERED);
}

void Router::RemoveFromQueue(Entry& entry) {
  if (!entry.in_queue) return;
  queues_.Remove(entry.queue(), entry.queued_as);
  entry.in_queue = false;
}

void Router::MoveToHead(Entry& entry) {
  const bool was_queued = entry.in_queue;
  RemoveFromQueue(entry);
  entry.record.order = queues_.HeadOrder(entry.queue(), entry.record.entry.priority(),
                                         entry.record.order);
  if (was_queued) AddToQueue(entry);
}

int Router::PositionOf(const Entry& entry) const {
  if (!entry.in_queue) return 0;
  return queues_.PositionOf(entry.queue(), entry.queued_as);
}

// ---- offers ----

v1::Offer Router::OfferOf(const Entry& entry) const {
  v1::Offer offer;
  offer.set_offer_id(entry.record.offer_id);
  offer.set_agent_id(entry.record.entry.offered_agent_id());
  *offer.mutable_entry() = entry.record.entry;
  offer.mutable_entry()->set_position(PositionOf(entry));
  ToTimestamp(entry.record.offered_at, offer.mutable_offered_at());
  ToTimestamp(entry.record.offer_expires_at, offer.mutable_expires_at());
  return offer;
}

v1::Offer Router::CloseOffer(Entry& entry, v1::OfferOutcome outcome, absl::Time now,
                             RoutingWrite& write, ReleaseKeys* releases) {
  v1::Offer offer = OfferOf(entry);
  offer.set_outcome(outcome);
  offer.set_auto_accepted(outcome == v1::OFFER_OUTCOME_ACCEPTED && entry.record.auto_accept);
  ToTimestamp(now, offer.mutable_closed_at());
  offers_.erase(entry.record.offer_id);
  offer_deadlines_.erase({entry.record.offer_expires_at, entry.record.key});
  if (outcome != v1::OFFER_OUTCOME_ACCEPTED) {
    // An accepted offer is remembered with its assignment (CommitAccept).
    Remember(ClosedOfferRecord{offer.offer_id(), offer.agent_id(), offer, std::nullopt, now},
             write);
    if (entry.session()) {
      Owe(offer.agent_id(), entry.record.entry.session_id(), entry.record.holder_id, now, write,
          releases);
      entry.record.holder_id = 0;
    }
  }
  entry.record.entry.set_state(v1::ENTRY_STATE_WAITING);
  MarkOffered(entry);
  entry.record.entry.clear_offered_agent_id();
  entry.record.offer_id.clear();
  entry.record.offered_at = absl::InfinitePast();
  entry.record.offer_expires_at = absl::InfinitePast();
  entry.record.auto_accept = false;
  entry.record.accepting = false;
  switch (outcome) {
    case v1::OFFER_OUTCOME_DECLINED: metrics_->offers_declined->Increment(); break;
    case v1::OFFER_OUTCOME_EXPIRED: metrics_->offers_expired->Increment(); break;
    case v1::OFFER_OUTCOME_WITHDRAWN: metrics_->offers_withdrawn->Increment(); break;
    default: break;
  }
  return offer;
}

void Router::Remember(ClosedOfferRecord record, RoutingWrite& write) {
  write.closed_offers.push_back(record);
  Cache(std::move(record));
}

void Router::Cache(ClosedOfferRecord record) {
  if (options_.closed_offers_cached == 0) return;
  if (auto it = closed_index_.find(record.offer_id); it != closed_index_.end()) {
    closed_cache_.erase(it->second);
    closed_index_.erase(it);
  }
  const std::string id = record.offer_id;
  closed_cache_.push_front(std::move(record));
  closed_index_[id] = closed_cache_.begin();
  while (closed_cache_.size() > options_.closed_offers_cached) {
    closed_index_.erase(closed_cache_.back().offer_id);
    closed_cache_.pop_back();
  }
}

const ClosedOfferRecord* Router::Recall(const std::string& offer_id) {
  auto it = closed_index_.find(offer_id);
  if (it == closed_index_.end()) return nullptr;
  closed_cache_.splice(closed_cache_.begin(), closed_cache_, it->second);
  return &*it->second;
}

absl::StatusOr<std::optional<ClosedOfferRecord>> Router::FindClosed(
    const std::string& offer_id) {
  std::optional<ClosedOfferRecord> found;
  std::shared_ptr<storage::PendingWrite> newest;
  {
    absl::MutexLock lock(&mu_);
    if (const ClosedOfferRecord* cached = Recall(offer_id); cached != nullptr) {
      found = *cached;
      newest = commits_.Newest();
    }
  }
  if (found.has_value()) {
    // The close may still be on its way to disk: answer once it is there.
    if (absl::Status s = commits_.AwaitInOrder(newest); !s.ok()) return s;
    return found;
  }
  absl::StatusOr<std::optional<ClosedOfferRecord>> stored = store_->FindClosedOffer(offer_id);
  if (!stored.ok()) {
    log::Error("closed_offer_read_failed",
               {{"offer_id", offer_id}, {"detail", stored.status().message()}});
    return absl::UnavailableError("routing storage unavailable; retry");
  }
  if (stored->has_value()) {
    absl::MutexLock lock(&mu_);
    Cache(**stored);
  }
  return stored;
}

void Router::Drop(Entry& entry, v1::CancelReason reason, absl::Time now, RoutingWrite& write,
                  OfferBatch& offers, ReleaseKeys& releases) {
  const v1::EntryState previous = entry.state();
  const bool session = entry.session();
  const std::string subject = SubjectOf(entry.record.entry);
  std::string agent_id;
  if (previous == v1::ENTRY_STATE_OFFERED) {
    agent_id = entry.record.entry.offered_agent_id();
    const std::string offer_id = entry.record.offer_id;
    offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now, write, &releases),
                        true);
    events::v1::Event event;
    FillWithdrawn(event.mutable_offer_withdrawn(), offer_id, session, subject, agent_id);
    write.events.push_back(Sealed(std::move(event), subject, now));
  } else if (previous == v1::ENTRY_STATE_ASSIGNED) {
    agent_id = entry.record.assigned_agent_id;
    offers_.erase(entry.record.accepted_offer_id);
    if (session) Owe(agent_id, subject, entry.record.holder_id, now, write, &releases);
  }

  events::v1::Event event;
  auto* cancelled = event.mutable_entry_cancelled();
  cancelled->set_kind(entry.record.entry.kind());
  (session ? cancelled->mutable_session_id() : cancelled->mutable_complaint_id())
      ->assign(subject);
  cancelled->set_reason(reason);
  cancelled->set_previous_state(previous);
  cancelled->set_agent_id(agent_id);
  if (previous != v1::ENTRY_STATE_ASSIGNED) {
    ToDuration(now - protoutil::FromTimestamp(entry.record.entry.enqueued_at()),
               cancelled->mutable_waited());
  }
  write.events.push_back(Sealed(std::move(event), subject, now));
  write.deleted_entries.push_back(entry.record.key);
  RemoveFromQueue(entry);
  metrics_->entries_cancelled->Increment();
  Erase(entry.record.key);  // destroys `entry`
}

// ---- releases owed to presence ----

void Router::Owe(const std::string& agent_id, const std::string& session_id,
                 int64_t holder_id, absl::Time now, RoutingWrite& write,
                 ReleaseKeys* releases) {
  const OwedRelease release{agent_id, session_id, holder_id, now};
  write.owed_releases.push_back(release);
  Owed& owed = owed_[{agent_id, session_id}];
  if (owed.record.agent_id.empty()) {
    owed.record = release;
  } else {
    owed.record.holder_id = std::max(owed.record.holder_id, holder_id);
  }
  owed.next_attempt = absl::InfinitePast();
  owed.attempts = 0;
  if (releases != nullptr) releases->emplace_back(agent_id, session_id);
}

void Router::ReleaseNow(const ReleaseKeys& keys, absl::Time deadline) {
  std::vector<OwedRelease> send;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& key : keys) {
      auto it = owed_.find(key);
      if (it == owed_.end() || it->second.inflight) continue;
      it->second.inflight = true;
      send.push_back(it->second.record);
    }
  }
  SendReleases(std::move(send), deadline);
}

void Router::SendReleases(std::vector<OwedRelease> releases, absl::Time deadline) {
  if (releases.empty()) return;
  std::vector<OwedRelease> settled, failed;
  absl::Status failure;
  for (OwedRelease& release : releases) {
    if (!failure.ok()) {
      // Presence is unreachable: the rest wait for the next attempt.
      failed.push_back(std::move(release));
      continue;
    }
    absl::Status s =
        presence_->Release(release.agent_id, release.session_id, release.holder_id, deadline);
    // NOT_FOUND: presence does not know the agent; INVALID_ARGUMENT: it never
    // could. Either way nothing is held there.
    if (s.ok() || absl::IsNotFound(s) || absl::IsInvalidArgument(s)) {
      fault::Point("routing.after_release");
      settled.push_back(std::move(release));
    } else {
      metrics_->peer_failures->Increment();
      failure = s;
      failed.push_back(std::move(release));
    }
  }
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  RoutingWrite write;
  for (const OwedRelease& release : settled) {
    auto it = owed_.find({release.agent_id, release.session_id});
    if (it != owed_.end()) {
      if (it->second.record.holder_id <= release.holder_id) {
        owed_.erase(it);
      } else {
        // A newer release of the same session at the agent was owed meanwhile.
        it->second.inflight = false;
        it->second.next_attempt = absl::InfinitePast();
      }
    }
    write.settled_releases.push_back(release);
  }
  for (const OwedRelease& release : failed) {
    auto it = owed_.find({release.agent_id, release.session_id});
    if (it == owed_.end()) continue;
    Owed& owed = it->second;
    owed.inflight = false;
    ++owed.attempts;
    owed.next_attempt = now + BackoffAfter(owed.attempts);
  }
  if (!failed.empty()) {
    log::Warning("release_owed", {{"releases", static_cast<int64_t>(failed.size())},
                                  {"detail", failure.message()}});
  }
  Commit(std::move(write), {});
}

void Router::RetryOwedReleases() {
  constexpr size_t kBatch = 256;
  std::vector<OwedRelease> due;
  {
    absl::MutexLock lock(&mu_);
    if (commits_.failed()) return;
    const absl::Time now = clock_->Now();
    for (auto& [key, owed] : owed_) {
      if (owed.inflight || owed.next_attempt > now) continue;
      owed.inflight = true;
      due.push_back(owed.record);
      if (due.size() == kBatch) break;
    }
  }
  SendReleases(std::move(due), absl::InfiniteFuture());
}

// ---- commands ----

absl::StatusOr<Router::EnqueueResult> Router::EnqueueSession(const EnqueueSessionCommand& c,
                                                             absl::Time deadline) {
  if (absl::Status s = validation::ValidateId("session_id", c.session_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("customer_id", c.customer_id); !s.ok()) return s;
  if (c.channel == common::v1::CHANNEL_UNSPECIFIED || !common::v1::Channel_IsValid(c.channel)) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel: must be CHAT, EMAIL, PHONE or SOCIAL, got ", c.channel));
  }
  if (c.category == common::v1::CATEGORY_UNSPECIFIED ||
      !common::v1::Category_IsValid(c.category)) {
    return absl::InvalidArgumentError(
        absl::StrCat("category: unknown or unset category ", c.category));
  }
  if (!IsLanguageTag(c.language)) {
    return absl::InvalidArgumentError(
        "language: required, a BCP 47 tag such as en or zh-CN");
  }
  if (c.reason == v1::ENQUEUE_REASON_UNSPECIFIED || !v1::EnqueueReason_IsValid(c.reason) ||
      c.reason == v1::ENQUEUE_REASON_AGENT_UNAVAILABLE ||
      c.reason == v1::ENQUEUE_REASON_COMPLAINT) {
    return absl::InvalidArgumentError(absl::StrCat(
        "reason: must be ESCALATED, NEW_SESSION, CALLBACK, TRANSFERRED or REOPENED, got ",
        c.reason));
  }
  if (!v1::Priority_IsValid(c.priority)) {
    return absl::InvalidArgumentError(absl::StrCat("priority: unknown priority ", c.priority));
  }
  if (absl::Status s = validation::ValidateText("transfer_note", c.transfer_note, kMaxNote);
      !s.ok()) {
    return s;
  }
  for (const auto& [field, id] : {std::pair<const char*, const std::string*>{
                                      "target_agent_id", &c.target_agent_id},
                                  {"preferred_agent_id", &c.preferred_agent_id},
                                  {"excluded_agent_id", &c.excluded_agent_id}}) {
    if (id->empty()) continue;
    if (absl::Status s = validation::ValidateId(field, *id); !s.ok()) return s;
  }

  v1::Priority priority = c.priority;
  if (priority == v1::PRIORITY_UNSPECIFIED) {
    priority = (c.category == common::v1::CATEGORY_ACCOUNT_SECURITY ||
                c.category == common::v1::CATEGORY_FROZEN_FUNDS)
                   ? v1::PRIORITY_URGENT
                   : v1::PRIORITY_NORMAL;
  }
  if (c.reason == v1::ENQUEUE_REASON_REOPENED && priority < v1::PRIORITY_HIGH) {
    priority = v1::PRIORITY_HIGH;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  EnqueueResult result;
  ReleaseKeys releases;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    const std::string key = EntryKey(v1::ENTRY_KIND_SESSION, c.session_id);
    RoutingWrite write;
    auto it = entries_.find(key);
    const QueueId requested{v1::ENTRY_KIND_SESSION, c.channel, c.category,
                            PrimaryLanguage(c.language)};
    if (it != entries_.end() && it->second->state() != v1::ENTRY_STATE_ASSIGNED &&
        !(it->second->queue() == requested)) {
      // The waiting session changed queue (a chat continued by email): it
      // moves to the tail of the new queue. An entry being offered finishes
      // that first.
      Entry& moved = *it->second;
      if (moved.busy || moved.state() != v1::ENTRY_STATE_WAITING) {
        return absl::FailedPreconditionError(
            "session_id: the session is being offered in its current queue; retry shortly");
      }
      RemoveFromQueue(moved);
      v1::QueueEntry& e = moved.record.entry;
      ToProto(requested, e.mutable_queue());
      e.set_priority(priority);
      e.set_reason(c.reason);
      ToTimestamp(now, e.mutable_enqueued_at());
      e.clear_first_response_due_at();
      if (c.first_response_due_at > absl::UnixEpoch() &&
          c.first_response_due_at != absl::InfiniteFuture()) {
        ToTimestamp(c.first_response_due_at, e.mutable_first_response_due_at());
      }
      moved.record.order = absl::ToUnixMicros(now);
      moved.wait_id = next_wait_id_++;
      AddToQueue(moved);
      events::v1::Event event;
      auto* enqueued = event.mutable_entry_enqueued();
      enqueued->set_kind(v1::ENTRY_KIND_SESSION);
      enqueued->set_session_id(c.session_id);
      *enqueued->mutable_queue() = e.queue();
      enqueued->set_priority(priority);
      enqueued->set_reason(c.reason);
      enqueued->set_queue_depth(queues_.Depth(requested));
      if (e.has_first_response_due_at()) {
        *enqueued->mutable_first_response_due_at() = e.first_response_due_at();
      }
      write.events.push_back(Sealed(std::move(event), c.session_id, now));
      write.upserted_entries.push_back(moved.record);
      result.entry = e;
      result.entry.set_position(PositionOf(moved));
      result.hours = HoursOf(requested, now);
      pending = Commit(std::move(write), {});
      WakeLocked();
    } else if (it != entries_.end() && it->second->state() != v1::ENTRY_STATE_ASSIGNED) {
      // A retry: answered once the first attempt is durable.
      result.entry = it->second->record.entry;
      result.entry.set_position(PositionOf(*it->second));
      result.replayed = true;
      result.hours = HoursOf(it->second->queue(), now);
      pending = commits_.Newest();
    } else {
      if (it != entries_.end()) {
        // A transfer: the assignment ends, its capacity is released.
        Entry& existing = *it->second;
        Owe(existing.record.assigned_agent_id, c.session_id, existing.record.holder_id, now,
            write, &releases);
        offers_.erase(existing.record.accepted_offer_id);
        Erase(key);
      }
      auto entry = std::make_unique<Entry>();
      entry->wait_id = next_wait_id_++;
      EntryRecord& r = entry->record;
      r.key = key;
      v1::QueueEntry& e = r.entry;
      e.set_kind(v1::ENTRY_KIND_SESSION);
      e.set_session_id(c.session_id);
      e.set_customer_id(c.customer_id);
      const QueueId queue{v1::ENTRY_KIND_SESSION, c.channel, c.category,
                          PrimaryLanguage(c.language)};
      ToProto(queue, e.mutable_queue());
      e.set_priority(priority);
      e.set_reason(c.reason);
      e.set_state(v1::ENTRY_STATE_WAITING);
      ToTimestamp(now, e.mutable_enqueued_at());
      // Only EMAIL sessions have a due time; 1970-01-01 is how some clients
      // spell "none".
      if (c.first_response_due_at > absl::UnixEpoch() &&
          c.first_response_due_at != absl::InfiniteFuture()) {
        ToTimestamp(c.first_response_due_at, e.mutable_first_response_due_at());
      }
      if (!c.target_agent_id.empty()) {
        e.set_target_agent_id(c.target_agent_id);
        ToTimestamp(now + options_.offer_timeout, e.mutable_target_until());
      }
      e.set_preferred_agent_id(c.preferred_agent_id);
      if (c.handoff.has_value()) *e.mutable_handoff() = *c.handoff;
      e.set_transfer_note(c.transfer_note);
      if (!c.excluded_agent_id.empty()) r.excluded.push_back(c.excluded_agent_id);
      r.order = absl::ToUnixMicros(now);
      if (c.at_head) r.order = queues_.HeadOrder(queue, priority, r.order);
      Entry& added = *entry;
      entries_[key] = std::move(entry);
      Unsettle(added);
      AddToQueue(added);

      events::v1::Event event;
      auto* enqueued = event.mutable_entry_enqueued();
      enqueued->set_kind(v1::ENTRY_KIND_SESSION);
      enqueued->set_session_id(c.session_id);
      *enqueued->mutable_queue() = e.queue();
      enqueued->set_priority(priority);
      enqueued->set_reason(c.reason);
      enqueued->set_at_head(c.at_head);
      enqueued->set_target_agent_id(c.target_agent_id);
      enqueued->set_queue_depth(queues_.Depth(queue));
      if (e.has_first_response_due_at()) {
        *enqueued->mutable_first_response_due_at() = e.first_response_due_at();
      }
      write.events.push_back(Sealed(std::move(event), c.session_id, now));
      write.upserted_entries.push_back(r);
      metrics_->entries_enqueued->Increment();
      result.entry = e;
      result.entry.set_position(PositionOf(added));
      result.hours = HoursOf(queue, now);
      pending = Commit(std::move(write), {});
      WakeLocked();
    }
  }
  absl::Status s = commits_.AwaitInOrder(pending);
  if (s.ok()) ReleaseNow(releases, deadline);
  if (!s.ok()) return s;
  return result;
}

absl::StatusOr<Router::EnqueueResult> Router::EnqueueComplaint(
    const EnqueueComplaintCommand& c) {
  if (absl::Status s = validation::ValidateId("complaint_id", c.complaint_id); !s.ok()) {
    return s;
  }
  if (absl::Status s = validation::ValidateId("customer_id", c.customer_id); !s.ok()) return s;
  if (c.category == common::v1::CATEGORY_UNSPECIFIED ||
      !common::v1::Category_IsValid(c.category)) {
    return absl::InvalidArgumentError(
        absl::StrCat("category: unknown or unset category ", c.category));
  }
  if (!c.session_id.empty()) {
    if (absl::Status s = validation::ValidateId("session_id", c.session_id); !s.ok()) return s;
  }
  if (!v1::Priority_IsValid(c.priority)) {
    return absl::InvalidArgumentError(absl::StrCat("priority: unknown priority ", c.priority));
  }
  const v1::Priority priority =
      c.priority == v1::PRIORITY_URGENT ? v1::PRIORITY_URGENT : v1::PRIORITY_HIGH;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  EnqueueResult result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    const std::string key = EntryKey(v1::ENTRY_KIND_COMPLAINT, c.complaint_id);
    if (auto it = entries_.find(key); it != entries_.end()) {
      // A retry: answered once the first attempt is durable.
      result.entry = it->second->record.entry;
      result.entry.set_position(PositionOf(*it->second));
      result.replayed = true;
      result.hours = HoursOf(it->second->queue(), now);
      pending = commits_.Newest();
    } else {
      auto entry = std::make_unique<Entry>();
      entry->wait_id = next_wait_id_++;
      EntryRecord& r = entry->record;
      r.key = key;
      v1::QueueEntry& e = r.entry;
      e.set_kind(v1::ENTRY_KIND_COMPLAINT);
      e.set_complaint_id(c.complaint_id);
      e.set_session_id(c.session_id);
      e.set_customer_id(c.customer_id);
      const QueueId queue{v1::ENTRY_KIND_COMPLAINT, common::v1::CHANNEL_UNSPECIFIED,
                          c.category, ""};
      ToProto(queue, e.mutable_queue());
      e.set_priority(priority);
      e.set_reason(v1::ENQUEUE_REASON_COMPLAINT);
      e.set_state(v1::ENTRY_STATE_WAITING);
      ToTimestamp(now, e.mutable_enqueued_at());
      r.order = absl::ToUnixMicros(now);
      Entry& added = *entry;
      entries_[key] = std::move(entry);
      Unsettle(added);
      AddToQueue(added);

      RoutingWrite write;
      events::v1::Event event;
      auto* enqueued = event.mutable_entry_enqueued();
      enqueued->set_kind(v1::ENTRY_KIND_COMPLAINT);
      enqueued->set_complaint_id(c.complaint_id);
      *enqueued->mutable_queue() = e.queue();
      enqueued->set_priority(priority);
      enqueued->set_reason(v1::ENQUEUE_REASON_COMPLAINT);
      enqueued->set_queue_depth(queues_.Depth(queue));
      write.events.push_back(Sealed(std::move(event), c.complaint_id, now));
      write.upserted_entries.push_back(r);
      metrics_->entries_enqueued->Increment();
      result.entry = e;
      result.entry.set_position(PositionOf(added));
      result.hours = HoursOf(queue, now);
      pending = Commit(std::move(write), {});
      WakeLocked();
    }
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<bool> Router::Cancel(v1::EntryKind kind, const std::string& id,
                                    v1::CancelReason reason, absl::Time deadline) {
  const char* field = kind == v1::ENTRY_KIND_COMPLAINT ? "complaint_id" : "session_id";
  if (absl::Status s = validation::ValidateId(field, id); !s.ok()) return s;
  if (!v1::CancelReason_IsValid(reason)) {
    return absl::InvalidArgumentError(absl::StrCat("reason: unknown reason ", reason));
  }
  if (reason == v1::CANCEL_REASON_UNSPECIFIED) {
    reason = kind == v1::ENTRY_KIND_COMPLAINT ? v1::CANCEL_REASON_COMPLAINT_HANDLED
                                              : v1::CANCEL_REASON_OTHER;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  ReleaseKeys releases;
  bool found = false;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    auto it = entries_.find(EntryKey(kind, id));
    if (it == entries_.end()) {
      // Nothing held (or a retry): answered once an earlier cancel is durable.
      pending = commits_.Newest();
    } else if (it->second->session() && it->second->record.accepting) {
      // An accept of the session's offer is being completed (maybe resumed
      // by a new leader after sessions applied it): dropping the entry now
      // would withdraw an offer sessions may have applied. Sessions retries
      // its cancel until the accept has settled either way.
      WakeLocked();
      return absl::UnavailableError(
          "session_id: an accepted offer of this session is being completed; retry");
    } else {
      found = true;
      RoutingWrite write;
      OfferBatch offers;
      // A busy entry is dropped too: whoever is busy with it notices (the
      // wait id is gone) and releases what they reserved.
      Drop(*it->second, reason, clock_->Now(), write, offers, releases);
      pending = Commit(std::move(write), std::move(offers));
      WakeLocked();
    }
  }
  absl::Status s = commits_.AwaitInOrder(pending);
  if (!s.ok()) return s;
  fault::Point("routing.after_cancel_commit");
  ReleaseNow(releases, deadline);
  return found;
}

absl::StatusOr<v1::Assignment> Router::AcceptOffer(const std::string& agent_id,
                                                   const std::string& offer_id,
                                                   absl::Time deadline) {
  if (absl::Status s = validation::ValidateId("offer_id", offer_id, 64); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::string key;
  uint64_t wait_id = 0;
  bool automatic = false;
  std::shared_ptr<storage::PendingWrite> pending;
  std::optional<v1::Assignment> replay;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    auto open = offers_.find(offer_id);
    if (open != offers_.end()) {
      Entry& entry = *entries_.at(open->second);
      if (entry.state() == v1::ENTRY_STATE_ASSIGNED) {
        if (entry.record.assigned_agent_id != agent_id) {
          return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
        }
        // A retry: answered once the accept is durable.
        v1::Assignment& assignment = replay.emplace();
        assignment.set_offer_id(offer_id);
        assignment.set_agent_id(agent_id);
        assignment.set_session_id(entry.record.entry.session_id());
        ToTimestamp(entry.record.accepted_at, assignment.mutable_accepted_at());
        ToDuration(entry.record.accepted_at -
                       protoutil::FromTimestamp(entry.record.entry.enqueued_at()),
                   assignment.mutable_queue_wait());
        pending = commits_.Newest();
      } else {
        if (entry.record.entry.offered_agent_id() != agent_id) {
          return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
        }
        if (entry.busy) {
          return absl::UnavailableError("the offer is being accepted; retry");
        }
        if (!entry.record.accepting) {
          if (clock_->Now() >= entry.record.offer_expires_at) {
            return absl::FailedPreconditionError("offer_id: the offer expired");
          }
          if (entry.session()) {
            // The accept intent, durable before presence or sessions hear of
            // it: whatever happens next is finished or rolled back.
            entry.record.accepting = true;
            RoutingWrite write;
            write.upserted_entries.push_back(entry.record);
            pending = Commit(std::move(write), {});
          }
        }
        entry.busy = true;
        // Back among those the passes look at (an accept that fails leaves
        // the intent to them) and off the expiry clock.
        offer_deadlines_.erase({entry.record.offer_expires_at, entry.record.key});
        Unsettle(entry);
        key = entry.record.key;
        wait_id = entry.wait_id;
        automatic = entry.record.auto_accept;
      }
    }
  }
  if (replay.has_value()) {
    if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
    return *replay;
  }
  if (key.empty()) {
    absl::StatusOr<std::optional<ClosedOfferRecord>> closed = FindClosed(offer_id);
    if (!closed.ok()) return closed.status();
    if (!closed->has_value() || (*closed)->agent_id != agent_id) {
      return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
    }
    if ((*closed)->assignment.has_value()) return *(*closed)->assignment;
    return absl::FailedPreconditionError(
        absl::StrCat("offer_id: the offer is ", OutcomeName((*closed)->offer.outcome())));
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return Unbusy(key, wait_id, s);
  if (pending != nullptr) fault::Point("routing.after_accept_intent");
  return DriveAccept(key, wait_id, agent_id, offer_id, automatic, deadline);
}

absl::Status Router::Unbusy(const std::string& key, uint64_t wait_id, absl::Status status) {
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(key);
  if (it != entries_.end() && it->second->wait_id == wait_id) {
    it->second->busy = false;
    Backoff(*it->second, clock_->Now());
  }
  return status;
}

absl::StatusOr<v1::Assignment> Router::DriveAccept(const std::string& key, uint64_t wait_id,
                                                   const std::string& agent_id,
                                                   const std::string& offer_id, bool automatic,
                                                   absl::Time deadline) {
  if (!absl::StartsWith(key, "session:")) {
    return CommitAccept(key, wait_id, agent_id, offer_id, automatic);
  }
  const std::string subject = key.substr(key.find(':') + 1);
  std::string display_name;
  {
    absl::MutexLock lock(&mu_);
    if (const Agent* agent = agents_.Find(agent_id); agent != nullptr) {
      display_name = agent->profile().display_name();
    }
  }
  bool assigned = false;
  absl::Status confirmed = presence_->Confirm(agent_id, subject, deadline);
  if (absl::IsNotFound(confirmed)) {
    // Presence no longer holds the capacity (it lapsed, or a release or a
    // reconciliation freed it). Whether sessions already assigned the agent
    // decides between finishing and rolling back.
    absl::StatusOr<SessionView> view = sessions_->GetSession(subject, deadline);
    if (!view.ok() && !absl::IsNotFound(view.status())) {
      metrics_->peer_failures->Increment();
      return Unbusy(key, wait_id,
                    absl::UnavailableError(absl::StrCat("sessions unavailable: ",
                                                        view.status().message())));
    }
    if (view.ok() && view->state == SessionView::State::kAssigned &&
        view->assigned_agent_id == agent_id) {
      // The assignment stands; the next reconciliation restores its capacity.
      assigned = true;
      absl::MutexLock lock(&mu_);
      next_reconcile_ = absl::InfinitePast();
    } else if (view.ok() && view->state == SessionView::State::kQueued) {
      RollBackAccept(key, wait_id);
      return absl::FailedPreconditionError(
          "offer_id: the capacity held for the offer lapsed; it goes to the next agent");
    } else {
      Abandon(key, wait_id, "the session no longer waits for an agent");
      return absl::FailedPreconditionError(
          "offer_id: the session no longer waits for an agent");
    }
  } else if (!confirmed.ok()) {
    metrics_->peer_failures->Increment();
    return Unbusy(key, wait_id,
                  absl::UnavailableError(
                      absl::StrCat("presence unavailable: ", confirmed.message(),
                                   "; the accept is recorded and completes when it is back")));
  } else {
    fault::Point("routing.after_confirm");
  }
  if (!assigned) {
    absl::Status s = sessions_->AssignAgent(subject, agent_id, display_name, offer_id, deadline);
    if (absl::IsFailedPrecondition(s) || absl::IsNotFound(s)) {
      // The session no longer waits (closed meanwhile): routing lets it go.
      Abandon(key, wait_id, std::string(s.message()));
      return absl::FailedPreconditionError(
          "offer_id: the session no longer waits for an agent");
    }
    if (!s.ok()) {
      metrics_->peer_failures->Increment();
      return Unbusy(key, wait_id,
                    absl::UnavailableError(
                        absl::StrCat("sessions unavailable: ", s.message(),
                                     "; the accept is recorded and completes when it is back")));
    }
    fault::Point("routing.after_assign");
  }
  return CommitAccept(key, wait_id, agent_id, offer_id, automatic);
}

void Router::Abandon(const std::string& key, uint64_t wait_id, const std::string& detail) {
  log::Warning("assign_refused", {{"entry", key}, {"detail", detail}});
  std::shared_ptr<storage::PendingWrite> pending;
  ReleaseKeys releases;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second->wait_id != wait_id) return;
    RoutingWrite write;
    OfferBatch offers;
    Drop(*it->second, v1::CANCEL_REASON_OTHER, clock_->Now(), write, offers, releases);
    pending = Commit(std::move(write), std::move(offers));
  }
  if (commits_.AwaitInOrder(pending).ok()) ReleaseNow(releases, absl::InfiniteFuture());
}

void Router::RollBackAccept(const std::string& key, uint64_t wait_id) {
  std::shared_ptr<storage::PendingWrite> pending;
  ReleaseKeys releases;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second->wait_id != wait_id) return;
    Entry& entry = *it->second;
    entry.busy = false;
    if (entry.state() != v1::ENTRY_STATE_OFFERED) return;
    const absl::Time now = clock_->Now();
    const std::string agent_id = entry.record.entry.offered_agent_id();
    const std::string offer_id = entry.record.offer_id;
    RoutingWrite write;
    OfferBatch offers;
    offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now, write, &releases),
                        true);
    events::v1::Event event;
    FillWithdrawn(event.mutable_offer_withdrawn(), offer_id, true, entry.record.entry.session_id(),
                  agent_id);
    write.events.push_back(Sealed(std::move(event), entry.record.entry.session_id(), now));
    write.upserted_entries.push_back(entry.record);
    pending = Commit(std::move(write), std::move(offers));
    WakeLocked();
  }
  if (commits_.AwaitInOrder(pending).ok()) ReleaseNow(releases, absl::InfiniteFuture());
}

absl::StatusOr<v1::Assignment> Router::CommitAccept(const std::string& key, uint64_t wait_id,
                                                    const std::string& agent_id,
                                                    const std::string& offer_id,
                                                    bool automatic) {
  v1::Assignment assignment;
  std::shared_ptr<storage::PendingWrite> pending;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second->wait_id != wait_id) {
      // Cancelled meanwhile: the cancel owes the release of what was held.
      return absl::FailedPreconditionError("offer_id: the offer was withdrawn");
    }
    Entry& entry = *it->second;
    const bool session = entry.session();
    const std::string subject = SubjectOf(entry.record.entry);
    entry.busy = false;
    entry.retries = 0;
    entry.retry_after = absl::InfinitePast();
    const absl::Time now = clock_->Now();
    const absl::Time enqueued_at = protoutil::FromTimestamp(entry.record.entry.enqueued_at());
    const absl::Time offered_at = entry.record.offered_at;
    const int attempt = entry.record.entry.offer_attempts();
    RoutingWrite write;
    v1::Offer closed = CloseOffer(entry, v1::OFFER_OUTCOME_ACCEPTED, now, write, nullptr);
    closed.set_auto_accepted(automatic);
    assignment.set_offer_id(offer_id);
    assignment.set_agent_id(agent_id);
    if (session) {
      assignment.set_session_id(subject);
    } else {
      assignment.set_complaint_id(subject);
    }
    ToTimestamp(now, assignment.mutable_accepted_at());
    ToDuration(now - enqueued_at, assignment.mutable_queue_wait());

    events::v1::Event event;
    auto* accepted = event.mutable_offer_accepted();
    accepted->set_offer_id(offer_id);
    accepted->set_kind(entry.record.entry.kind());
    (session ? accepted->mutable_session_id() : accepted->mutable_complaint_id())
        ->assign(subject);
    accepted->set_agent_id(agent_id);
    *accepted->mutable_queue() = entry.record.entry.queue();
    accepted->set_priority(entry.record.entry.priority());
    ToDuration(now - enqueued_at, accepted->mutable_queue_wait());
    ToDuration(now - offered_at, accepted->mutable_time_to_accept());
    accepted->set_auto_accepted(automatic);
    accepted->set_attempt(attempt);
    write.events.push_back(Sealed(std::move(event), subject, now));
    metrics_->offers_accepted->Increment();
    if (automatic) metrics_->offers_auto_accepted->Increment();
    const QueueId queue = entry.queue();
    metrics_->queue_wait(queue.channel, queue.category)
        .Observe(absl::ToDoubleSeconds(now - enqueued_at));
    Remember(ClosedOfferRecord{offer_id, agent_id, closed, assignment, now}, write);
    RemoveFromQueue(entry);
    if (session) {
      entry.record.entry.set_state(v1::ENTRY_STATE_ASSIGNED);
      entry.record.assigned_agent_id = agent_id;
      entry.record.accepted_offer_id = offer_id;
      entry.record.accepted_at = now;
      offers_[offer_id] = key;
      if (presence_live_ && agents_.Find(agent_id) == nullptr) {
        // The agent went offline while the accept was in progress: the
        // session goes back to the head of its queue at once.
        Requeue(entry, now, write);
      }
      write.upserted_entries.push_back(entry.record);
    } else {
      // A complaint leaves routing once a supervisor takes it.
      last_complaint_accept_[agent_id] = now;
      write.deleted_entries.push_back(key);
      Erase(key);
    }
    pending = Commit(std::move(write), {{closed, true}});
    WakeLocked();
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  fault::Point("routing.after_accept_commit");
  return assignment;
}

absl::StatusOr<v1::Offer> Router::DeclineOffer(const std::string& agent_id,
                                               const std::string& offer_id,
                                               v1::DeclineReason reason, absl::Time deadline) {
  if (absl::Status s = validation::ValidateId("offer_id", offer_id, 64); !s.ok()) return s;
  if (!v1::DeclineReason_IsValid(reason)) {
    return absl::InvalidArgumentError(absl::StrCat("reason: unknown reason ", reason));
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  ReleaseKeys releases;
  v1::Offer result;
  bool open_offer = false;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    auto open = offers_.find(offer_id);
    if (open != offers_.end()) {
      open_offer = true;
      Entry& entry = *entries_.at(open->second);
      const bool mine = entry.state() == v1::ENTRY_STATE_ASSIGNED
                            ? entry.record.assigned_agent_id == agent_id
                            : entry.record.entry.offered_agent_id() == agent_id;
      if (!mine) return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
      if (entry.state() == v1::ENTRY_STATE_ASSIGNED) {
        return absl::FailedPreconditionError("offer_id: the offer was accepted");
      }
      if (entry.busy || entry.record.accepting) {
        return absl::FailedPreconditionError("offer_id: the offer is being accepted");
      }
      const absl::Time now = clock_->Now();
      const bool session = entry.session();
      const std::string subject = SubjectOf(entry.record.entry);
      const absl::Time offered_at = entry.record.offered_at;
      RoutingWrite write;
      result = CloseOffer(entry, v1::OFFER_OUTCOME_DECLINED, now, write, &releases);
      entry.record.excluded.push_back(agent_id);
      if (entry.record.entry.target_agent_id() == agent_id) {
        // A transfer's target declined: back to the queue's head.
        entry.record.entry.clear_target_agent_id();
        entry.record.entry.clear_target_until();
        MoveToHead(entry);
      }
      events::v1::Event event;
      auto* declined = event.mutable_offer_declined();
      declined->set_offer_id(offer_id);
      (session ? declined->mutable_session_id() : declined->mutable_complaint_id())
          ->assign(subject);
      declined->set_agent_id(agent_id);
      declined->set_reason(reason);
      ToDuration(now - offered_at, declined->mutable_time_to_decline());
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(entry.record);
      pending = Commit(std::move(write), {{result, true}});
      WakeLocked();
    }
  }
  if (!open_offer) {
    absl::StatusOr<std::optional<ClosedOfferRecord>> closed = FindClosed(offer_id);
    if (!closed.ok()) return closed.status();
    if (!closed->has_value() || (*closed)->agent_id != agent_id) {
      return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
    }
    if ((*closed)->offer.outcome() == v1::OFFER_OUTCOME_DECLINED) return (*closed)->offer;
    return absl::FailedPreconditionError(
        absl::StrCat("offer_id: the offer is ", OutcomeName((*closed)->offer.outcome())));
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  ReleaseNow(releases, deadline);
  return result;
}

// ---- reads ----

absl::StatusOr<Router::EntryView> Router::GetEntry(v1::EntryKind kind,
                                                   const std::string& id) const {
  const char* field = kind == v1::ENTRY_KIND_COMPLAINT ? "complaint_id" : "session_id";
  if (absl::Status s = validation::ValidateId(field, id); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  auto it = entries_.find(EntryKey(kind, id));
  if (it == entries_.end() || !it->second->in_queue) {
    return absl::NotFoundError(absl::StrCat(field, " ", id, " is not waiting"));
  }
  EntryView view;
  view.entry = it->second->record.entry;
  view.entry.set_position(PositionOf(*it->second));
  view.queue_depth = queues_.Depth(it->second->queue());
  return view;
}

std::vector<v1::QueueEntry> Router::ListEntries(const Filter& filter, size_t offset,
                                                size_t page_size, bool* more) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::QueueEntry> page;
  *more = false;
  size_t index = 0;
  for (const auto& [queue, order] : queues_.queues()) {
    if (!Matches(filter, queue)) continue;
    int position = 0;
    for (const QueueOrder::Slot& slot : order) {
      ++position;
      if (index++ < offset) continue;
      if (page.size() == page_size) {
        *more = true;
        return page;
      }
      v1::QueueEntry& entry = page.emplace_back(entries_.at(slot.key)->record.entry);
      entry.set_position(position);
    }
  }
  return page;
}

std::vector<v1::QueueStats> Router::Stats(const Filter& filter) const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::map<QueueId, v1::QueueStats> stats;
  for (const auto& [queue, order] : queues_.queues()) {
    if (!Matches(filter, queue)) continue;
    v1::QueueStats& s = stats[queue];
    ToProto(queue, s.mutable_queue());
    s.set_depth(static_cast<int>(order.size()));
    s.add_depth_by_priority(0);
    s.add_depth_by_priority(0);
    s.add_depth_by_priority(0);
    absl::Time oldest = absl::InfiniteFuture();
    for (const QueueOrder::Slot& slot : order) {
      const EntryRecord& r = entries_.at(slot.key)->record;
      if (r.entry.state() == v1::ENTRY_STATE_OFFERED) s.set_offered(s.offered() + 1);
      const int p = r.entry.priority() - 1;
      if (p >= 0 && p < 3) s.set_depth_by_priority(p, s.depth_by_priority(p) + 1);
      oldest = std::min(oldest, protoutil::FromTimestamp(r.entry.enqueued_at()));
      if (r.entry.has_first_response_due_at() &&
          protoutil::FromTimestamp(r.entry.first_response_due_at()) <= now) {
        s.set_sla_breached(s.sla_breached() + 1);
      }
    }
    if (oldest != absl::InfiniteFuture()) {
      ToTimestamp(oldest, s.mutable_oldest_enqueued_at());
      ToDuration(std::max(absl::ZeroDuration(), now - oldest), s.mutable_oldest_wait());
    } else {
      ToDuration(absl::ZeroDuration(), s.mutable_oldest_wait());
    }
  }
  // Queues that an ONLINE agent could serve appear even when empty.
  for (const QueueId& queue : agents_.ServableQueues()) {
    if (!Matches(filter, queue) || stats.count(queue)) continue;
    v1::QueueStats& s = stats[queue];
    ToProto(queue, s.mutable_queue());
    for (int i = 0; i < 3; ++i) s.add_depth_by_priority(0);
    ToDuration(absl::ZeroDuration(), s.mutable_oldest_wait());
  }
  std::vector<v1::QueueStats> out;
  for (auto& [queue, s] : stats) {
    *s.mutable_hours() = HoursOf(queue, now);
    AgentPool::Counts counts;
    if (queue.kind == v1::ENTRY_KIND_COMPLAINT) {
      for (const auto& [id, count] : watching_supervisors_) {
        const Agent* agent = agents_.Find(id);
        if (agent == nullptr || agent->status() != presence::v1::AGENT_STATUS_ONLINE) continue;
        ++counts.eligible;
        ++counts.available;
      }
    } else {
      counts = agents_.Count(queue);
    }
    s.set_eligible_agents(counts.eligible);
    s.set_available_agents(counts.available);
    out.push_back(std::move(s));
  }
  return out;
}

// ---- settings ----

SettingsRecord Router::GetSettings(const std::string& agent_id) const {
  absl::MutexLock lock(&mu_);
  auto it = settings_.find(agent_id);
  if (it != settings_.end()) return it->second;
  SettingsRecord defaults;
  defaults.agent_id = agent_id;
  return defaults;
}

absl::StatusOr<SettingsRecord> Router::UpdateSettings(const std::string& agent_id,
                                                      const v1::AgentSettings& settings,
                                                      const std::string& actor_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  SettingsRecord record;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    record.agent_id = agent_id;
    record.settings = settings;
    record.updated_at = now;
    settings_[agent_id] = record;
    RoutingWrite write;
    write.settings.push_back(record);
    events::v1::Event event;
    auto* changed = event.mutable_agent_settings_changed();
    changed->set_agent_id(agent_id);
    *changed->mutable_settings() = settings;
    changed->set_actor_id(actor_id);
    write.events.push_back(Sealed(std::move(event), agent_id, now));
    pending = Commit(std::move(write), {});
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return record;
}

// ---- offer streams ----

std::vector<v1::Offer> Router::SubscribeOffers(const std::string& agent_id, bool supervisor,
                                               OfferListener* listener) {
  std::vector<v1::Offer> open;
  absl::MutexLock lock(&mu_);
  {
    absl::MutexLock listeners_lock(&listeners_mu_);
    listeners_.emplace(agent_id, listener);
  }
  if (supervisor) {
    ++watching_supervisors_[agent_id];
    WakeLocked();
  }
  for (const auto& [offer_id, key] : offers_) {
    const Entry& entry = *entries_.at(key);
    if (entry.state() == v1::ENTRY_STATE_OFFERED &&
        entry.record.entry.offered_agent_id() == agent_id) {
      open.push_back(OfferOf(entry));
    }
  }
  std::sort(open.begin(), open.end(), [](const v1::Offer& a, const v1::Offer& b) {
    return std::make_pair(a.offered_at().seconds(), a.offered_at().nanos()) <
           std::make_pair(b.offered_at().seconds(), b.offered_at().nanos());
  });
  return open;
}

void Router::UnsubscribeOffers(OfferListener* listener) {
  std::string agent_id;
  {
    absl::MutexLock listeners_lock(&listeners_mu_);
    for (auto it = listeners_.begin(); it != listeners_.end(); ++it) {
      if (it->second == listener) {
        agent_id = it->first;
        listeners_.erase(it);
        break;
      }
    }
  }
  absl::MutexLock lock(&mu_);
  auto it = watching_supervisors_.find(agent_id);
  if (it == watching_supervisors_.end()) return;
  // Only supervisors' streams are counted; an agent's stream leaves the
  // count alone. A supervisor with several devices stays until the last.
  absl::MutexLock listeners_lock(&listeners_mu_);
  if (listeners_.count(agent_id) < static_cast<size_t>(it->second)) {
    if (--it->second <= 0) watching_supervisors_.erase(it);
  }
}

// ---- presence ----

void Router::SetAgent(const Agent& agent, absl::Time now, RoutingWrite& write,
                      OfferBatch& offers) {
  const Agent* known = agents_.Find(agent.agent_id());
  if (known != nullptr && agent.revision() != 0 && known->revision() > agent.revision()) {
    return;  // older than what we know
  }
  if (agent.status() == presence::v1::AGENT_STATUS_OFFLINE) {
    agents_.Remove(agent.agent_id());
    LapseLocked(agent.agent_id(), now, write, offers);
  } else {
    agents_.Upsert(agent);
  }
}

void Router::Requeue(Entry& entry, absl::Time now, RoutingWrite& write) {
  const std::string agent_id = entry.record.assigned_agent_id;
  const std::string subject = entry.record.entry.session_id();
  offers_.erase(entry.record.accepted_offer_id);
  Owe(agent_id, subject, entry.record.holder_id, now, write, nullptr);
  entry.record.holder_id = 0;
  entry.record.entry.set_state(v1::ENTRY_STATE_WAITING);
  Unsettle(entry);
  entry.record.entry.set_reason(v1::ENQUEUE_REASON_AGENT_UNAVAILABLE);
  entry.record.entry.set_offer_attempts(0);
  entry.record.entry.clear_target_agent_id();
  entry.record.entry.clear_target_until();
  entry.record.entry.set_preferred_agent_id("");
  ToTimestamp(now, entry.record.entry.mutable_enqueued_at());
  entry.record.assigned_agent_id.clear();
  entry.record.accepted_offer_id.clear();
  entry.record.accepted_at = absl::InfinitePast();
  entry.record.excluded.clear();
  entry.record.timed_out.clear();
  entry.record.requeued_from = agent_id;
  entry.record.order = queues_.HeadOrder(entry.queue(), entry.record.entry.priority(),
                                         absl::ToUnixMicros(now));
  entry.retry_after = absl::InfinitePast();
  AddToQueue(entry);
  events::v1::Event event;
  auto* requeued = event.mutable_entry_requeued();
  requeued->set_session_id(subject);
  requeued->set_agent_id(agent_id);
  *requeued->mutable_queue() = entry.record.entry.queue();
  requeued->set_priority(entry.record.entry.priority());
  write.events.push_back(Sealed(std::move(event), subject, now));
  metrics_->entries_requeued->Increment();
}

void Router::LapseLocked(const std::string& agent_id, absl::Time now, RoutingWrite& write,
                         OfferBatch& offers) {
  for (auto& [key, owned] : entries_) {
    Entry& entry = *owned;
    if (entry.state() == v1::ENTRY_STATE_OFFERED &&
        entry.record.entry.offered_agent_id() == agent_id && !entry.busy &&
        !entry.record.accepting) {
      // (An accept in progress finishes; CommitAccept then re-queues it.)
      const bool session = entry.session();
      const std::string subject = SubjectOf(entry.record.entry);
      const std::string offer_id = entry.record.offer_id;
      offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now, write, nullptr),
                          true);
      events::v1::Event event;
      auto* withdrawn = event.mutable_offer_withdrawn();
      FillWithdrawn(withdrawn, offer_id, session, subject, agent_id);
      withdrawn->set_agent_unavailable(true);
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(entry.record);
    } else if (entry.state() == v1::ENTRY_STATE_ASSIGNED &&
               entry.record.assigned_agent_id == agent_id) {
      Requeue(entry, now, write);
      write.upserted_entries.push_back(entry.record);
    }
  }
}

absl::Status Router::ResetPresence(const std::vector<Agent>& agents) {
  std::shared_ptr<storage::PendingWrite> pending;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    RoutingWrite write;
    OfferBatch offers;
    std::set<std::string> present;
    for (const Agent& agent : agents) present.insert(agent.agent_id());
    std::set<std::string> gone;
    for (const std::string& id : agents_.Ids()) {
      if (!present.count(id)) gone.insert(id);
    }
    // Agents holding work that presence no longer lists are OFFLINE too
    // (after a restart of routing the view starts empty).
    for (const auto& [key, entry] : entries_) {
      if (entry->state() == v1::ENTRY_STATE_ASSIGNED &&
          !present.count(entry->record.assigned_agent_id)) {
        gone.insert(entry->record.assigned_agent_id);
      }
      if (entry->state() == v1::ENTRY_STATE_OFFERED &&
          !present.count(entry->record.entry.offered_agent_id())) {
        gone.insert(entry->record.entry.offered_agent_id());
      }
    }
    agents_.Clear();
    for (const Agent& agent : agents) {
      if (agent.status() != presence::v1::AGENT_STATUS_OFFLINE) agents_.Upsert(agent);
    }
    presence_live_ = true;
    for (const std::string& id : gone) LapseLocked(id, now, write, offers);
    pending = Commit(std::move(write), std::move(offers));
    WakeLocked();
  }
  return commits_.AwaitInOrder(pending);
}

absl::Status Router::OnAgentChange(const Agent& agent) {
  std::shared_ptr<storage::PendingWrite> pending;
  {
    absl::MutexLock lock(&mu_);
    RoutingWrite write;
    OfferBatch offers;
    SetAgent(agent, clock_->Now(), write, offers);
    pending = Commit(std::move(write), std::move(offers));
    WakeLocked();
  }
  return commits_.AwaitInOrder(pending);
}

// ---- the dispatcher ----

absl::Duration Router::BackoffAfter(int attempts) const {
  return std::min(options_.max_retry_backoff,
                  absl::Milliseconds(250) * (1 << std::min(attempts, 10)));
}

void Router::Backoff(Entry& entry, absl::Time now) {
  entry.retries = std::min(entry.retries + 1, 10);
  entry.retry_after = now + BackoffAfter(entry.retries);
  Unsettle(entry);  // WaitForWork wakes for the retry
}

void Router::RequestReconcile(absl::Time now) {
  // Soon, but not more often than once a second whatever asks for it.
  next_reconcile_ = std::min(next_reconcile_, std::max(now, last_reconcile_ + absl::Seconds(1)));
}

void Router::ExpireDue() {
  std::shared_ptr<storage::PendingWrite> pending;
  ReleaseKeys releases;
  {
    absl::MutexLock lock(&mu_);
    if (commits_.failed()) return;
    const absl::Time now = clock_->Now();
    // Offers that expire now are the pass's again.
    while (!offer_deadlines_.empty() && offer_deadlines_.begin()->first <= now) {
      Unsettle(*entries_.at(offer_deadlines_.begin()->second));
      offer_deadlines_.erase(offer_deadlines_.begin());
    }
    RoutingWrite write;
    OfferBatch offers;
    for (Entry* unsettled : Unsettled()) {
      Entry& entry = *unsettled;
      if (entry.state() == v1::ENTRY_STATE_OFFERED && !entry.busy && !entry.record.accepting &&
          entry.record.offer_expires_at <= now) {
        const bool session = entry.session();
        const std::string subject = SubjectOf(entry.record.entry);
        const std::string agent_id = entry.record.entry.offered_agent_id();
        const std::string offer_id = entry.record.offer_id;
        offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_EXPIRED, now, write, &releases),
                            true);
        if (!Contains(entry.record.timed_out, agent_id)) {
          entry.record.timed_out.push_back(agent_id);
        }
        if (entry.record.entry.target_agent_id() == agent_id) {
          entry.record.entry.clear_target_agent_id();
          entry.record.entry.clear_target_until();
          MoveToHead(entry);
        }
        events::v1::Event event;
        auto* expired = event.mutable_offer_expired();
        expired->set_offer_id(offer_id);
        (session ? expired->mutable_session_id() : expired->mutable_complaint_id())
            ->assign(subject);
        expired->set_agent_id(agent_id);
        ToDuration(options_.offer_timeout, expired->mutable_timeout());
        write.events.push_back(Sealed(std::move(event), subject, now));
        write.upserted_entries.push_back(entry.record);
      } else if (entry.state() == v1::ENTRY_STATE_WAITING &&
                 entry.record.entry.has_target_until() &&
                 protoutil::FromTimestamp(entry.record.entry.target_until()) <= now) {
        // The named agent did not become eligible in time: the queue's head.
        entry.record.entry.clear_target_agent_id();
        entry.record.entry.clear_target_until();
        MoveToHead(entry);
        write.upserted_entries.push_back(entry.record);
      }
    }
    if (write.empty()) return;
    pending = Commit(std::move(write), std::move(offers));
  }
  if (commits_.AwaitInOrder(pending).ok()) ReleaseNow(releases, absl::InfiniteFuture());
}

void Router::DriveIntents() {
  while (true) {
    std::string key, agent_id, offer_id;
    uint64_t wait_id = 0;
    bool automatic = false;
    {
      absl::MutexLock lock(&mu_);
      if (commits_.failed()) return;
      const absl::Time now = clock_->Now();
      for (Entry* entry : Unsettled()) {
        if (entry->state() == v1::ENTRY_STATE_OFFERED && entry->record.accepting &&
            !entry->busy && entry->retry_after <= now) {
          entry->busy = true;
          key = entry->record.key;
          wait_id = entry->wait_id;
          agent_id = entry->record.entry.offered_agent_id();
          offer_id = entry->record.offer_id;
          automatic = entry->record.auto_accept;
          break;
        }
      }
      if (key.empty()) return;
    }
    log::Info("accept_resumed", {{"entry", key}, {"offer_id", offer_id}});
    absl::StatusOr<v1::Assignment> accepted =
        DriveAccept(key, wait_id, agent_id, offer_id, automatic, absl::InfiniteFuture());
    if (!accepted.ok() && absl::IsUnavailable(accepted.status())) return;  // a peer is down
  }
}

void Router::TellSessionsRequeued() {
  while (true) {
    std::string key, session_id, agent_id;
    uint64_t wait_id = 0;
    {
      absl::MutexLock lock(&mu_);
      if (commits_.failed()) return;
      const absl::Time now = clock_->Now();
      for (Entry* entry : Unsettled()) {
        if (!entry->record.requeued_from.empty() && !entry->busy &&
            entry->retry_after <= now) {
          key = entry->record.key;
          wait_id = entry->wait_id;
          session_id = entry->record.entry.session_id();
          agent_id = entry->record.requeued_from;
          entry->busy = true;
          break;
        }
      }
      if (key.empty()) return;
    }
    absl::Status s = sessions_->RequeueSession(session_id, agent_id, absl::InfiniteFuture());
    std::shared_ptr<storage::PendingWrite> pending;
    {
      absl::MutexLock lock(&mu_);
      auto it = entries_.find(key);
      if (it == entries_.end() || it->second->wait_id != wait_id) continue;
      Entry& entry = *it->second;
      entry.busy = false;
      if (s.ok() || IsDecision(s)) {
        // Done, or sessions no longer has it assigned to that agent (closed or
        // resolved meanwhile: its CancelSession follows; offering would fail).
        if (!s.ok()) {
          log::Warning("requeue_refused", {{"session_id", session_id}, {"detail", s.message()}});
        }
        entry.record.requeued_from.clear();
        entry.retries = 0;
        entry.retry_after = absl::InfinitePast();
        RoutingWrite write;
        write.upserted_entries.push_back(entry.record);
        pending = Commit(std::move(write), {});
      } else {
        metrics_->peer_failures->Increment();
        Backoff(entry, clock_->Now());
        return;  // sessions is down: try again later
      }
    }
    if (!commits_.AwaitInOrder(pending).ok()) return;
  }
}

void Router::ReconcileIfDue() {
  int64_t fence = 0;
  std::vector<HeldCapacity> live;
  std::vector<OwedRelease> owed_then;
  {
    absl::MutexLock lock(&mu_);
    if (commits_.failed()) return;
    const absl::Time now = clock_->Now();
    if (now < next_reconcile_) return;
    last_reconcile_ = now;
    // Not again from another pass while this one runs.
    next_reconcile_ = now + options_.reconcile_interval;
    // Every holder id at or below the fence belongs to an offer or an
    // assignment in this view, or to nothing any more; ids still being
    // reserved are above it.
    fence = next_holder_ - 1;
    if (!inflight_holders_.empty()) fence = std::min(fence, *inflight_holders_.begin() - 1);
    for (const auto& [key, entry] : entries_) {
      if (!entry->session()) continue;
      const EntryRecord& r = entry->record;
      if (entry->state() == v1::ENTRY_STATE_OFFERED) {
        live.push_back(HeldCapacity{r.entry.offered_agent_id(), r.entry.session_id(),
                                    r.entry.queue().channel(), r.holder_id, false});
      } else if (entry->state() == v1::ENTRY_STATE_ASSIGNED) {
        live.push_back(HeldCapacity{r.assigned_agent_id, r.entry.session_id(),
                                    r.entry.queue().channel(), r.holder_id, true});
      }
    }
    for (const auto& [key, owed] : owed_) owed_then.push_back(owed.record);
  }
  std::sort(live.begin(), live.end(), [](const HeldCapacity& a, const HeldCapacity& b) {
    return std::tie(a.agent_id, a.session_id) < std::tie(b.agent_id, b.session_id);
  });
  ReconcileReply total;
  absl::Status failure;
  const size_t batch = std::max<size_t>(1, options_.reconcile_batch);
  std::string from;
  for (size_t begin = 0;;) {
    size_t end = std::min(begin + batch, live.size());
    // One agent's reservations stay in one range.
    while (end < live.size() && end > begin && live[end].agent_id == live[end - 1].agent_id) {
      ++end;
    }
    const std::string to = end < live.size() ? live[end].agent_id : "";
    const std::vector<HeldCapacity> chunk(live.begin() + begin, live.begin() + end);
    absl::StatusOr<ReconcileReply> reply =
        presence_->Reconcile(fence, from, to, chunk, absl::InfiniteFuture());
    if (!reply.ok()) {
      failure = reply.status();
      break;
    }
    total.released += reply->released;
    total.restored += reply->restored;
    for (HeldCapacity& missing : reply->missing) total.missing.push_back(std::move(missing));
    if (end >= live.size()) break;
    from = to;
    begin = end;
  }

  std::shared_ptr<storage::PendingWrite> pending;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    if (!failure.ok()) {
      metrics_->reconciliations_failed->Increment();
      metrics_->peer_failures->Increment();
      ++reconcile_failures_;
      next_reconcile_ = now + std::min(options_.reconcile_interval,
                                       BackoffAfter(reconcile_failures_));
      log::Warning("reconcile_failed", {{"detail", failure.message()}});
      return;
    }
    reconcile_failures_ = 0;
    metrics_->reconciliations_ok->Increment();
    metrics_->capacity_reconciled_released->Increment(total.released);
    metrics_->capacity_reconciled_restored->Increment(total.restored);
    if (total.released > 0 || total.restored > 0 || !total.missing.empty()) {
      log::Warning("capacity_reconciled", {{"released", total.released},
                                           {"restored", total.restored},
                                           {"missing_offers",
                                            static_cast<int64_t>(total.missing.size())},
                                           {"fence", fence}});
    }
    RoutingWrite write;
    OfferBatch offers;
    // Presence now holds nothing for these: whatever they owed is settled.
    for (const OwedRelease& release : owed_then) {
      auto it = owed_.find({release.agent_id, release.session_id});
      if (it != owed_.end() && !it->second.inflight &&
          it->second.record.holder_id <= release.holder_id) {
        owed_.erase(it);
        write.settled_releases.push_back(release);
      }
    }
    // Offers whose capacity presence no longer holds cannot be accepted:
    // they are withdrawn and the entry goes to the next agent.
    for (const HeldCapacity& missing : total.missing) {
      auto it = entries_.find(EntryKey(v1::ENTRY_KIND_SESSION, missing.session_id));
      if (it == entries_.end()) continue;
      Entry& entry = *it->second;
      if (entry.state() != v1::ENTRY_STATE_OFFERED || entry.busy || entry.record.accepting ||
          entry.record.entry.offered_agent_id() != missing.agent_id ||
          entry.record.holder_id != missing.holder_id) {
        continue;
      }
      const std::string offer_id = entry.record.offer_id;
      offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now, write, nullptr),
                          true);
      events::v1::Event event;
      FillWithdrawn(event.mutable_offer_withdrawn(), offer_id, true, missing.session_id,
                    missing.agent_id);
      write.events.push_back(Sealed(std::move(event), missing.session_id, now));
      write.upserted_entries.push_back(entry.record);
    }
    // A restore may have raced a release: check again soon.
    next_reconcile_ = total.restored > 0 ? now + absl::Seconds(1)
                                         : now + options_.reconcile_interval;
    pending = Commit(std::move(write), std::move(offers));
    WakeLocked();
  }
  commits_.AwaitInOrder(pending).IgnoreError();
}

void Router::PruneClosedOffers() {
  absl::MutexLock lock(&mu_);
  if (commits_.failed()) return;
  const absl::Time now = clock_->Now();
  if (now < next_prune_) return;
  next_prune_ = now + kPruneInterval;
  const absl::Time cutoff = now - options_.closed_offer_retention;
  for (auto it = closed_cache_.begin(); it != closed_cache_.end();) {
    if (it->closed_at < cutoff) {
      closed_index_.erase(it->offer_id);
      it = closed_cache_.erase(it);
    } else {
      ++it;
    }
  }
  RoutingWrite write;
  write.prune_closed_offers_before = cutoff;
  write.prune_closed_offers_limit = kPruneLimit;
  Commit(std::move(write), {});
}

std::vector<std::string> Router::Candidates(const Entry& entry) const {
  const EntryRecord& r = entry.record;
  OfferRules rules{r.entry.target_agent_id(), r.entry.preferred_agent_id(), r.excluded,
                   r.timed_out};
  if (entry.session()) return agents_.SessionCandidates(entry.queue(), rules);
  // One open complaint offer per supervisor at a time.
  std::set<std::string> offering;
  for (const auto& [offer_id, key] : offers_) {
    const Entry& other = *entries_.at(key);
    if (other.state() == v1::ENTRY_STATE_OFFERED && !other.session()) {
      offering.insert(other.record.entry.offered_agent_id());
    }
  }
  return ComplaintCandidates(watching_supervisors_, agents_, offering, last_complaint_accept_,
                             rules);
}

bool Router::PickNext(absl::Time now, std::string* key, uint64_t* wait_id,
                      std::vector<std::string>* candidates) {
  std::map<std::string, std::vector<std::string>> found;
  std::optional<QueueOrder::Slot> picked = queues_.Pick(
      // Pick calls both filters before it returns, on this thread, with mu_
      // still held.
      [&](const QueueId& queue) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        // A session queue no agent could serve right now, or closed, is
        // not walked: its entries keep their places until it opens.
        return queue.kind == v1::ENTRY_KIND_COMPLAINT ||
               (agents_.AnyAvailable(queue) && Open(queue, now));
      },
      [&](const QueueOrder::Slot& slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        const Entry& entry = *entries_.at(slot.key);
        if (entry.state() != v1::ENTRY_STATE_WAITING || entry.busy ||
            !entry.record.requeued_from.empty() || entry.retry_after > now) {
          return false;
        }
        std::vector<std::string> ranked = Candidates(entry);
        if (ranked.empty()) return false;
        found[slot.key] = std::move(ranked);
        return true;
      });
  if (!picked.has_value()) return false;
  Entry& entry = *entries_.at(picked->key);
  entry.busy = true;
  Unsettle(entry);
  *key = entry.record.key;
  *wait_id = entry.wait_id;
  *candidates = std::move(found[picked->key]);
  // Until this offer is decided the agent takes no other (AgentPool::Claim):
  // the entries behind go to the next agents in line, and one agent's
  // offers are made in queue order.
  if (entry.session()) agents_.Claim(candidates->front(), entry.record.entry.queue().channel());
  return true;
}

bool Router::DecideOffer(const std::string& key, uint64_t wait_id,
                         const std::vector<std::string>& candidates,
                         DecidedOffer* decided) {
  const bool session = absl::StartsWith(key, "session:");
  const std::string subject = key.substr(key.find(':') + 1);
  Channel channel;
  int64_t holder = 0;
  {
    absl::MutexLock lock(&mu_);
    Entry& entry = *entries_.at(key);
    channel = entry.record.entry.queue().channel();
    if (session) {
      absl::StatusOr<int64_t> issued = IssueHolder();
      if (!issued.ok()) {
        agents_.Unclaim(candidates.front(), channel);
        entry.busy = false;
        Backoff(entry, clock_->Now());
        log::Warning("offer_not_made", {{"entry", key}, {"detail", issued.status().message()}});
        return false;
      }
      holder = *issued;
      inflight_holders_.insert(holder);
    }
  }
  const std::string offer_id = events::RandomUuid();
  const absl::Duration hold = options_.offer_timeout + options_.hold_margin;
  std::string chosen;
  absl::Status failure;  // a refusal that is not about one agent
  for (size_t i = 0; i < candidates.size(); ++i) {
    const std::string& agent_id = candidates[i];
    if (!session) {
      chosen = agent_id;
      break;
    }
    if (i > 0) {  // PickNext claimed the first
      absl::MutexLock lock(&mu_);
      if (!agents_.HasRoom(agent_id, channel)) continue;  // claimed meanwhile
      agents_.Claim(agent_id, channel);
    }
    absl::Status reserved =
        presence_->Reserve(agent_id, subject, channel, hold, holder, absl::InfiniteFuture());
    if (reserved.ok()) {
      // The claim stays until the offer is decided: by then presence has
      // reported the agent's new load.
      chosen = agent_id;
      break;
    }
    absl::MutexLock lock(&mu_);
    agents_.Unclaim(agent_id, channel);
    if (absl::IsResourceExhausted(reserved) || absl::IsFailedPrecondition(reserved) ||
        absl::IsNotFound(reserved)) {
      metrics_->reservations_refused->Increment();
      // Routing's view was stale: presence's load is the truth.
      agents_.MarkFull(agent_id, channel);
      continue;
    }
    if (absl::IsAlreadyExists(reserved)) {
      // Presence holds capacity for this waiting session that no offer or
      // assignment of routing's holds (a crash or a lost release left it):
      // a reconciliation frees it.
      RequestReconcile(clock_->Now());
    }
    failure = reserved;  // ALREADY_EXISTS (held elsewhere) or presence down
    break;
  }
  if (!chosen.empty() && session) fault::Point("routing.after_reserve");

  const absl::Time expires_at = clock_->Now() + options_.offer_timeout;
  bool give_back = false;
  if (!chosen.empty() && session) {
    absl::Status recorded =
        sessions_->RecordOffer(subject, chosen, offer_id, expires_at, absl::InfiniteFuture());
    if (recorded.ok()) {
      fault::Point("routing.after_record_offer");
    } else {
      failure = recorded;
      give_back = true;
    }
  }

  DecidedOffer& offer = *decided;
  offer.key = key;
  offer.wait_id = wait_id;
  offer.agent_id = chosen;
  offer.offer_id = offer_id;
  bool keep_going = true;
  {
    absl::MutexLock lock(&mu_);
    if (session) inflight_holders_.erase(inflight_holders_.find(holder));
    if (session && !chosen.empty()) agents_.Unclaim(chosen, channel);
    const absl::Time now = clock_->Now();
    auto it = entries_.find(key);
    const bool gone = it == entries_.end() || it->second->wait_id != wait_id;
    RoutingWrite write;
    OfferBatch offers;
    if (session && !chosen.empty() && (gone || give_back)) {
      // Reserved for an offer that is not made (cancelled meanwhile, or
      // sessions refused it): the capacity goes back.
      Owe(chosen, subject, holder, now, write, &offer.releases);
    }
    if (gone) {
      // Cancelled while we reserved.
    } else if (chosen.empty() && failure.ok()) {
      // Every candidate was full at presence (now marked so) or taken by an
      // offer decided meanwhile: the entry waits for the next free agent,
      // in its place, without a back-off.
      it->second->busy = false;
    } else if (chosen.empty() || give_back) {
      Entry& entry = *it->second;
      entry.busy = false;
      if (!failure.ok()) {
        if (!IsDecision(failure)) {
          metrics_->peer_failures->Increment();
          keep_going = false;
        }
        log::Warning("offer_not_made", {{"entry", key}, {"detail", failure.message()}});
      }
      // Nobody could take it now (or a peer said wait): try again later.
      Backoff(entry, now);
    } else {
      Entry& entry = *it->second;
      entry.retries = 0;
      entry.retry_after = absl::InfinitePast();
      EntryRecord& r = entry.record;
      const bool auto_accept = session && settings_.count(chosen) &&
                               settings_.at(chosen).settings.auto_accept();
      offer.auto_accept = auto_accept;
      r.entry.set_state(v1::ENTRY_STATE_OFFERED);
      MarkOffered(entry);
      r.entry.set_offered_agent_id(chosen);
      r.entry.set_offer_attempts(r.entry.offer_attempts() + 1);
      r.offer_id = offer_id;
      r.offered_at = now;
      r.offer_expires_at = expires_at;
      r.auto_accept = auto_accept;
      r.holder_id = holder;
      // An auto-accepted offer carries its accept intent from the start.
      r.accepting = auto_accept;
      entry.busy = auto_accept;
      offers_[offer_id] = key;
      const absl::Time enqueued_at = protoutil::FromTimestamp(r.entry.enqueued_at());
      const QueueId queue = entry.queue();
      if (r.entry.offer_attempts() == 1) {
        metrics_->offer_latency(queue.channel, queue.category)
            .Observe(absl::ToDoubleSeconds(now - enqueued_at));
      }
      metrics_->offers_made->Increment();
      events::v1::Event event;
      auto* offer_made = event.mutable_offer_made();
      offer_made->set_offer_id(offer_id);
      offer_made->set_kind(r.entry.kind());
      (session ? offer_made->mutable_session_id() : offer_made->mutable_complaint_id())
          ->assign(subject);
      offer_made->set_agent_id(chosen);
      *offer_made->mutable_queue() = r.entry.queue();
      ToTimestamp(expires_at, offer_made->mutable_expires_at());
      offer_made->set_attempt(r.entry.offer_attempts());
      offer_made->set_auto_accept(auto_accept);
      ToDuration(now - enqueued_at, offer_made->mutable_waited());
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(r);
      // Auto-accepted offers reach the agent already accepted.
      if (!auto_accept) offers.emplace_back(OfferOf(entry), false);
      offer.made = true;
    }
    offer.pending = Commit(std::move(write), std::move(offers));
  }
  return keep_going;
}

bool Router::SettleOffer(DecidedOffer& offer) {
  if (offer.releases.empty() && !offer.auto_accept) {
    // Nothing follows the commit: the decider need not park until it is
    // durable (MakeOffers awaits the pass's commits once, at its end).
    if (offer.made) {
      commits_.Then(offer.pending, [](const absl::Status& committed) {
        if (committed.ok()) fault::Point("routing.after_offer_commit");
      });
    }
    return true;
  }
  if (!commits_.AwaitInOrder(offer.pending).ok()) return false;
  ReleaseNow(offer.releases, absl::InfiniteFuture());
  if (!offer.made) return true;
  fault::Point("routing.after_offer_commit");
  if (!offer.auto_accept) return true;
  fault::Point("routing.after_accept_intent");
  absl::StatusOr<v1::Assignment> accepted =
      DriveAccept(offer.key, offer.wait_id, offer.agent_id, offer.offer_id,
                  /*automatic=*/true, absl::InfiniteFuture());
  if (accepted.ok()) {
    // Tell the agent's devices: the offer arrives already accepted.
    absl::MutexLock lock(&mu_);
    if (const ClosedOfferRecord* closed = Recall(offer.offer_id); closed != nullptr) {
      v1::Offer accepted_offer = closed->offer;
      accepted_offer.set_auto_accepted(true);
      Publish({{accepted_offer, false}});
    }
    return true;
  }
  log::Warning("auto_accept_failed",
               {{"entry", offer.key}, {"detail", accepted.status().message()}});
  return !absl::IsUnavailable(accepted.status());
}

void Router::RefreshGauges() {
  {
    absl::MutexLock lock(&gauges_mu_);
    const absl::Time now = clock_->Now();
    gauges_due_ = now - gauges_refreshed_ < options_.gauge_interval;
    if (gauges_due_) return;
    gauges_refreshed_ = now;
  }
  const std::vector<v1::QueueStats> stats = Stats(Filter());
  std::set<QueueId> seen;
  for (const v1::QueueStats& s : stats) {
    const QueueId queue{s.queue().kind(), s.queue().channel(), s.queue().category(),
                        s.queue().language()};
    seen.insert(queue);
    RoutingMetrics::QueueGauges& gauges = metrics_->ForQueue(queue);
    gauges.depth->Set(s.depth());
    gauges.oldest_wait_seconds->Set(
        absl::ToDoubleSeconds(protoutil::FromDuration(s.oldest_wait())));
    gauges.eligible_agents->Set(s.eligible_agents());
    gauges.available_agents->Set(s.available_agents());
    gauges.open->Set(s.hours().open() ? 1 : 0);
  }
  {
    absl::MutexLock lock(&gauges_mu_);
    // A queue that left the statistics (no entry, and its last agent went
    // offline) reads zero, not its last values; only so many such queues
    // keep a series.
    idle_gauges_.remove_if([&](const QueueId& queue) { return seen.count(queue) > 0; });
    for (const QueueId& queue : gauged_) {
      if (seen.count(queue)) continue;
      RoutingMetrics::QueueGauges& gauges = metrics_->ForQueue(queue);
      gauges.depth->Set(0);
      gauges.oldest_wait_seconds->Set(0);
      gauges.eligible_agents->Set(0);
      gauges.available_agents->Set(0);
      gauges.open->Set(Open(queue, clock_->Now()) ? 1 : 0);
      idle_gauges_.push_front(queue);
    }
    while (idle_gauges_.size() > options_.idle_queue_gauges_kept) {
      metrics_->Forget(idle_gauges_.back());
      idle_gauges_.pop_back();
    }
    gauged_.swap(seen);
  }
  absl::MutexLock lock(&mu_);
  metrics_->releases_owed->Set(static_cast<double>(owed_.size()));
  int accepting = 0;
  for (const Entry* entry : Unsettled()) accepting += entry->record.accepting;
  metrics_->accepts_in_progress->Set(accepting);
}

Dispatcher::Dispatcher(Router* router, absl::Duration idle)
    : router_(router), thread_([this, idle] {
        while (!stop_) {
          router_->RunOnce();
          if (stop_) break;
          router_->WaitForWork(idle);
        }
      }) {}

Dispatcher::~Dispatcher() { Stop(); }

void Dispatcher::Stop() {
  stop_ = true;
  router_->StopMakingOffers();
  router_->Wake();
  if (thread_.joinable()) thread_.join();
}

void Router::RunOnce() {
  DriveIntents();
  RetryOwedReleases();
  TellSessionsRequeued();
  ReconcileIfDue();
  ExpireDue();
  PruneClosedOffers();
  MakeOffers();
  RefreshGauges();
}

void Router::MakeOffers() {
  // Each session offer waits on two durable writes at the peers (presence's
  // reservation, sessions' record of the offer): decided one at a time they
  // would cap routing at a few dozen offers a second, so up to
  // `concurrent_offers` are decided at once and the peers' group commits
  // carry them together. Picking stays on this thread, in queue order.
  struct InFlight {
    absl::Mutex mu;
    int deciding ABSL_GUARDED_BY(mu) = 0;
    // Decisions finished so far: an agent they held may take the next entry.
    int finished ABSL_GUARDED_BY(mu) = 0;
    bool stop ABSL_GUARDED_BY(mu) = false;
  } in_flight;
  const int limit = options_.concurrent_offers;
  for (int made = 0; made < kMaxOffersPerPass; ++made) {
    int finished_before = 0;
    {
      absl::MutexLock lock(&in_flight.mu);
      auto room = [&]() ABSL_SHARED_LOCKS_REQUIRED(in_flight.mu) {
        return in_flight.deciding < limit || in_flight.stop;
      };
      in_flight.mu.Await(absl::Condition(&room));
      if (in_flight.stop || offers_stopped_) break;
      finished_before = in_flight.finished;
    }
    std::string key;
    uint64_t wait_id = 0;
    std::vector<std::string> candidates;
    bool picked = false;
    {
      absl::MutexLock lock(&mu_);
      if (commits_.failed()) break;
      picked = PickNext(clock_->Now(), &key, &wait_id, &candidates);
    }
    if (!picked) {
      // Nothing to offer now; a decision still running may free an agent
      // (claimed, or refused and so given back).
      absl::MutexLock lock(&in_flight.mu);
      if (in_flight.deciding == 0 && in_flight.finished == finished_before) break;
      auto progressed = [&]() ABSL_SHARED_LOCKS_REQUIRED(in_flight.mu) {
        return in_flight.finished != finished_before;
      };
      in_flight.mu.Await(absl::Condition(&progressed));
      --made;
      continue;
    }
    auto decide = [this, &in_flight, key, wait_id, candidates = std::move(candidates)] {
      DecidedOffer offer;
      // The commits of decisions made at once share the store's group
      // commits; a decision awaits its own only when something follows it
      // (owed releases, an auto-accept).
      const bool decided = DecideOffer(key, wait_id, candidates, &offer);
      const bool keep_going = SettleOffer(offer) && decided;
      absl::MutexLock lock(&in_flight.mu);
      --in_flight.deciding;
      ++in_flight.finished;
      if (!keep_going) in_flight.stop = true;
    };
    {
      absl::MutexLock lock(&in_flight.mu);
      ++in_flight.deciding;
    }
    if (absl::StartsWith(key, "session:")) {
      deciders_.Run(std::move(decide));
    } else {
      // A complaint offer asks no peer; deciding it here keeps two from
      // going to one supervisor (Candidates counts only decided offers).
      decide();
    }
  }
  {
    absl::MutexLock lock(&in_flight.mu);
    auto idle = [&]() ABSL_SHARED_LOCKS_REQUIRED(in_flight.mu) {
      return in_flight.deciding == 0;
    };
    in_flight.mu.Await(absl::Condition(&idle));
  }
  // The pass ends with its offers durable (commits complete in order; a
  // failure has been logged and stops the next pass).
  commits_.AwaitInOrder(commits_.Newest()).IgnoreError();
}

}  // namespace switchboard::routing
