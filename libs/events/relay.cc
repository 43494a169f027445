#include "libs/events/relay.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "libs/events/sqlite_outbox_store.h"
#include "libs/fault/fault_point.h"
#include "libs/log/log.h"

namespace switchboard::events {
namespace {

prometheus::Gauge& MakeGauge(prometheus::Registry& registry,
                             const std::string& name,
                             const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry).Add(
      {});
}

prometheus::Counter& MakeCounter(prometheus::Registry& registry,
                                 const std::string& name,
                                 const std::string& help) {
  return prometheus::BuildCounter()
      .Name(name)
      .Help(help)
      .Register(registry)
      .Add({});
}

}  // namespace

Relay::Relay(std::unique_ptr<storage::Database> reader,
             storage::GroupCommitter* committer, Sink* sink,
             prometheus::Registry& registry, Options options)
    : Relay(std::make_unique<SqliteOutboxStore>(std::move(reader), committer),
            sink, registry, std::move(options)) {}

Relay::Relay(std::unique_ptr<OutboxStore> store, Sink* sink,
             prometheus::Registry& registry, Options options)
    : store_(std::move(store)),
      sink_(sink),
      options_(std::move(options)),
      depth_(MakeGauge(
          registry, "switchboard_outbox_depth",
          "Events committed to this service's outbox and not yet confirmed "
          "by the event sink (Kafka or the JSON-lines file), as of the "
          "relay's last count (after each pass; while it drains a backlog, "
          "once per poll interval, 1 s by default).")),
      oldest_age_seconds_(MakeGauge(
          registry, "switchboard_outbox_oldest_age_seconds",
          "Seconds between now and the occurred_at time of the oldest event "
          "still waiting in the outbox, as of the relay's last count (after "
          "each pass; while it drains a backlog, once per poll interval, 1 s "
          "by default); 0 when the outbox is empty. Grows while the sink is "
          "down.")),
      published_(MakeCounter(
          registry, "switchboard_outbox_published_total",
          "Events the sink confirmed as durably published (Kafka delivery "
          "report, or JSON line written and fsynced); each is then deleted "
          "from the outbox. A retry after a lost delete counts again.")),
      publish_failures_(MakeCounter(
          registry, "switchboard_outbox_publish_failures_total",
          "Publish attempts of an event that the sink reported failed or "
          "did not confirm; the event stays in the outbox and is retried "
          "with backoff, so one event may count several times.")) {
  // What an earlier run left waiting shows at once, not only after the
  // first pass (which may take a while against a slow or absent sink).
  UpdateGauges();
  thread_ = std::thread([this] { Run(); });
}

Relay::~Relay() { Stop(absl::ZeroDuration()); }

void Relay::Notify() {
  absl::MutexLock lock(&mu_);
  notified_ = true;
  wake_.Signal();
}

void Relay::Stop(absl::Duration flush_deadline) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      stopping_ = true;
      stop_deadline_ = absl::Now() + flush_deadline;
    }
    wake_.Signal();
  }
  absl::MutexLock lock(&stop_mu_);
  if (thread_.joinable()) thread_.join();
}

void Relay::Run() {
  absl::Duration backoff = absl::ZeroDuration();
  // The first pass publishes what an earlier run left behind.
  bool pass_now = true;
  // Whether the last pass knew of a Stop; one that came during the pass
  // wakes the relay at once.
  bool stopping = false;
  while (true) {
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      if (!pass_now) {
        const bool backing_off = backoff > absl::ZeroDuration();
        absl::Time wake_at =
            absl::Now() + (backing_off ? backoff : options_.poll_interval);
        if (stopping_) wake_at = std::min(wake_at, stop_deadline_);
        while (stopping_ == stopping && !(notified_ && !backing_off)) {
          if (wake_.WaitWithDeadline(&mu_, wake_at)) break;  // Timed out.
        }
      }
      notified_ = false;
      stopping = stopping_;
      deadline = stop_deadline_;
    }
    if (stopping && absl::Now() >= deadline) break;

    const Pass pass = RunPass();
    if (pass.failed) {
      backoff = backoff == absl::ZeroDuration()
                    ? options_.initial_backoff
                    : std::min(backoff * 2, options_.max_backoff);
      pass_now = false;
    } else {
      backoff = absl::ZeroDuration();
      if (stopping && pass.read == 0) break;  // Drained.
      // A full batch suggests more rows; when stopping, check until empty.
      pass_now = stopping || pass.read >= options_.batch_size;
    }
  }
  UpdateGauges();
}

