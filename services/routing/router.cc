#include "services/routing/router.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::routing {
namespace {

using common::v1::Category;
using common::v1::Channel;
using presence::v1::Agent;
using protoutil::ToDuration;
using protoutil::ToTimestamp;
using OfferBatch = std::vector<std::pair<v1::Offer, bool>>;
using Releases = std::vector<std::pair<std::string, std::string>>;

constexpr char kProducer[] = "routing";
constexpr size_t kMaxNote = 1000;
// Offers made in one pass before the gauges are refreshed and the pass ends.
constexpr int kMaxOffersPerPass = 1000;

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

}  // namespace

std::string PrimaryLanguage(absl::string_view tag) {
  return absl::AsciiStrToLower(tag.substr(0, tag.find('-')));
}

struct Router::Pending {
  absl::Notification done;
  absl::Status status;
};

struct Router::Entry {
  EntryRecord record;
  // Changes whenever the entry is created anew, so that a busy caller can
  // tell that the entry it worked on was cancelled (and maybe re-queued).
  uint64_t wait_id = 0;
  // An offer or an accept is in progress outside the lock.
  bool busy = false;
  // Not offered before this (a peer refused for a reason that may pass).
  absl::Time retry_after = absl::InfinitePast();
  int retries = 0;
  bool in_queue = false;
  QueueOrder queued_as;

  v1::EntryState state() const { return record.entry.state(); }
  QueueId queue() const { return QueueOf(record.entry); }
};

Router::Router(RoutingStore* store, PresencePort* presence, SessionsPort* sessions,
               Clock* clock, RoutingMetrics* metrics, RouterOptions options)
    : store_(store),
      presence_(presence),
      sessions_(sessions),
      clock_(clock),
      metrics_(metrics),
      options_(options) {}

Router::~Router() = default;

absl::Status Router::Load() {
  absl::StatusOr<RoutingStore::Contents> contents = store_->Load();
  if (!contents.ok()) return contents.status();
  absl::MutexLock lock(&mu_);
  for (EntryRecord& record : contents->entries) {
    auto entry = std::make_unique<Entry>();
    entry->wait_id = next_wait_id_++;
    entry->record = std::move(record);
    Entry& e = *entry;
    const std::string key = e.record.key;
    entries_[key] = std::move(entry);
    if (e.state() == v1::ENTRY_STATE_ASSIGNED) {
      if (!e.record.accepted_offer_id.empty()) offers_[e.record.accepted_offer_id] = key;
      continue;
    }
    if (e.state() == v1::ENTRY_STATE_OFFERED) offers_[e.record.offer_id] = key;
    AddToQueue(e);
  }
  for (SettingsRecord& r : contents->settings) settings_[r.agent_id] = std::move(r);
  return absl::OkStatus();
}

absl::Status Router::CheckWritable() const {
  if (store_failed_) {
    return absl::UnavailableError("routing storage failed; the service must be restarted");
  }
  return absl::OkStatus();
}

std::shared_ptr<Router::Pending> Router::Commit(RoutingWrite write, OfferBatch offers) {
  auto pending = std::make_shared<Pending>();
  if (write.empty()) {
    Publish(offers);
    pending->done.Notify();
    return pending;
  }
  store_->Apply(std::move(write),
                [this, pending, offers = std::move(offers)](absl::Status status) {
                  if (status.ok()) {
                    Publish(offers);
                  } else {
                    log::Error("routing_commit_failed", {{"detail", status.message()}});
                    store_failed_ = true;
                  }
                  pending->status = status;
                  pending->done.Notify();
                });
  return pending;
}

absl::Status Router::Wait(const std::shared_ptr<Pending>& pending) {
  pending->done.WaitForNotification();
  if (!pending->status.ok()) {
    return absl::UnavailableError("routing storage failed");
  }
  return absl::OkStatus();
}

void Router::Publish(const OfferBatch& offers) {
  absl::MutexLock lock(&listeners_mu_);
  for (const auto& [offer, closed] : offers) {
    auto [begin, end] = listeners_.equal_range(offer.agent_id());
    for (auto it = begin; it != end; ++it) it->second->OnOffer(offer, closed);
  }
}

void Router::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
  work_.SignalAll();
}

void Router::WaitForWork(absl::Duration max) {
  absl::MutexLock lock(&mu_);
  absl::Duration wait = max;
  const absl::Time now = clock_->Now();
  for (const auto& [key, entry] : entries_) {
    if (entry->state() == v1::ENTRY_STATE_OFFERED) {
      wait = std::min(wait, entry->record.offer_expires_at - now);
    } else if (entry->state() == v1::ENTRY_STATE_WAITING &&
               entry->retry_after != absl::InfinitePast()) {
      wait = std::min(wait, entry->retry_after - now);
    }
  }
  if (!woken_ && wait > absl::ZeroDuration()) {
    work_.WaitWithTimeout(&mu_, wait);
  }
  woken_ = false;
}

// ---- queue bookkeeping ----

void Router::AddToQueue(Entry& entry) {
  if (entry.in_queue) return;
  entry.queued_as = QueueOrder(-static_cast<int>(entry.record.entry.priority()),
                               entry.record.order, entry.record.key);
  queues_[entry.queue()].insert(entry.queued_as);
  entry.in_queue = true;
}

void Router::RemoveFromQueue(Entry& entry) {
  if (!entry.in_queue) return;
  queues_[entry.queue()].erase(entry.queued_as);
  entry.in_queue = false;
}

int64_t Router::HeadOrder(const QueueId& queue, v1::Priority priority,
                          int64_t fallback) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return fallback;
  auto first = it->second.lower_bound(
      QueueOrder(-static_cast<int>(priority), INT64_MIN, std::string()));
  if (first == it->second.end() || std::get<0>(*first) != -static_cast<int>(priority)) {
    return fallback;
  }
  return std::min(fallback, std::get<1>(*first) - 1);
}

