#pragma once

// The outbox relay: publishes the events a service committed to its outbox
// (outbox.h) through a Sink, and deletes each row only after the sink
// confirmed it, so no event is lost: if the sink is down, events wait in the
// outbox while the service keeps working, and drain in order once it is
// back. Delivery is at least once (a crash between confirmation and delete
// publishes again); consumers de-duplicate on event_id.
//
// Wiring in a service:
//   storage::Database::Options read_options;
//   read_options.path = db_path;  // The file the committer writes.
//   auto reader = storage::Database::Open(read_options);
//   Relay relay(std::move(*reader), &committer, sink.get(), registry,
//               Relay::Options());
//   // after each commit that appended events (e.g. in the write's `done`):
//   relay.Notify();
//   // at shutdown, before stopping the committer:
//   relay.Stop(absl::Seconds(5));
// On PostgreSQL (postgres_outbox.h), with a connection of the relay's own:
//   Relay relay(std::make_unique<PostgresOutboxStore>(std::move(*conn)),
//               sink.get(), registry, Relay::Options());
//
// Each pass claims the oldest `batch_size` rows from its OutboxStore
// (outbox_store.h: on SQLite through the relay's own read connection),
// publishes them, deletes the confirmed ones (on SQLite through the
// service's GroupCommitter, the only writer), and updates the metrics. A
// pass in which anything failed (claim, publish, delete) is retried after an
// exponential backoff (initial_backoff doubling up to max_backoff; Notify
// does not cut it short); otherwise the relay sleeps until Notify or
// poll_interval.
//
// Metrics (created once on the given registry; HELP texts define them; the
// gauges are set when the relay is made, then after each pass, except that
// while passes come back full they are refreshed once per poll_interval):
//   switchboard_outbox_depth                   gauge
//   switchboard_outbox_oldest_age_seconds      gauge
//   switchboard_outbox_published_total         counter
//   switchboard_outbox_publish_failures_total  counter
//
// Crash tests (libs/fault, --fault_point): "relay.before_delete" is reached
// after the sink confirmed a batch and before its rows are deleted;
// KafkaSink's "relay.after_produce" after a batch was handed to the producer
// and before its delivery reports (tests/crash_relay_test kills the process
// at both).
//
// Threading: the relay runs one thread of its own, which alone uses the
// store and calls Sink::Publish. Notify and Stop are thread-safe;
// Notify never blocks for long, so it may be called from a GroupCommitter
// `done` or a gRPC callback thread.

#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/events/outbox_store.h"
#include "libs/events/sink.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/registry.h"

namespace switchboard::events {

class Relay {
 public:
  struct Options {
    // Rows read and handed to the sink per pass.
    int batch_size = 256;
    // How often the outbox is checked without a Notify (e.g. for events
    // another process left behind); also refreshes the gauges.
    absl::Duration poll_interval = absl::Seconds(1);
    // Wait before the first retry after a failed pass; doubles per failed
    // pass up to max_backoff; resets after a pass that fully succeeds.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(30);
    // For the oldest-age gauge, compared with the events' occurred_at.
    Clock* clock = RealClock();
  };

  // Starts the relay thread; its first pass publishes whatever an earlier
  // run left in the outbox. `sink` is not owned and must outlive the relay.
  Relay(std::unique_ptr<OutboxStore> store, Sink* sink,
        prometheus::Registry& registry, Options options);
  // On a service's SQLite file (a SqliteOutboxStore): `reader` is a
  // connection of its own to the file (with the outbox migration applied).
  // `committer` is not owned and must outlive the relay.
  Relay(std::unique_ptr<storage::Database> reader,
        storage::GroupCommitter* committer, Sink* sink,
        prometheus::Registry& registry, Options options);
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  // Stop(absl::ZeroDuration()) if Stop was not called: rows left stay in the
  // outbox for the next run.
  ~Relay();

  // Wakes the relay for a pass now (unless it is backing off after a
  // failure); call after committing events.
  void Notify();

  // Drains the outbox for at most `flush_deadline` (passes go on while rows
  // remain and time is left; a Sink::Publish already running is waited
  // for), then stops the thread. Idempotent. Stop the relay before the
  // GroupCommitter it deletes through (on SQLite).
  void Stop(absl::Duration flush_deadline);

 private:
  struct Pass {
    // Rows read from the outbox.
    int64_t read = 0;
    // Whether anything failed (then the relay backs off).
    bool failed = false;
  };

  void Run();
  Pass RunPass();
  void UpdateGauges();

  std::unique_ptr<OutboxStore> store_;
  Sink* const sink_;
  const Options options_;

  prometheus::Gauge& depth_;
  prometheus::Gauge& oldest_age_seconds_;
  prometheus::Counter& published_;
  prometheus::Counter& publish_failures_;

  absl::Mutex mu_;
  absl::CondVar wake_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::Time stop_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();

  // When UpdateGauges last ran; the relay thread's (or the constructor's).
  absl::Time gauges_updated_ = absl::InfinitePast();
  std::thread thread_;
  // Serializes Stop's joins.
  absl::Mutex stop_mu_;
};

}  // namespace switchboard::events
