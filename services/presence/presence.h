#pragma once

#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/clock/clock.h"
#include "libs/storage/ordered_commits.h"
#include "services/presence/metrics.h"
#include "services/presence/model.h"
#include "services/presence/store.h"

namespace switchboard::presence {

struct PresenceOptions {
  // How long a lease lasts without a renewal.
  absl::Duration lease = absl::Seconds(30);
  // Hold time of a reservation whose request gives none.
  absl::Duration default_hold = absl::Seconds(60);
};

// Receives committed changes. Called on the store's commit thread, in commit
// order; must not block.
class PresenceListener {
 public:
  virtual ~PresenceListener() = default;
  virtual void OnChange(const AgentChange& change) = 0;
};

// The presence logic: agents' status, skills, capacity, load and leases.
// Skills and capacity limits are a supervisor's (SetProfile); an agent sets
// the status and a capacity within the limits (SetStatus).
//
// State lives in memory and in the store: every change is decided under one
// lock (so capacity checks and reservations are atomic), queued to the store
// in that order, and answered only after it is committed. A new
// reservation's write carries its capacity check (CapacityGuard), which the
// store repeats in the write's transaction; it fails only if the memory is
// not the store's only writer, and then, like any failed commit, stops
// writes. A write that finds
// nothing to change (a client's retry) is answered only once the newest
// commit decided before it is durable: the first attempt's commit is that
// one or an earlier one, and commits complete in order. If a commit fails
// the memory may be ahead of the disk, so the service refuses further writes
// (and such retries) with UNAVAILABLE until it restarts and reloads the
// store (fail-stop rather than serve state that was never saved). Client
// writes pass the store's admission check (PresenceStore::Admit) before
// anything is decided.
//
// Memory is bounded by open work: one record per agent (staff, bounded by
// headcount; OFFLINE agents are kept so their profile survives) and one per
// reservation (bounded by the agents' capacities; confirmed ones are freed
// by ReleaseCapacity or by Reconcile).
//
// Heartbeats only extend leases in memory: a renewal is not worth an fsync.
// After a restart every agent that was not OFFLINE gets a fresh lease, so
// their devices have one lease period to renew it.
//
// Thread-safe. Blocking (waits for commits): call from worker threads.
class Presence {
 public:
  Presence(PresenceStore* store, Clock* clock, PresenceMetrics* metrics,
           PresenceOptions options);

  // Reads the store. Call once, before anything else.
  absl::Status Load();

  struct SetStatusCommand {
    std::string agent_id;
    v1::AgentStatus status = v1::AGENT_STATUS_UNSPECIFIED;
    // The capacity the agent takes from now on, per channel listed
    // (`channel` and `capacity` only; other channels keep theirs).
    std::vector<v1::ChannelCapacity> capacities;
    std::string device_id;
  };
  // Errors: InvalidArgument naming the field; PermissionDenied for a
  // capacity above the channel's max_capacity (nothing changes).
  absl::StatusOr<AgentRecord> SetStatus(const SetStatusCommand& command);

  // A supervisor's SetAgentProfile: `profile` (as NormalizeProfile accepts
  // it; each capacity is the limit granted) replaces the agent's display
  // name, skills and limits, and each channel's capacity becomes its limit.
  // Status and lease are untouched; an unknown agent is created OFFLINE.
  // Errors: InvalidArgument naming the field.
  absl::StatusOr<AgentRecord> SetProfile(const std::string& agent_id,
                                         const v1::AgentProfile& profile,
                                         const std::string& supervisor_id);

  // Renews the lease. Errors: NotFound, FailedPrecondition (OFFLINE).
  absl::StatusOr<AgentRecord> Heartbeat(const std::string& agent_id,
                                        const std::string& device_id);

  // Errors: NotFound.
  absl::StatusOr<AgentRecord> GetAgent(const std::string& agent_id) const;

  struct ListFilter {
    v1::AgentStatus status = v1::AGENT_STATUS_UNSPECIFIED;
    common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
    std::string language;  // normalized primary subtag, empty for any
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  };
  struct ListPage {
    std::vector<AgentRecord> agents;
    std::string last_agent_id;  // empty on the last page
  };
  // Agents after `after_agent_id` (exclusive) in id order matching `filter`.
  ListPage ListAgents(const ListFilter& filter, int page_size,
                      const std::string& after_agent_id) const;