void Router::MoveToHead(Entry& entry) {
  const bool was_queued = entry.in_queue;
  RemoveFromQueue(entry);
  entry.record.order = HeadOrder(entry.queue(), entry.record.entry.priority(),
                                 entry.record.order);
  if (was_queued) AddToQueue(entry);
}

int Router::PositionOf(const Entry& entry) const {
  if (!entry.in_queue) return 0;
  auto it = queues_.find(entry.queue());
  if (it == queues_.end()) return 0;
  return static_cast<int>(std::distance(it->second.begin(), it->second.find(entry.queued_as))) +
         1;
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

v1::Offer Router::CloseOffer(Entry& entry, v1::OfferOutcome outcome, absl::Time now) {
  v1::Offer offer = OfferOf(entry);
  offer.set_outcome(outcome);
  offer.set_auto_accepted(outcome == v1::OFFER_OUTCOME_ACCEPTED && entry.record.auto_accept);
  ToTimestamp(now, offer.mutable_closed_at());
  offers_.erase(entry.record.offer_id);
  ClosedOffer closed{offer.agent_id(), offer, std::nullopt};
  if (outcome != v1::OFFER_OUTCOME_ACCEPTED) Remember(std::move(closed));
  entry.record.entry.set_state(v1::ENTRY_STATE_WAITING);
  entry.record.entry.clear_offered_agent_id();
  entry.record.offer_id.clear();
  entry.record.offered_at = absl::InfinitePast();
  entry.record.offer_expires_at = absl::InfinitePast();
  entry.record.auto_accept = false;
  switch (outcome) {
    case v1::OFFER_OUTCOME_DECLINED: metrics_->offers_declined->Increment(); break;
    case v1::OFFER_OUTCOME_EXPIRED: metrics_->offers_expired->Increment(); break;
    case v1::OFFER_OUTCOME_WITHDRAWN: metrics_->offers_withdrawn->Increment(); break;
    default: break;
  }
  return offer;
}

void Router::Remember(ClosedOffer closed) {
  const std::string id = closed.offer.offer_id();
  if (closed_offers_.insert_or_assign(id, std::move(closed)).second) {
    closed_order_.push_back(id);
  }
  while (closed_order_.size() > options_.closed_offers_kept) {
    closed_offers_.erase(closed_order_.front());
    closed_order_.pop_front();
  }
}

void Router::Drop(Entry& entry, v1::CancelReason reason, absl::Time now, RoutingWrite& write,
                  OfferBatch& offers, Releases& releases) {
  const v1::EntryState previous = entry.state();
  const bool session = entry.record.entry.kind() == v1::ENTRY_KIND_SESSION;
  const std::string subject = SubjectOf(entry.record.entry);
  std::string agent_id;
  if (previous == v1::ENTRY_STATE_OFFERED) {
    agent_id = entry.record.entry.offered_agent_id();
    const std::string offer_id = entry.record.offer_id;
    offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now), true);
    events::v1::Event event;
    auto* withdrawn = event.mutable_offer_withdrawn();
    withdrawn->set_offer_id(offer_id);
    (session ? withdrawn->mutable_session_id() : withdrawn->mutable_complaint_id())
        ->assign(subject);
    withdrawn->set_agent_id(agent_id);
    write.events.push_back(Sealed(std::move(event), subject, now));
  } else if (previous == v1::ENTRY_STATE_ASSIGNED) {
    agent_id = entry.record.assigned_agent_id;
    offers_.erase(entry.record.accepted_offer_id);
  }
  if (session && !agent_id.empty()) releases.emplace_back(agent_id, subject);

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
  entries_.erase(entry.record.key);  // destroys `entry`
}

// ---- commands ----

