#pragma once

// What the SQLite and PostgreSQL routing stores build the same way: the
// statements that write a RoutingWrite (the same rows on both), the reads of
// Load, LoadSchedules and FindClosedOffer, and how a row becomes a record.
// Backend-neutral: statements use '?' marks, and libs/storage/shared_sql.h
// binds, runs and reads them on either backend.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "libs/storage/shared_sql.h"
#include "services/routing/model.h"

namespace switchboard::routing {

using storage::SqlBytes;
using storage::SqlNull;
using storage::SqlRow;
using storage::SqlStatement;
using storage::SqlValue;

// The statements that store `write`, in the order SQLite's store always ran
// them: deleted and upserted entries, owed and settled releases, closed
// offers and their pruning, the holder ceiling, settings, schedules, the
// schedule version. Its outbox events are not among them: each store
// appends those with its backend's AppendToOutbox.
std::vector<SqlStatement> WriteStatements(const RoutingWrite& write);

// Load's reads, each with the reader of its rows.
inline constexpr char kSelectEntries[] =
    "SELECT entry_key, entry, order_key, excluded, timed_out, offer_id, offered_at_micros, "
    "offer_expires_at_micros, auto_accept, assigned_agent_id, accepted_offer_id, "
    "accepted_at_micros, requeued_from, holder_id, accepting FROM entries";
absl::StatusOr<EntryRecord> EntryFromRow(const SqlRow& row);

inline constexpr char kSelectOwedReleases[] =
    "SELECT agent_id, session_id, holder_id, owed_since_micros FROM owed_releases";
OwedRelease OwedReleaseFromRow(const SqlRow& row);

inline constexpr char kSelectSettings[] =
    "SELECT agent_id, settings, updated_at_micros FROM agent_settings";
absl::StatusOr<SettingsRecord> SettingsFromRow(const SqlRow& row);

// The counter named by its one '?' ("holder_ceiling", "schedule_version");
// no row when it was never written.
inline constexpr char kSelectCounter[] = "SELECT value FROM meta WHERE key = ?";
inline constexpr char kHolderCeiling[] = "holder_ceiling";
inline constexpr char kScheduleVersion[] = "schedule_version";

// LoadSchedules' read, in id order.
inline constexpr char kSelectSchedules[] =
    "SELECT schedule_id, schedule FROM schedules ORDER BY schedule_id";
absl::StatusOr<v1::Schedule> ScheduleFromRow(const SqlRow& row);

// FindClosedOffer's read of the offer id bound to its one '?'.
inline constexpr char kSelectClosedOffer[] =
    "SELECT offer_id, agent_id, offer, assignment, closed_at_micros FROM closed_offers "
    "WHERE offer_id = ?";
absl::StatusOr<ClosedOfferRecord> ClosedOfferFromRow(const SqlRow& row);

}  // namespace switchboard::routing
