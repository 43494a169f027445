#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/storage/ordered_commits.h"
#include "services/routing/model.h"
#include "services/routing/schedule.h"
#include "services/routing/store.h"

namespace switchboard::routing {

// At most this many schedules, and selectors per schedule.
inline constexpr int kMaxSchedules = 100;
inline constexpr int kMaxSelectorsPerSchedule = 50;

// Validates a schedule as SetSchedule receives it and builds its Schedule;
// `applies_to` languages are normalised to their primary subtag in
// `schedule`. Errors: InvalidArgument naming the field (schedule_id,
// display_name, time_zone, weekly_hours[i].day / start_time / end_time,
// special_days[i].start / end / description, applies_to[i].channel /
// category / language, a repeated selector).
absl::StatusOr<Schedule> BuildSchedule(v1::Schedule& schedule);

// The schedule governing one queue (none: always open).
struct Governing {
  std::shared_ptr<const Schedule> schedule;  // null when none applies
  std::string schedule_id;
  int64_t version = 0;
};

// Routing's schedules (hours of operation) and the queues they govern,
// durable in the routing store and versioned: every change takes the next
// version of a counter shared by all schedules (so versions are never
// reused, even after a delete) and emits routing.schedule_changed in the
// same commit.
//
// A session queue is governed by the most specific selector matching it
// (see QueueSelector in routing_service.proto); complaint queues and
// queues no selector matches are always open.
//
// Changes are serialised, committed, then applied to memory: readers never
// see a change that is not durable. Thread-safe; Set and Delete block on the
// commit (call from worker threads).
class ScheduleBook {
 public:
  // None owned; all must outlive the book. `on_change` runs after each
  // applied change (the router re-evaluates its queues); may be empty.
  ScheduleBook(RoutingStore* store, Clock* clock, std::function<void()> on_change);

  // Reads the stored schedules. Call once, before anything else.
  // Errors: the store's; DataLoss for a stored schedule that no longer
  // validates (e.g. a time zone gone from tzdata).
  absl::Status Load();

  // Creates or replaces `schedule` (output-only fields ignored) as
  // `actor_id`. `expected_version`: see SetScheduleRequest. Returns it as
  // stored. Errors: InvalidArgument (BuildSchedule's); FailedPrecondition
  // (stale expected version, a selector held by another schedule, too many
  // schedules); the store's admission and commit errors.
  absl::StatusOr<v1::Schedule> Set(v1::Schedule schedule, std::optional<int64_t> expected_version,
                                   const std::string& actor_id);
  // Deletes `schedule_id`; returns whether it existed. Errors:
  // FailedPrecondition (stale expected version); the store's.
  absl::StatusOr<bool> Delete(const std::string& schedule_id,
                              std::optional<int64_t> expected_version,
                              const std::string& actor_id);

  // Errors: NotFound.
  absl::StatusOr<v1::Schedule> Get(const std::string& schedule_id) const;
  // Up to `limit` schedules with ids after `after`, in id order; `more`
  // tells whether others follow.
  std::vector<v1::Schedule> List(const std::string& after, size_t limit, bool* more) const;
  // The governing schedule of `queue`.
  Governing For(const QueueId& queue) const;
  // `queue`'s hours at `now`.
  v1::QueueHours HoursOf(const QueueId& queue, absl::Time now) const;

 private:
  // (channel, category, language); unset values match any.
  using Selector = std::tuple<int, int, std::string>;
  struct Record {
    v1::Schedule proto;
    std::shared_ptr<const Schedule> schedule;
  };

  // Commits `write` and waits until it is durable (or failed).
  absl::Status Commit(RoutingWrite write);
  void Index(const Record& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unindex(const v1::Schedule& schedule) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  RoutingStore* const store_;
  Clock* const clock_;
  const std::function<void()> on_change_;
  // Each change waits for its own write; memory changes only once it is
  // durable, so a failed one stops nothing else.
  storage::OrderedCommits commits_;

  // Serialises changes, held across their commits.
  absl::Mutex write_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  mutable absl::Mutex mu_;
  std::map<std::string, Record> schedules_ ABSL_GUARDED_BY(mu_);
  std::map<Selector, std::string> selectors_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace switchboard::routing