absl::StatusOr<Router::EnqueueResult> Router::EnqueueSession(
    const EnqueueSessionCommand& c) {
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

  std::shared_ptr<Pending> pending;
  EnqueueResult result;
  Releases releases;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    const std::string key = EntryKey(v1::ENTRY_KIND_SESSION, c.session_id);
    RoutingWrite write;
    OfferBatch offers;
    if (auto it = entries_.find(key); it != entries_.end()) {
      Entry& existing = *it->second;
      if (existing.state() != v1::ENTRY_STATE_ASSIGNED) {
        result.entry = existing.record.entry;
        result.entry.set_position(PositionOf(existing));
        result.replayed = true;
        return result;
      }
      // A transfer: the assignment ends, its capacity is released.
      releases.emplace_back(existing.record.assigned_agent_id, c.session_id);
      offers_.erase(existing.record.accepted_offer_id);
      entries_.erase(it);
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
    ToTimestamp(c.first_response_due_at, e.mutable_first_response_due_at());
    if (!c.target_agent_id.empty()) {
      e.set_target_agent_id(c.target_agent_id);
      ToTimestamp(now + options_.offer_timeout, e.mutable_target_until());
    }
    e.set_preferred_agent_id(c.preferred_agent_id);
    if (c.handoff.has_value()) *e.mutable_handoff() = *c.handoff;
    e.set_transfer_note(c.transfer_note);
    if (!c.excluded_agent_id.empty()) r.excluded.push_back(c.excluded_agent_id);
    r.order = absl::ToUnixMicros(now);
    if (c.at_head) r.order = HeadOrder(queue, priority, r.order);
    Entry& added = *entry;
    entries_[key] = std::move(entry);
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
    enqueued->set_queue_depth(static_cast<int>(queues_[queue].size()));
    *enqueued->mutable_first_response_due_at() = e.first_response_due_at();
    write.events.push_back(Sealed(std::move(event), c.session_id, now));
    write.upserted_entries.push_back(r);
    metrics_->entries_enqueued->Increment();
    result.entry = e;
    result.entry.set_position(PositionOf(added));
    pending = Commit(std::move(write), std::move(offers));
    woken_ = true;
    work_.SignalAll();
  }
  absl::Status s = Wait(pending);
  ReleaseAll(std::move(releases));
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

  std::shared_ptr<Pending> pending;
  EnqueueResult result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    const std::string key = EntryKey(v1::ENTRY_KIND_COMPLAINT, c.complaint_id);
    if (auto it = entries_.find(key); it != entries_.end()) {
      result.entry = it->second->record.entry;
      result.entry.set_position(PositionOf(*it->second));
      result.replayed = true;
      return result;
    }
    auto entry = std::make_unique<Entry>();
    entry->wait_id = next_wait_id_++;
    EntryRecord& r = entry->record;
    r.key = key;
    v1::QueueEntry& e = r.entry;
    e.set_kind(v1::ENTRY_KIND_COMPLAINT);
    e.set_complaint_id(c.complaint_id);
    e.set_session_id(c.session_id);
    e.set_customer_id(c.customer_id);
    const QueueId queue{v1::ENTRY_KIND_COMPLAINT, common::v1::CHANNEL_UNSPECIFIED, c.category,
                        ""};
    ToProto(queue, e.mutable_queue());
    e.set_priority(priority);
    e.set_reason(v1::ENQUEUE_REASON_COMPLAINT);
    e.set_state(v1::ENTRY_STATE_WAITING);
    ToTimestamp(now, e.mutable_enqueued_at());
    r.order = absl::ToUnixMicros(now);
    Entry& added = *entry;
    entries_[key] = std::move(entry);
    AddToQueue(added);

    RoutingWrite write;
    events::v1::Event event;
    auto* enqueued = event.mutable_entry_enqueued();
    enqueued->set_kind(v1::ENTRY_KIND_COMPLAINT);
    enqueued->set_complaint_id(c.complaint_id);
    *enqueued->mutable_queue() = e.queue();
    enqueued->set_priority(priority);
    enqueued->set_reason(v1::ENQUEUE_REASON_COMPLAINT);
    enqueued->set_queue_depth(static_cast<int>(queues_[queue].size()));
    write.events.push_back(Sealed(std::move(event), c.complaint_id, now));
    write.upserted_entries.push_back(r);
    metrics_->entries_enqueued->Increment();
    result.entry = e;
    result.entry.set_position(PositionOf(added));
    pending = Commit(std::move(write), {});
    woken_ = true;
    work_.SignalAll();
  }
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<bool> Router::Cancel(v1::EntryKind kind, const std::string& id,
                                    v1::CancelReason reason) {
  const char* field = kind == v1::ENTRY_KIND_COMPLAINT ? "complaint_id" : "session_id";
  if (absl::Status s = validation::ValidateId(field, id); !s.ok()) return s;
  if (!v1::CancelReason_IsValid(reason)) {
    return absl::InvalidArgumentError(absl::StrCat("reason: unknown reason ", reason));
  }
  if (reason == v1::CANCEL_REASON_UNSPECIFIED) {
    reason = kind == v1::ENTRY_KIND_COMPLAINT ? v1::CANCEL_REASON_COMPLAINT_HANDLED
                                              : v1::CANCEL_REASON_OTHER;
  }
  std::shared_ptr<Pending> pending;
  Releases releases;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    auto it = entries_.find(EntryKey(kind, id));
    if (it == entries_.end()) return false;
    RoutingWrite write;
    OfferBatch offers;
    // A busy entry is dropped too: whoever is busy with it notices (the
    // wait id is gone) and releases what they reserved.
    Drop(*it->second, reason, clock_->Now(), write, offers, releases);
    pending = Commit(std::move(write), std::move(offers));
  }
  absl::Status s = Wait(pending);
  ReleaseAll(std::move(releases));
  if (!s.ok()) return s;
  return true;
}

absl::StatusOr<v1::Assignment> Router::AcceptOffer(const std::string& agent_id,
                                                   const std::string& offer_id) {
  if (absl::Status s = validation::ValidateId("offer_id", offer_id, 64); !s.ok()) return s;
  std::string key;
  uint64_t wait_id = 0;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    auto open = offers_.find(offer_id);
    if (open == offers_.end()) {
      auto closed = closed_offers_.find(offer_id);
      if (closed == closed_offers_.end() || closed->second.agent_id != agent_id) {
        return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
      }
      if (closed->second.assignment.has_value()) return *closed->second.assignment;
      return absl::FailedPreconditionError(
          absl::StrCat("offer_id: the offer is ",
                       v1::OfferOutcome_Name(closed->second.offer.outcome())
                           .substr(sizeof("OFFER_OUTCOME_") - 1)));
    }
    Entry& entry = *entries_.at(open->second);
    if (entry.state() == v1::ENTRY_STATE_ASSIGNED) {
      if (entry.record.assigned_agent_id != agent_id) {
        return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
      }
      v1::Assignment assignment;
      assignment.set_offer_id(offer_id);
      assignment.set_agent_id(agent_id);
      assignment.set_session_id(entry.record.entry.session_id());
      ToTimestamp(entry.record.accepted_at, assignment.mutable_accepted_at());
      ToDuration(entry.record.accepted_at -
                     protoutil::FromTimestamp(entry.record.entry.enqueued_at()),
                 assignment.mutable_queue_wait());
      return assignment;
    }
    if (entry.record.entry.offered_agent_id() != agent_id) {
      return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
    }
    if (clock_->Now() >= entry.record.offer_expires_at) {
      return absl::FailedPreconditionError("offer_id: the offer expired");
    }
    if (entry.busy) {
      return absl::UnavailableError("the offer is being accepted; retry");
    }
    entry.busy = true;
    key = entry.record.key;
    wait_id = entry.wait_id;
  }
  return FinishAccept(key, wait_id, agent_id, offer_id, /*automatic=*/false);
}

