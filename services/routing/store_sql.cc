#include "services/routing/store_sql.h"

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "libs/storage/time_column.h"

namespace switchboard::routing {
namespace {

using storage::FromMicros;
using storage::ToMicros;

// Agent ids never contain a comma (validation::ValidateId).
std::string JoinIds(const std::vector<std::string>& ids) { return absl::StrJoin(ids, ","); }

std::vector<std::string> SplitIds(const std::string& joined) {
  if (joined.empty()) return {};
  return absl::StrSplit(joined, ',');
}

// Upserts change rows in place (ON CONFLICT ... DO UPDATE, which both
// backends know) rather than SQLite's INSERT OR REPLACE, which PostgreSQL
// lacks. The counters and owed releases only rise: the WHERE of their
// update keeps the higher value, as SQLite's max() did.
constexpr char kDeleteEntry[] = "DELETE FROM entries WHERE entry_key = ?";
constexpr char kUpsertEntry[] =
    "INSERT INTO entries(entry_key, entry, order_key, excluded, timed_out, offer_id, "
    "offered_at_micros, offer_expires_at_micros, auto_accept, assigned_agent_id, "
    "accepted_offer_id, accepted_at_micros, requeued_from, holder_id, accepting) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(entry_key) DO UPDATE SET "
    "entry = excluded.entry, order_key = excluded.order_key, excluded = excluded.excluded, "
    "timed_out = excluded.timed_out, offer_id = excluded.offer_id, "
    "offered_at_micros = excluded.offered_at_micros, "
    "offer_expires_at_micros = excluded.offer_expires_at_micros, "
    "auto_accept = excluded.auto_accept, assigned_agent_id = excluded.assigned_agent_id, "
    "accepted_offer_id = excluded.accepted_offer_id, "
    "accepted_at_micros = excluded.accepted_at_micros, "
    "requeued_from = excluded.requeued_from, holder_id = excluded.holder_id, "
    "accepting = excluded.accepting";
constexpr char kOweRelease[] =
    "INSERT INTO owed_releases(agent_id, session_id, holder_id, owed_since_micros) "
    "VALUES (?, ?, ?, ?) ON CONFLICT(agent_id, session_id) DO UPDATE SET "
    "holder_id = excluded.holder_id WHERE excluded.holder_id > owed_releases.holder_id";
constexpr char kSettleRelease[] =
    "DELETE FROM owed_releases WHERE agent_id = ? AND session_id = ? AND holder_id <= ?";
constexpr char kUpsertClosedOffer[] =
    "INSERT INTO closed_offers(offer_id, agent_id, offer, assignment, closed_at_micros) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT(offer_id) DO UPDATE SET agent_id = excluded.agent_id, "
    "offer = excluded.offer, assignment = excluded.assignment, "
    "closed_at_micros = excluded.closed_at_micros";
constexpr char kPruneClosedOffers[] =
    "DELETE FROM closed_offers WHERE offer_id IN (SELECT offer_id FROM closed_offers "
    "WHERE closed_at_micros < ? ORDER BY closed_at_micros LIMIT ?)";
constexpr char kRaiseCounter[] =
    "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
    "value = excluded.value WHERE excluded.value > meta.value";
constexpr char kUpsertSettings[] =
    "INSERT INTO agent_settings(agent_id, settings, updated_at_micros) VALUES (?, ?, ?) "
    "ON CONFLICT(agent_id) DO UPDATE SET settings = excluded.settings, "
    "updated_at_micros = excluded.updated_at_micros";
constexpr char kUpsertSchedule[] =
    "INSERT INTO schedules(schedule_id, version, schedule) VALUES (?, ?, ?) "
    "ON CONFLICT(schedule_id) DO UPDATE SET version = excluded.version, "
    "schedule = excluded.schedule";
constexpr char kDeleteSchedule[] = "DELETE FROM schedules WHERE schedule_id = ?";

SqlStatement UpsertEntry(const EntryRecord& e) {
  // The position is computed when read, never stored.
  v1::QueueEntry entry = e.entry;
  entry.clear_position();
  return {kUpsertEntry,
          {e.key, SqlBytes{entry.SerializeAsString()}, e.order, JoinIds(e.excluded),
           JoinIds(e.timed_out), e.offer_id, ToMicros(e.offered_at),
           ToMicros(e.offer_expires_at), int64_t{e.auto_accept}, e.assigned_agent_id,
           e.accepted_offer_id, ToMicros(e.accepted_at), e.requeued_from, e.holder_id,
           int64_t{e.accepting}}};
}

SqlStatement UpsertClosedOffer(const ClosedOfferRecord& c) {
  SqlValue assignment = SqlNull{};
  if (c.assignment.has_value()) assignment = SqlBytes{c.assignment->SerializeAsString()};
  return {kUpsertClosedOffer,
          {c.offer_id, c.agent_id, SqlBytes{c.offer.SerializeAsString()},
           std::move(assignment), ToMicros(c.closed_at)}};
}

}  // namespace

std::vector<SqlStatement> WriteStatements(const RoutingWrite& write) {
  std::vector<SqlStatement> out;
  for (const std::string& key : write.deleted_entries) out.push_back({kDeleteEntry, {key}});
  for (const EntryRecord& e : write.upserted_entries) out.push_back(UpsertEntry(e));
  for (const OwedRelease& r : write.owed_releases) {
    out.push_back(
        {kOweRelease, {r.agent_id, r.session_id, r.holder_id, ToMicros(r.owed_since)}});
  }
  for (const OwedRelease& r : write.settled_releases) {
    out.push_back({kSettleRelease, {r.agent_id, r.session_id, r.holder_id}});
  }
  for (const ClosedOfferRecord& c : write.closed_offers) out.push_back(UpsertClosedOffer(c));
  if (write.prune_closed_offers_limit > 0) {
    out.push_back({kPruneClosedOffers,
                   {ToMicros(write.prune_closed_offers_before),
                    int64_t{write.prune_closed_offers_limit}}});
  }
  if (write.holder_ceiling.has_value()) {
    out.push_back({kRaiseCounter, {std::string(kHolderCeiling), *write.holder_ceiling}});
  }
  for (const SettingsRecord& r : write.settings) {
    out.push_back({kUpsertSettings,
                   {r.agent_id, SqlBytes{r.settings.SerializeAsString()},
                    ToMicros(r.updated_at)}});
  }
  for (const v1::Schedule& schedule : write.schedules) {
    out.push_back({kUpsertSchedule,
                   {schedule.schedule_id(), schedule.version(),
                    SqlBytes{schedule.SerializeAsString()}}});
  }
  for (const std::string& id : write.deleted_schedules) {
    out.push_back({kDeleteSchedule, {id}});
  }
  if (write.schedule_version.has_value()) {
    out.push_back({kRaiseCounter, {std::string(kScheduleVersion), *write.schedule_version}});
  }
  return out;
}

absl::StatusOr<EntryRecord> EntryFromRow(const SqlRow& row) {
  EntryRecord e;
  e.key = row.Text(0);
  if (!e.entry.ParseFromString(row.Bytes(1))) {
    return absl::DataLossError("routing store: unreadable entry " + e.key);
  }
  e.order = row.Int(2);
  e.excluded = SplitIds(row.Text(3));
  e.timed_out = SplitIds(row.Text(4));
  e.offer_id = row.Text(5);
  e.offered_at = FromMicros(row.Int(6));
  e.offer_expires_at = FromMicros(row.Int(7));
  e.auto_accept = row.Int(8) != 0;
  e.assigned_agent_id = row.Text(9);
  e.accepted_offer_id = row.Text(10);
  e.accepted_at = FromMicros(row.Int(11));
  e.requeued_from = row.Text(12);
  e.holder_id = row.Int(13);
  e.accepting = row.Int(14) != 0;
  return e;
}

OwedRelease OwedReleaseFromRow(const SqlRow& row) {
  return OwedRelease{row.Text(0), row.Text(1), row.Int(2), FromMicros(row.Int(3))};
}

absl::StatusOr<SettingsRecord> SettingsFromRow(const SqlRow& row) {
  SettingsRecord r;
  r.agent_id = row.Text(0);
  if (!r.settings.ParseFromString(row.Bytes(1))) {
    return absl::DataLossError("routing store: unreadable settings of " + r.agent_id);
  }
  r.updated_at = FromMicros(row.Int(2));
  return r;
}

absl::StatusOr<v1::Schedule> ScheduleFromRow(const SqlRow& row) {
  v1::Schedule schedule;
  if (!schedule.ParseFromString(row.Bytes(1))) {
    return absl::DataLossError("routing store: unreadable schedule " + row.Text(0));
  }
  return schedule;
}

absl::StatusOr<ClosedOfferRecord> ClosedOfferFromRow(const SqlRow& row) {
  ClosedOfferRecord record;
  record.offer_id = row.Text(0);
  record.agent_id = row.Text(1);
  if (!record.offer.ParseFromString(row.Bytes(2))) {
    return absl::DataLossError("routing store: unreadable closed offer " + record.offer_id);
  }
  if (!row.IsNull(3)) {
    v1::Assignment assignment;
    if (!assignment.ParseFromString(row.Bytes(3))) {
      return absl::DataLossError("routing store: unreadable assignment of offer " +
                                 record.offer_id);
    }
    record.assignment = std::move(assignment);
  }
  record.closed_at = FromMicros(row.Int(4));
  return record;
}

}  // namespace switchboard::routing