  struct Reservation {
    ReservationRecord reservation;
    AgentRecord agent;
  };
  // Errors: see ReserveCapacity in presence_service.proto.
  absl::StatusOr<Reservation> Reserve(const std::string& agent_id,
                                      const std::string& session_id,
                                      common::v1::Channel channel,
                                      std::optional<absl::Duration> hold,
                                      int64_t holder_id = 0);
  absl::StatusOr<ReservationRecord> Confirm(const std::string& agent_id,
                                            const std::string& session_id);
  struct Release {
    bool released = false;
    AgentRecord agent;
  };
  // `holder_id` above 0 releases only a reservation held at or below it.
  absl::StatusOr<Release> ReleaseCapacity(const std::string& agent_id,
                                          const std::string& session_id,
                                          int64_t holder_id = 0);

  // See ReconcileReservations in presence_service.proto.
  struct HeldCapacity {
    std::string agent_id;
    std::string session_id;
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
    int64_t holder_id = 0;
    bool assigned = false;
  };
  struct ReconcileCommand {
    int64_t fence = 0;
    std::string agent_id_from;  // inclusive; empty: unbounded
    std::string agent_id_to;    // exclusive; empty: unbounded
    std::vector<HeldCapacity> live;
  };
  struct ReconcileResult {
    std::vector<ReservationRecord> released;
    std::vector<ReservationRecord> restored;
    int confirmed = 0;
    std::vector<HeldCapacity> missing;
  };
  // Errors: InvalidArgument naming the field.
  absl::StatusOr<ReconcileResult> Reconcile(const ReconcileCommand& command);

  // Sets OFFLINE every agent whose lease lapsed and drops every unconfirmed
  // reservation past its hold, as of the clock's Now. Returns how many
  // leases lapsed. Called periodically by the service.
  absl::StatusOr<int> ExpireDue();

  // Registers `listener` for every change committed after the returned
  // snapshot (agents not OFFLINE, by id) and its revision. Changes with a
  // revision at or below the snapshot's are not delivered.
  struct Snapshot {
    std::vector<AgentRecord> agents;
    int64_t revision = 0;
  };
  Snapshot Subscribe(PresenceListener* listener);
  void Unsubscribe(PresenceListener* listener);

  // How often devices should renew: a third of the lease, so that one lost
  // heartbeat does not lapse it.
  absl::Duration heartbeat_interval() const { return options_.lease / 3; }

 private:
  // Queues `write` to the store; watchers get `changes` once it commits.
  std::shared_ptr<storage::PendingWrite> Commit(PresenceWrite write,
                                                std::vector<AgentChange> changes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AddReleaseTo(PresenceWrite& write, std::vector<AgentChange>& changes,
                    AgentRecord& agent, const ReservationRecord& reservation,
                    events::v1::AgentLoadChanged::Change change, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(const std::vector<AgentChange>& changes);

  void SetStatusOf(AgentRecord& agent, v1::AgentStatus status, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::ChannelCapacity* CapacityOn(AgentRecord& agent,
                                  common::v1::Channel channel);
  void AddLoad(AgentRecord& agent, common::v1::Channel channel, int delta,
               absl::Time now);
  events::v1::Event StatusEvent(const AgentRecord& agent,
                                v1::AgentStatus previous,
                                v1::ChangeReason reason, absl::Time now);
  events::v1::Event ProfileEvent(const AgentRecord& agent, const AgentRecord& before,
                                 absl::Time now);
  events::v1::Event LoadEvent(const AgentRecord& agent,
                              const ReservationRecord& reservation,
                              events::v1::AgentLoadChanged::Change change,
                              absl::Time now);
  void CountStatus(v1::AgentStatus from, v1::AgentStatus to);

  PresenceStore* const store_;
  Clock* const clock_;
  PresenceMetrics* const metrics_;
  const PresenceOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, AgentRecord> agents_ ABSL_GUARDED_BY(mu_);
  // By session id: a session holds capacity at one agent at most.
  absl::flat_hash_map<std::string, ReservationRecord> reservations_
      ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  // Writes are queued under mu_; answers wait for them outside it.
  storage::OrderedCommits commits_;

  // Separate from mu_: commit callbacks publish while other calls decide.
  absl::Mutex listeners_mu_;
  absl::flat_hash_map<PresenceListener*, int64_t> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
};

// Normalizes and checks a profile from a supervisor: display name,
// categories, languages (lower-cased BCP 47 tags), capacities (0 to 100, one
// per channel; each becomes both `capacity` and `max_capacity`). Errors name
// the field, prefixed with `field`.
absl::StatusOr<v1::AgentProfile> NormalizeProfile(absl::string_view field,
                                                  const v1::AgentProfile& profile);

// "zh-CN" -> "zh": the part of a language tag routing matches on.
std::string PrimaryLanguage(absl::string_view tag);

}  // namespace switchboard::presence