absl::StatusOr<v1::Assignment> Router::FinishAccept(const std::string& key, uint64_t wait_id,
                                                    const std::string& agent_id,
                                                    const std::string& offer_id,
                                                    bool automatic) {
  const bool session = absl::StartsWith(key, "session:");
  const std::string subject = key.substr(key.find(':') + 1);
  auto unbusy = [&](absl::Status status) -> absl::Status {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second->wait_id == wait_id) it->second->busy = false;
    return status;
  };
  std::string display_name;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = agents_.find(agent_id); it != agents_.end()) {
      display_name = it->second.profile().display_name();
    }
  }
  if (session) {
    absl::Status confirmed = presence_->Confirm(agent_id, subject);
    if (absl::IsNotFound(confirmed)) {
      // The reservation lapsed in presence: the offer cannot stand.
      Releases releases;
      std::shared_ptr<Pending> pending;
      {
        absl::MutexLock lock(&mu_);
        auto it = entries_.find(key);
        if (it == entries_.end() || it->second->wait_id != wait_id) {
          return absl::FailedPreconditionError("offer_id: the offer was withdrawn");
        }
        Entry& entry = *it->second;
        entry.busy = false;
        RoutingWrite write;
        OfferBatch offers;
        const absl::Time now = clock_->Now();
        offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now), true);
        events::v1::Event event;
        auto* withdrawn = event.mutable_offer_withdrawn();
        withdrawn->set_offer_id(offer_id);
        withdrawn->set_session_id(subject);
        withdrawn->set_agent_id(agent_id);
        write.events.push_back(Sealed(std::move(event), subject, now));
        write.upserted_entries.push_back(entry.record);
        pending = Commit(std::move(write), std::move(offers));
        woken_ = true;
        work_.SignalAll();
      }
      Wait(pending).IgnoreError();
      return absl::FailedPreconditionError(
          "offer_id: the capacity held for the offer lapsed; it goes to the next agent");
    }
    if (!confirmed.ok()) {
      metrics_->peer_failures->Increment();
      return unbusy(absl::UnavailableError(
          absl::StrCat("presence unavailable: ", confirmed.message())));
    }
    absl::Status assigned = sessions_->AssignAgent(subject, agent_id, display_name, offer_id);
    if (absl::IsFailedPrecondition(assigned) || absl::IsNotFound(assigned)) {
      // The session no longer waits (closed meanwhile): routing lets it go.
      log::Warning("assign_refused", {{"session_id", subject}, {"detail", assigned.message()}});
      Releases releases;
      std::shared_ptr<Pending> pending;
      {
        absl::MutexLock lock(&mu_);
        auto it = entries_.find(key);
        if (it != entries_.end() && it->second->wait_id == wait_id) {
          RoutingWrite write;
          OfferBatch offers;
          Drop(*it->second, v1::CANCEL_REASON_OTHER, clock_->Now(), write, offers, releases);
          pending = Commit(std::move(write), std::move(offers));
        } else {
          releases.emplace_back(agent_id, subject);
        }
      }
      if (pending) Wait(pending).IgnoreError();
      ReleaseAll(std::move(releases));
      return absl::FailedPreconditionError(
          "offer_id: the session no longer waits for an agent");
    }
    if (!assigned.ok()) {
      metrics_->peer_failures->Increment();
      return unbusy(absl::UnavailableError(
          absl::StrCat("sessions unavailable: ", assigned.message())));
    }
  }

  v1::Assignment assignment;
  std::shared_ptr<Pending> pending;
  Releases releases;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    if (it == entries_.end() || it->second->wait_id != wait_id) {
      // Cancelled while we confirmed: give the capacity back.
      if (session) releases.emplace_back(agent_id, subject);
    } else {
      Entry& entry = *it->second;
      entry.busy = false;
      const absl::Time now = clock_->Now();
      const absl::Time enqueued_at = protoutil::FromTimestamp(entry.record.entry.enqueued_at());
      const absl::Time offered_at = entry.record.offered_at;
      const int attempt = entry.record.entry.offer_attempts();
      v1::Offer closed = CloseOffer(entry, v1::OFFER_OUTCOME_ACCEPTED, now);
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

      RoutingWrite write;
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
      Remember(ClosedOffer{agent_id, closed, assignment});
      RemoveFromQueue(entry);
      if (session) {
        entry.record.entry.set_state(v1::ENTRY_STATE_ASSIGNED);
        entry.record.assigned_agent_id = agent_id;
        entry.record.accepted_offer_id = offer_id;
        entry.record.accepted_at = now;
        offers_[offer_id] = key;
        write.upserted_entries.push_back(entry.record);
      } else {
        // A complaint leaves routing once a supervisor takes it.
        last_complaint_accept_[agent_id] = now;
        write.deleted_entries.push_back(key);
        entries_.erase(it);
      }
      pending = Commit(std::move(write), {{closed, true}});
    }
  }
  ReleaseAll(std::move(releases));
  if (!pending) return absl::FailedPreconditionError("offer_id: the offer was withdrawn");
  if (absl::Status s = Wait(pending); !s.ok()) return s;
  return assignment;
}

