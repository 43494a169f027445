#include "services/routing/metrics.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace switchboard::routing {
namespace {

// The enum value's name without its prefix, lower-cased. A value this build
// does not know (a newer peer's: proto3 enums are open) has no name and is
// labelled by its number.
std::string Label(int value, const std::string& enum_name, size_t prefix) {
  if (enum_name.size() <= prefix) return absl::StrCat(value);
  return absl::AsciiStrToLower(enum_name.substr(prefix));
}

std::string ChannelLabel(int channel) {
  if (channel == common::v1::CHANNEL_UNSPECIFIED) return "none";
  return Label(channel, common::v1::Channel_Name(channel), sizeof("CHANNEL_") - 1);
}

std::string CategoryLabel(int category) {
  if (category == common::v1::CATEGORY_UNSPECIFIED) return "none";
  return Label(category, common::v1::Category_Name(category), sizeof("CATEGORY_") - 1);
}

prometheus::Counter* Counter(prometheus::Registry& registry, const std::string& name,
                             const std::string& help) {
  return &prometheus::BuildCounter().Name(name).Help(help).Register(registry).Add({});
}

}  // namespace

RoutingMetrics::RoutingMetrics(prometheus::Registry& registry) {
  depth_family_ = &prometheus::BuildGauge()
                       .Name("switchboard_routing_queue_depth")
                       .Help("Entries in the queue now: waiting for an offer or "
                             "offered and not yet answered (assigned entries have "
                             "left the queue).")
                       .Register(registry);
  oldest_family_ = &prometheus::BuildGauge()
                        .Name("switchboard_routing_queue_oldest_wait_seconds")
                        .Help("How long the queue's longest-waiting entry has "
                              "waited, from when it started waiting this time "
                              "(enqueue or re-queue) to now; 0 when empty.")
                        .Register(registry);
  eligible_family_ = &prometheus::BuildGauge()
                          .Name("switchboard_routing_queue_eligible_agents")
                          .Help("Agents ONLINE in presence with the queue's skills "
                                "(category, language, capacity above zero on the "
                                "channel); for complaint queues, supervisors ONLINE "
                                "and watching offers.")
                          .Register(registry);
  available_family_ = &prometheus::BuildGauge()
                           .Name("switchboard_routing_queue_available_agents")
                           .Help("Of the eligible agents, those with free capacity "
                                 "on the queue's channel now (load below capacity).")
                           .Register(registry);
  open_family_ = &prometheus::BuildGauge()
                      .Name("switchboard_routing_queue_open")
                      .Help("1 while the queue is open under its schedule (hours of "
                            "operation), 0 while closed: no offers go out and its "
                            "entries wait. Queues without a schedule, and complaint "
                            "queues, are always open.")
                      .Register(registry);
  auto& latency = prometheus::BuildHistogram()
                      .Name("switchboard_routing_offer_latency_seconds")
                      .Help("Enqueue to first offer: from when an entry started "
                            "waiting to when routing made its first offer of that "
                            "wait, by channel and category.")
                      .Register(registry);
  auto& wait = prometheus::BuildHistogram()
                   .Name("switchboard_routing_queue_wait_seconds")
                   .Help("Queue wait: from when an entry started waiting (enqueue "
                         "or re-queue) to when an agent accepted its offer, by "
                         "channel and category.")
                   .Register(registry);
  const prometheus::Histogram::BucketBoundaries buckets{
      0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400, 86400};
  for (int channel = 0; channel < 5; ++channel) {
    for (int category = 0; category < 9; ++category) {
      const std::map<std::string, std::string> labels{
          {"channel", ChannelLabel(channel)}, {"category", CategoryLabel(category)}};
      offer_latency_[channel][category] = &latency.Add(labels, buckets);
      queue_wait_[channel][category] = &wait.Add(labels, buckets);
    }
  }
  entries_enqueued = Counter(registry, "switchboard_routing_entries_enqueued_total",
                             "Entries put in a queue by EnqueueSession or "
                             "EnqueueComplaint (retries not counted).");
  entries_cancelled = Counter(registry, "switchboard_routing_entries_cancelled_total",
                              "Entries taken out of routing by CancelSession or "
                              "CancelComplaint, whatever their state.");
  entries_requeued = Counter(registry, "switchboard_routing_entries_requeued_total",
                             "Assigned sessions put back at the head of their "
                             "queue because their agent's presence lapsed.");
  auto& offers = prometheus::BuildCounter()
                     .Name("switchboard_routing_offers_total")
                     .Help("Offers by outcome: made (each offer once, when it "
                           "goes out), accepted (by the agent or their "
                           "auto-accept), declined, expired (accept deadline "
                           "passed), withdrawn (entry cancelled or agent offline).")
                     .Register(registry);
  offers_made = &offers.Add({{"outcome", "made"}});
  offers_accepted = &offers.Add({{"outcome", "accepted"}});
  offers_declined = &offers.Add({{"outcome", "declined"}});
  offers_expired = &offers.Add({{"outcome", "expired"}});
  offers_withdrawn = &offers.Add({{"outcome", "withdrawn"}});
  offers_auto_accepted =
      Counter(registry, "switchboard_routing_offers_auto_accepted_total",
              "Offers accepted by the agent's auto-accept setting (also "
              "counted as accepted).");
  reservations_refused =
      Counter(registry, "switchboard_routing_reservations_refused_total",
              "Capacity reservations presence refused (agent at capacity or no "
              "longer online): routing's view was stale and it tried the next "
              "agent.");
  peer_failures = Counter(registry, "switchboard_routing_peer_failures_total",
                          "Calls to presence or sessions that failed with "
                          "UNAVAILABLE, DEADLINE_EXCEEDED or another error "
                          "that is not a decision (retried later).");
  releases_owed = &prometheus::BuildGauge()
                       .Name("switchboard_routing_releases_owed")
                       .Help("Capacity reservations routing owes presence a release "
                             "for and keeps retrying (durable across restarts); "
                             "grows while presence is unreachable.")
                       .Register(registry)
                       .Add({});
  accepts_in_progress = &prometheus::BuildGauge()
                             .Name("switchboard_routing_accepts_in_progress")
                             .Help("Accepted offers routing is still confirming in "
                                   "presence and assigning in sessions (driven to "
                                   "completion in the background, also after a "
                                   "restart).")
                             .Register(registry)
                             .Add({});
  auto& reconciliations = prometheus::BuildCounter()
                              .Name("switchboard_routing_reconciliations_total")
                              .Help("Reconciliations of presence's reservations with "
                                    "routing's offers and assignments, by outcome "
                                    "(ok, failed).")
                              .Register(registry);
  reconciliations_ok = &reconciliations.Add({{"outcome", "ok"}});
  reconciliations_failed = &reconciliations.Add({{"outcome", "failed"}});
  auto& reconciled = prometheus::BuildCounter()
                         .Name("switchboard_routing_capacity_reconciled_total")
                         .Help("Reservations a reconciliation changed in presence: "
                               "released (held by no offer or assignment of "
                               "routing's) or restored (an assignment's was "
                               "missing). Above zero means capacity had leaked.")
                         .Register(registry);
  capacity_reconciled_released = &reconciled.Add({{"outcome", "released"}});
  capacity_reconciled_restored = &reconciled.Add({{"outcome", "restored"}});
}

RoutingMetrics::QueueGauges& RoutingMetrics::ForQueue(const QueueId& queue) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(queue);
  if (it != queues_.end()) return it->second;
  const std::map<std::string, std::string> labels{
      {"kind", queue.kind == v1::ENTRY_KIND_COMPLAINT ? "complaint" : "session"},
      {"channel", ChannelLabel(queue.channel)},
      {"category", CategoryLabel(queue.category)},
      {"language", queue.language.empty() ? "none" : queue.language}};
  QueueGauges gauges{&depth_family_->Add(labels), &oldest_family_->Add(labels),
                     &eligible_family_->Add(labels), &available_family_->Add(labels),
                     &open_family_->Add(labels)};
  return queues_.emplace(queue, gauges).first->second;
}

void RoutingMetrics::Forget(const QueueId& queue) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(queue);
  if (it == queues_.end()) return;
  depth_family_->Remove(it->second.depth);
  oldest_family_->Remove(it->second.oldest_wait_seconds);
  eligible_family_->Remove(it->second.eligible_agents);
  available_family_->Remove(it->second.available_agents);
  open_family_->Remove(it->second.open);
  queues_.erase(it);
}

}  // namespace switchboard::routing
