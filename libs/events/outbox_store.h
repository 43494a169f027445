#pragma once

// Where the Relay (relay.h) takes outbox rows from and deletes them once
// published: the outbox table of a service's SQLite file
// (sqlite_outbox_store.h) or of a PostgreSQL database shared by replicas
// (postgres_outbox.h).
//
// A relay pass is Claim, then Sink::Publish of the claimed records, then
// Finish with the ids the sink confirmed. Between Claim and Finish the
// claimed rows are this store's: another store on the same outbox (another
// relay, e.g. in another replica) never claims them, nor a later row with
// one of their keys, so each key's events are published in outbox order and
// a row is published by one relay at a time.
//
// Threading: one relay thread uses a store; ReadStats may also be called
// before that thread starts.

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "libs/events/sink.h"

namespace switchboard::events {

class OutboxStore {
 public:
  struct Stats {
    // Rows waiting in the outbox (claimed or not).
    int64_t depth = 0;
    // The created_at time of the oldest waiting row; none if empty.
    std::optional<absl::Time> oldest;
  };

  virtual ~OutboxStore() = default;

  // Claims up to `limit` rows to publish now, in increasing id order. A
  // store may return fewer rows than are waiting (rows another relay holds,
  // or later rows of their keys). On error nothing stays claimed and
  // Finish must not be called.
  virtual absl::StatusOr<std::vector<OutboxRecord>> Claim(int limit) = 0;

  // Deletes the rows `published` (ids from the last Claim whose records the
  // sink confirmed) and releases the claim; called once after each
  // successful Claim, with an empty list if nothing was confirmed. On error
  // no row was deleted: they are published again later (a duplicate, never
  // a loss).
  virtual absl::Status Finish(const std::vector<int64_t>& published) = 0;

  // For the relay's gauges.
  virtual absl::StatusOr<Stats> ReadStats() = 0;
};

}  // namespace switchboard::events