absl::StatusOr<v1::Offer> Router::DeclineOffer(const std::string& agent_id,
                                               const std::string& offer_id,
                                               v1::DeclineReason reason) {
  if (absl::Status s = validation::ValidateId("offer_id", offer_id, 64); !s.ok()) return s;
  if (!v1::DeclineReason_IsValid(reason)) {
    return absl::InvalidArgumentError(absl::StrCat("reason: unknown reason ", reason));
  }
  std::shared_ptr<Pending> pending;
  Releases releases;
  v1::Offer result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
    auto open = offers_.find(offer_id);
    if (open == offers_.end()) {
      auto closed = closed_offers_.find(offer_id);
      if (closed == closed_offers_.end() || closed->second.agent_id != agent_id) {
        return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
      }
      if (closed->second.offer.outcome() == v1::OFFER_OUTCOME_DECLINED) {
        return closed->second.offer;
      }
      return absl::FailedPreconditionError(
          absl::StrCat("offer_id: the offer is ",
                       v1::OfferOutcome_Name(closed->second.offer.outcome())
                           .substr(sizeof("OFFER_OUTCOME_") - 1)));
    }
    Entry& entry = *entries_.at(open->second);
    const bool mine = entry.state() == v1::ENTRY_STATE_ASSIGNED
                          ? entry.record.assigned_agent_id == agent_id
                          : entry.record.entry.offered_agent_id() == agent_id;
    if (!mine) return absl::NotFoundError(absl::StrCat("offer ", offer_id, " not found"));
    if (entry.state() == v1::ENTRY_STATE_ASSIGNED) {
      return absl::FailedPreconditionError("offer_id: the offer was accepted");
    }
    if (entry.busy) {
      return absl::FailedPreconditionError("offer_id: the offer is being accepted");
    }
    const absl::Time now = clock_->Now();
    const bool session = entry.record.entry.kind() == v1::ENTRY_KIND_SESSION;
    const std::string subject = SubjectOf(entry.record.entry);
    const absl::Time offered_at = entry.record.offered_at;
    result = CloseOffer(entry, v1::OFFER_OUTCOME_DECLINED, now);
    entry.record.excluded.push_back(agent_id);
    if (entry.record.entry.target_agent_id() == agent_id) {
      // A transfer's target declined: back to the queue's head.
      entry.record.entry.clear_target_agent_id();
      entry.record.entry.clear_target_until();
      MoveToHead(entry);
    }
    if (session) releases.emplace_back(agent_id, subject);
    RoutingWrite write;
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
    woken_ = true;
    work_.SignalAll();
  }
  absl::Status s = Wait(pending);
  ReleaseAll(std::move(releases));
  if (!s.ok()) return s;
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
  view.queue_depth = static_cast<int>(queues_.at(it->second->queue()).size());
  return view;
}

std::vector<v1::QueueEntry> Router::ListEntries(const Filter& filter, size_t offset,
                                                size_t page_size, bool* more) const {
  absl::MutexLock lock(&mu_);
  std::vector<v1::QueueEntry> page;
  *more = false;
  size_t index = 0;
  for (const auto& [queue, order] : queues_) {
    if (!Matches(filter, queue)) continue;
    int position = 0;
    for (const QueueOrder& item : order) {
      ++position;
      if (index++ < offset) continue;
      if (page.size() == page_size) {
        *more = true;
        return page;
      }
      v1::QueueEntry& entry = page.emplace_back(entries_.at(std::get<2>(item))->record.entry);
      entry.set_position(position);
    }
  }
  return page;
}

bool Router::Eligible(const Agent& agent, const QueueId& queue) const {
  if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) return false;
  const auto& skills = agent.profile().skills();
  if (std::find(skills.categories().begin(), skills.categories().end(), queue.category) ==
      skills.categories().end()) {
    return false;
  }
  if (std::none_of(skills.languages().begin(), skills.languages().end(),
                   [&](const std::string& l) { return PrimaryLanguage(l) == queue.language; })) {
    return false;
  }
  return std::any_of(agent.profile().capacities().begin(), agent.profile().capacities().end(),
                     [&](const presence::v1::ChannelCapacity& c) {
                       return c.channel() == queue.channel && c.capacity() > 0;
                     });
}

bool Router::HasFreeCapacity(const Agent& agent, Channel channel) const {
  for (const auto& c : agent.profile().capacities()) {
    if (c.channel() == channel) return c.load() < c.capacity();
  }
  return false;
}