Relay::Pass Relay::RunPass() {
  Pass pass;
  absl::StatusOr<std::vector<OutboxRecord>> claimed =
      store_->Claim(std::max(1, options_.batch_size));
  if (!claimed.ok()) {
    log::Error("outbox_read_failed", {{"error", claimed.status().message()}});
    pass.failed = true;
    UpdateGauges();
    return pass;
  }
  const std::vector<OutboxRecord>& records = *claimed;
  pass.read = static_cast<int64_t>(records.size());
  if (records.empty()) {
    // Releases the (empty) claim.
    if (absl::Status s = store_->Finish({}); !s.ok()) {
      log::Error("outbox_delete_failed", {{"rows", 0}, {"error", s.message()}});
      pass.failed = true;
    }
    UpdateGauges();
    return pass;
  }

  std::vector<absl::Status> results = sink_->Publish(records);
  if (results.size() != records.size()) {
    log::Error("outbox_sink_result_count_mismatch",
               {{"records", records.size()}, {"results", results.size()}});
    // Unanswered records count as failed.
    results.resize(records.size(),
                   absl::InternalError("the sink returned no status"));
  }
  std::vector<int64_t> confirmed;
  const absl::Status* first_failure = nullptr;
  int64_t failures = 0;
  for (size_t i = 0; i < records.size(); ++i) {
    if (results[i].ok()) {
      confirmed.push_back(records[i].outbox_id);
    } else {
      ++failures;
      if (first_failure == nullptr) first_failure = &results[i];
    }
  }
  published_.Increment(static_cast<double>(confirmed.size()));
  if (failures > 0) {
    publish_failures_.Increment(static_cast<double>(failures));
    log::Warning("outbox_publish_failed",
                 {{"failed", failures},
                  {"records", records.size()},
                  {"error", first_failure->message()}});
    pass.failed = true;
  }
  if (!confirmed.empty()) {
    // Crash tests: the sink has confirmed these events, their rows are not
    // deleted yet; a restart publishes them again (duplicates, no loss).
    fault::Point("relay.before_delete");
  }
  absl::Status deleted = store_->Finish(confirmed);
  if (!deleted.ok()) {
    // The rows will be published again: a duplicate, never a loss.
    log::Error("outbox_delete_failed",
               {{"rows", confirmed.size()}, {"error", deleted.message()}});
    pass.failed = true;
  }
  // Counting the outbox costs a scan of it: behind a backlog, where every
  // pass is full, the gauges are refreshed once per poll interval.
  if (pass.read < options_.batch_size ||
      absl::Now() - gauges_updated_ >= options_.poll_interval) {
    UpdateGauges();
  }
  return pass;
}

void Relay::UpdateGauges() {
  gauges_updated_ = absl::Now();
  absl::StatusOr<OutboxStore::Stats> stats = store_->ReadStats();
  if (!stats.ok()) return;
  double age_seconds = 0;
  if (stats->depth > 0 && stats->oldest.has_value()) {
    age_seconds = std::max(
        0.0, absl::ToDoubleSeconds(options_.clock->Now() - *stats->oldest));
  }
  depth_.Set(static_cast<double>(stats->depth));
  oldest_age_seconds_.Set(age_seconds);
}

}  // namespace switchboard::events