std::vector<v1::QueueStats> Router::Stats(const Filter& filter) const {
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  std::map<QueueId, v1::QueueStats> stats;
  for (const auto& [queue, order] : queues_) {
    if (!Matches(filter, queue)) continue;
    v1::QueueStats& s = stats[queue];
    ToProto(queue, s.mutable_queue());
    s.set_depth(static_cast<int>(order.size()));
    s.add_depth_by_priority(0);
    s.add_depth_by_priority(0);
    s.add_depth_by_priority(0);
    absl::Time oldest = absl::InfiniteFuture();
    for (const QueueOrder& item : order) {
      const EntryRecord& r = entries_.at(std::get<2>(item))->record;
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
  for (const auto& [id, agent] : agents_) {
    if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) continue;
    for (int category : agent.profile().skills().categories()) {
      for (const std::string& language : agent.profile().skills().languages()) {
        for (const auto& c : agent.profile().capacities()) {
          if (c.capacity() <= 0) continue;
          const QueueId queue{v1::ENTRY_KIND_SESSION, c.channel(),
                              static_cast<Category>(category), PrimaryLanguage(language)};
          if (!Matches(filter, queue) || stats.count(queue)) continue;
          v1::QueueStats& s = stats[queue];
          ToProto(queue, s.mutable_queue());
          for (int i = 0; i < 3; ++i) s.add_depth_by_priority(0);
          ToDuration(absl::ZeroDuration(), s.mutable_oldest_wait());
        }
      }
    }
  }
  std::vector<v1::QueueStats> out;
  for (auto& [queue, s] : stats) {
    int eligible = 0, available = 0;
    if (queue.kind == v1::ENTRY_KIND_COMPLAINT) {
      for (const auto& [id, count] : watching_supervisors_) {
        auto agent = agents_.find(id);
        if (agent == agents_.end() ||
            agent->second.status() != presence::v1::AGENT_STATUS_ONLINE) {
          continue;
        }
        ++eligible;
        ++available;
      }
    } else {
      for (const auto& [id, agent] : agents_) {
        if (!Eligible(agent, queue)) continue;
        ++eligible;
        if (HasFreeCapacity(agent, queue.channel)) ++available;
      }
    }
    s.set_eligible_agents(eligible);
    s.set_available_agents(available);
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
  std::shared_ptr<Pending> pending;
  SettingsRecord record;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = CheckWritable(); !s.ok()) return s;
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
  if (absl::Status s = Wait(pending); !s.ok()) return s;
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
    woken_ = true;
    work_.SignalAll();
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
  const bool lapsed = agent.status() == presence::v1::AGENT_STATUS_OFFLINE;
  auto it = agents_.find(agent.agent_id());
  if (it != agents_.end() && agent.revision() != 0 && it->second.revision() > agent.revision()) {
    return;  // older than what we know
  }
  if (lapsed) {
    agents_.erase(agent.agent_id());
    LapseLocked(agent.agent_id(), now, write, offers);
  } else {
    agents_[agent.agent_id()] = agent;
  }
}

void Router::LapseLocked(const std::string& agent_id, absl::Time now, RoutingWrite& write,
                         OfferBatch& offers) {
  for (auto& [key, owned] : entries_) {
    Entry& entry = *owned;
    const bool session = entry.record.entry.kind() == v1::ENTRY_KIND_SESSION;
    const std::string subject = SubjectOf(entry.record.entry);
    if (entry.state() == v1::ENTRY_STATE_OFFERED &&
        entry.record.entry.offered_agent_id() == agent_id && !entry.busy) {
      const std::string offer_id = entry.record.offer_id;
      offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_WITHDRAWN, now), true);
      events::v1::Event event;
      auto* withdrawn = event.mutable_offer_withdrawn();
      withdrawn->set_offer_id(offer_id);
      (session ? withdrawn->mutable_session_id() : withdrawn->mutable_complaint_id())
          ->assign(subject);
      withdrawn->set_agent_id(agent_id);
      withdrawn->set_agent_unavailable(true);
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(entry.record);
      if (session) failed_releases_.emplace_back(agent_id, subject);
    } else if (entry.state() == v1::ENTRY_STATE_ASSIGNED &&
               entry.record.assigned_agent_id == agent_id) {
      offers_.erase(entry.record.accepted_offer_id);
      entry.record.entry.set_state(v1::ENTRY_STATE_WAITING);
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
      entry.record.order =
          HeadOrder(entry.queue(), entry.record.entry.priority(), absl::ToUnixMicros(now));
      entry.retry_after = absl::InfinitePast();
      AddToQueue(entry);
      events::v1::Event event;
      auto* requeued = event.mutable_entry_requeued();
      requeued->set_session_id(subject);
      requeued->set_agent_id(agent_id);
      *requeued->mutable_queue() = entry.record.entry.queue();
      requeued->set_priority(entry.record.entry.priority());
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(entry.record);
      failed_releases_.emplace_back(agent_id, subject);
      metrics_->entries_requeued->Increment();
    }
  }
}

void Router::ResetPresence(const std::vector<Agent>& agents) {
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    RoutingWrite write;
    OfferBatch offers;
    std::set<std::string> present;
    for (const Agent& agent : agents) present.insert(agent.agent_id());
    std::set<std::string> gone;
    for (const auto& [id, agent] : agents_) {
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
    agents_.clear();
    for (const Agent& agent : agents) {
      if (agent.status() != presence::v1::AGENT_STATUS_OFFLINE) agents_[agent.agent_id()] = agent;
    }
    for (const std::string& id : gone) LapseLocked(id, now, write, offers);
    pending = Commit(std::move(write), std::move(offers));
    woken_ = true;
    work_.SignalAll();
  }
  Wait(pending).IgnoreError();
}

void Router::OnAgentChange(const Agent& agent) {
  std::shared_ptr<Pending> pending;
  {
    absl::MutexLock lock(&mu_);
    RoutingWrite write;
    OfferBatch offers;
    SetAgent(agent, clock_->Now(), write, offers);
    pending = Commit(std::move(write), std::move(offers));
    woken_ = true;
    work_.SignalAll();
  }
  Wait(pending).IgnoreError();
}

// ---- the dispatcher ----

void Router::Backoff(Entry& entry, absl::Time now) {
  entry.retries = std::min(entry.retries + 1, 10);
  entry.retry_after =
      now + std::min(options_.max_retry_backoff, absl::Milliseconds(250) * (1 << entry.retries));
}

void Router::ReleaseAll(Releases releases) {
  for (const auto& [agent_id, session_id] : releases) {
    absl::Status s = presence_->Release(agent_id, session_id);
    if (!s.ok() && !IsDecision(s)) {
      metrics_->peer_failures->Increment();
      absl::MutexLock lock(&mu_);
      failed_releases_.emplace_back(agent_id, session_id);
    }
  }
}

void Router::RetryReleases() {
  Releases releases;
  {
    absl::MutexLock lock(&mu_);
    releases.swap(failed_releases_);
  }
  ReleaseAll(std::move(releases));
}

void Router::ExpireDue() {
  std::shared_ptr<Pending> pending;
  Releases releases;
  {
    absl::MutexLock lock(&mu_);
    if (store_failed_) return;
    const absl::Time now = clock_->Now();
    RoutingWrite write;
    OfferBatch offers;
    for (auto& [key, owned] : entries_) {
      Entry& entry = *owned;
      const bool session = entry.record.entry.kind() == v1::ENTRY_KIND_SESSION;
      const std::string subject = SubjectOf(entry.record.entry);
      if (entry.state() == v1::ENTRY_STATE_OFFERED && !entry.busy &&
          entry.record.offer_expires_at <= now) {
        const std::string agent_id = entry.record.entry.offered_agent_id();
        const std::string offer_id = entry.record.offer_id;
        offers.emplace_back(CloseOffer(entry, v1::OFFER_OUTCOME_EXPIRED, now), true);
        if (!Contains(entry.record.timed_out, agent_id)) {
          entry.record.timed_out.push_back(agent_id);
        }
        if (entry.record.entry.target_agent_id() == agent_id) {
          entry.record.entry.clear_target_agent_id();
          entry.record.entry.clear_target_until();
          MoveToHead(entry);
        }
        if (session) releases.emplace_back(agent_id, subject);
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
  Wait(pending).IgnoreError();
  ReleaseAll(std::move(releases));
}

void Router::TellSessionsRequeued() {
  while (true) {
    std::string key, session_id, agent_id;
    uint64_t wait_id = 0;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = clock_->Now();
      for (auto& [k, entry] : entries_) {
        if (!entry->record.requeued_from.empty() && !entry->busy &&
            entry->retry_after <= now) {
          key = k;
          wait_id = entry->wait_id;
          session_id = entry->record.entry.session_id();
          agent_id = entry->record.requeued_from;
          entry->busy = true;
          break;
        }
      }
      if (key.empty()) return;
    }
    absl::Status s = sessions_->RequeueSession(session_id, agent_id);
    std::shared_ptr<Pending> pending;
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
    Wait(pending).IgnoreError();
  }
}

std::vector<std::string> Router::Candidates(const Entry& entry, absl::Time now) const {
  const QueueId queue = entry.queue();
  const EntryRecord& r = entry.record;
  struct Candidate {
    absl::Time since;
    std::string id;
  };
  std::vector<Candidate> fresh, retried;
  if (queue.kind == v1::ENTRY_KIND_COMPLAINT) {
    for (const auto& [id, streams] : watching_supervisors_) {
      auto agent = agents_.find(id);
      if (agent == agents_.end() ||
          agent->second.status() != presence::v1::AGENT_STATUS_ONLINE ||
          Contains(r.excluded, id)) {
        continue;
      }
      // One open complaint offer per supervisor at a time.
      bool busy = false;
      for (const auto& [offer_id, key] : offers_) {
        const Entry& other = *entries_.at(key);
        if (other.state() == v1::ENTRY_STATE_OFFERED &&
            other.record.entry.kind() == v1::ENTRY_KIND_COMPLAINT &&
            other.record.entry.offered_agent_id() == id) {
          busy = true;
          break;
        }
      }
      if (busy) continue;
      auto last = last_complaint_accept_.find(id);
      Candidate c{last == last_complaint_accept_.end() ? absl::InfinitePast() : last->second, id};
      (Contains(r.timed_out, id) ? retried : fresh).push_back(c);
    }
  } else {
    for (const auto& [id, agent] : agents_) {
      if (!Eligible(agent, queue) || !HasFreeCapacity(agent, queue.channel) ||
          Contains(r.excluded, id)) {
        continue;
      }
      if (!r.entry.target_agent_id().empty() && r.entry.target_agent_id() != id) continue;
      Candidate c{protoutil::FromTimestamp(agent.idle_since()), id};
      (Contains(r.timed_out, id) ? retried : fresh).push_back(c);
    }
  }
  // Agents whose offer timed out come back only when nobody else is left.
  std::vector<Candidate>& pool = fresh.empty() ? retried : fresh;
  std::sort(pool.begin(), pool.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.since, a.id) < std::tie(b.since, b.id);
  });
  std::vector<std::string> out;
  const std::string& preferred = r.entry.preferred_agent_id();
  for (const Candidate& c : pool) {
    if (c.id == preferred) out.insert(out.begin(), c.id);
    else out.push_back(c.id);
  }
  (void)now;
  return out;
}

bool Router::PickNext(absl::Time now, std::string* key, uint64_t* wait_id,
                      std::vector<std::string>* candidates) {
  // Priority and age order entries across queues too: an urgent entry in one
  // queue goes before a normal one in another queue the same agents serve.
  // Each queue is already in that order, so the pick is the smallest of the
  // queues' first entries that some agent can take: a walk stops at the
  // first such entry, or as soon as it cannot beat the best found so far,
  // and a queue no agent could serve right now is not walked at all.
  const QueueOrder* best = nullptr;
  std::vector<std::string> best_candidates;
  for (const auto& [queue, order] : queues_) {
    if (order.empty()) continue;
    if (best != nullptr && !(*order.begin() < *best)) continue;
    if (queue.kind != v1::ENTRY_KIND_COMPLAINT &&
        std::none_of(agents_.begin(), agents_.end(), [&, &queue = queue](const auto& agent) {
          return Eligible(agent.second, queue) && HasFreeCapacity(agent.second, queue.channel);
        })) {
      continue;
    }
    for (const QueueOrder& item : order) {
      if (best != nullptr && !(item < *best)) break;
      const Entry& entry = *entries_.at(std::get<2>(item));
      if (entry.state() != v1::ENTRY_STATE_WAITING || entry.busy ||
          !entry.record.requeued_from.empty() || entry.retry_after > now) {
        continue;
      }
      std::vector<std::string> found = Candidates(entry, now);
      if (found.empty()) continue;
      best = &item;
      best_candidates = std::move(found);
      break;
    }
  }
  if (best == nullptr) return false;
  Entry& entry = *entries_.at(std::get<2>(*best));
  entry.busy = true;
  *key = entry.record.key;
  *wait_id = entry.wait_id;
  *candidates = std::move(best_candidates);
  return true;
}

bool Router::OfferOne(const std::string& key, uint64_t wait_id,
                      const std::vector<std::string>& candidates) {
  const bool session = absl::StartsWith(key, "session:");
  const std::string subject = key.substr(key.find(':') + 1);
  Channel channel;
  {
    absl::MutexLock lock(&mu_);
    channel = entries_.at(key)->record.entry.queue().channel();
  }
  const std::string offer_id = events::RandomUuid();
  const absl::Duration hold = options_.offer_timeout + options_.hold_margin;
  std::string chosen;
  absl::Status failure;  // a refusal that is not about one agent
  for (const std::string& agent_id : candidates) {
    if (!session) {
      chosen = agent_id;
      break;
    }
    absl::Status reserved = presence_->Reserve(agent_id, subject, channel, hold);
    if (reserved.ok()) {
      chosen = agent_id;
      break;
    }
    if (absl::IsResourceExhausted(reserved) || absl::IsFailedPrecondition(reserved) ||
        absl::IsNotFound(reserved)) {
      metrics_->reservations_refused->Increment();
      // Routing's view was stale: presence's load is the truth.
      absl::MutexLock lock(&mu_);
      auto agent = agents_.find(agent_id);
      if (agent != agents_.end()) {
        for (auto& c : *agent->second.mutable_profile()->mutable_capacities()) {
          if (c.channel() == channel) c.set_load(std::max(c.load(), c.capacity()));
        }
      }
      continue;
    }
    failure = reserved;  // ALREADY_EXISTS (held elsewhere) or presence down
    break;
  }

  absl::Time expires_at = clock_->Now() + options_.offer_timeout;
  if (!chosen.empty() && session) {
    absl::Status recorded = sessions_->RecordOffer(subject, chosen, offer_id, expires_at);
    if (!recorded.ok()) {
      presence_->Release(chosen, subject).IgnoreError();
      failure = recorded;
      chosen.clear();
    }
  }

  std::shared_ptr<Pending> pending;
  bool auto_accept = false;
  bool keep_going = true;
  bool release_chosen = false;
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(key);
    const bool gone = it == entries_.end() || it->second->wait_id != wait_id;
    if (gone) {
      // Cancelled while we reserved: the capacity goes back below.
    } else if (chosen.empty()) {
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
      Backoff(entry, clock_->Now());
    } else {
      Entry& entry = *it->second;
      entry.busy = false;
      entry.retries = 0;
      entry.retry_after = absl::InfinitePast();
      const absl::Time now = clock_->Now();
      EntryRecord& r = entry.record;
      auto_accept = session && settings_.count(chosen) &&
                    settings_.at(chosen).settings.auto_accept();
      r.entry.set_state(v1::ENTRY_STATE_OFFERED);
      r.entry.set_offered_agent_id(chosen);
      r.entry.set_offer_attempts(r.entry.offer_attempts() + 1);
      r.offer_id = offer_id;
      r.offered_at = now;
      r.offer_expires_at = expires_at;
      r.auto_accept = auto_accept;
      offers_[offer_id] = key;
      const absl::Time enqueued_at = protoutil::FromTimestamp(r.entry.enqueued_at());
      const QueueId queue = entry.queue();
      if (r.entry.offer_attempts() == 1) {
        metrics_->offer_latency(queue.channel, queue.category)
            .Observe(absl::ToDoubleSeconds(now - enqueued_at));
      }
      metrics_->offers_made->Increment();
      RoutingWrite write;
      events::v1::Event event;
      auto* made = event.mutable_offer_made();
      made->set_offer_id(offer_id);
      made->set_kind(r.entry.kind());
      (session ? made->mutable_session_id() : made->mutable_complaint_id())->assign(subject);
      made->set_agent_id(chosen);
      *made->mutable_queue() = r.entry.queue();
      ToTimestamp(expires_at, made->mutable_expires_at());
      made->set_attempt(r.entry.offer_attempts());
      made->set_auto_accept(auto_accept);
      ToDuration(now - enqueued_at, made->mutable_waited());
      write.events.push_back(Sealed(std::move(event), subject, now));
      write.upserted_entries.push_back(r);
      OfferBatch offers;
      // Auto-accepted offers reach the agent already accepted.
      if (!auto_accept) offers.emplace_back(OfferOf(entry), false);
      if (auto_accept) entry.busy = true;
      pending = Commit(std::move(write), std::move(offers));
    }
    release_chosen = gone && session && !chosen.empty();
  }
  if (release_chosen) {
    ReleaseAll({{chosen, subject}});
    return true;
  }
  if (pending) Wait(pending).IgnoreError();
  if (auto_accept) {
    absl::StatusOr<v1::Assignment> accepted =
        FinishAccept(key, wait_id, chosen, offer_id, /*automatic=*/true);
    if (accepted.ok()) {
      // Tell the agent's devices: the offer arrives already accepted.
      absl::MutexLock lock(&mu_);
      auto closed = closed_offers_.find(offer_id);
      if (closed != closed_offers_.end()) {
        v1::Offer offer = closed->second.offer;
        offer.set_auto_accepted(true);
        Publish({{offer, false}});
      }
    } else {
      log::Warning("auto_accept_failed", {{"entry", key}, {"detail", accepted.status().message()}});
    }
  }
  return keep_going;
}

void Router::RefreshGauges() {
  const std::vector<v1::QueueStats> stats = Stats(Filter());
  for (const v1::QueueStats& s : stats) {
    const QueueId queue{s.queue().kind(), s.queue().channel(), s.queue().category(),
                        s.queue().language()};
    RoutingMetrics::QueueGauges& gauges = metrics_->ForQueue(queue);
    gauges.depth->Set(s.depth());
    gauges.oldest_wait_seconds->Set(
        absl::ToDoubleSeconds(protoutil::FromDuration(s.oldest_wait())));
    gauges.eligible_agents->Set(s.eligible_agents());
    gauges.available_agents->Set(s.available_agents());
  }
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
  router_->Wake();
  if (thread_.joinable()) thread_.join();
}

void Router::RunOnce() {
  ExpireDue();
  RetryReleases();
  TellSessionsRequeued();
  for (int made = 0; made < kMaxOffersPerPass; ++made) {
    std::string key;
    uint64_t wait_id = 0;
    std::vector<std::string> candidates;
    {
      absl::MutexLock lock(&mu_);
      if (store_failed_) break;
      if (!PickNext(clock_->Now(), &key, &wait_id, &candidates)) break;
    }
    if (!OfferOne(key, wait_id, candidates)) break;
  }
  RefreshGauges();
}

}  // namespace switchboard::routing
