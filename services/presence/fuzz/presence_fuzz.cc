// Fuzzes the presence logic (Presence) the way PresenceService drives it:
// each input is a sequence of calls (presence_fuzz.proto) against a fresh
// SQLite store in a temporary folder and a fake clock. The adapter's checks
// (who may act for which agent, enum and page checks) are applied as the
// service applies them.
//
// Beyond "no crash, no leak, no undefined behaviour", it checks that bad
// input gets a client error (never INTERNAL or UNKNOWN), that no agent's
// capacity exceeds the limit a supervisor set, that a watcher
// sees each agent's revisions only grow, and that a restart (a new Presence
// over the same file) shows every agent as before.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <set>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "google/protobuf/util/message_differencer.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/database.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "prometheus/registry.h"
#include "services/presence/fuzz/presence_fuzz.pb.h"
#include "services/presence/presence.h"
#include "services/presence/sqlite_store.h"
#include "third_party/fuzzing/calls.h"

namespace switchboard::presence {
namespace {

using fuzzing::Check;
using fuzzing::CheckServed;

constexpr size_t kMaxCalls = 48;

// A WatchPresence subscriber: each agent's revision only grows.
class Watcher : public PresenceListener {
 public:
  void OnChange(const AgentChange& change) override {
    absl::MutexLock lock(&mu_);
    int64_t& last = last_[change.agent.agent_id];
    Check(change.agent.revision > last,
          absl::StrCat("watcher saw revision ", change.agent.revision, " of ",
                       change.agent.agent_id, " after ", last));
    last = change.agent.revision;
  }

 private:
  absl::Mutex mu_;
  std::map<std::string, int64_t> last_ ABSL_GUARDED_BY(mu_);
};

// The same agent, but for the lease (see Harness::Finish).
bool SameAgent(const AgentRecord& a, const AgentRecord& b) {
  return a.agent_id == b.agent_id && a.status == b.status &&
         google::protobuf::util::MessageDifferencer::Equals(a.profile, b.profile) &&
         a.status_changed_at == b.status_changed_at &&
         a.idle_since == b.idle_since && a.revision == b.revision &&
         a.profile_set_by == b.profile_set_by && a.profile_set_at == b.profile_set_at;
}

class Harness {
 public:
  Harness() : path_(storage::MakeTempDir() + "/presence.db"), metrics_(registry_) { Open(); }
  ~Harness() {
    Close();
    std::filesystem::remove_all(std::filesystem::path(path_).parent_path());
  }

  void Run(const fuzz::Call& call) {
    clock_.Advance(absl::Seconds(std::min<uint32_t>(call.advance_seconds(), 24 * 3600)));
    const bool agent = call.role() != fuzz::SUPERVISOR && call.role() != fuzz::SERVICE;
    const std::string self = absl::StrCat("agent-", call.caller() % 3);
    // PresenceService::TargetAgent: agents act on their own presence only;
    // others name the agent. Empty when the adapter refuses.
    auto target = [&](const std::string& requested) -> std::string {
      if (agent) return requested.empty() || requested == self ? self : "";
      return requested;
    };
    switch (call.request_case()) {
      case fuzz::Call::kSetStatus: {
        const v1::SetStatusRequest& r = call.set_status();
        if (call.role() == fuzz::SERVICE) break;
        const std::string id = target(r.agent_id());
        if (id.empty() || r.has_profile()) break;  // the adapter refuses
        Presence::SetStatusCommand command;
        command.agent_id = id;
        command.status = r.status();
        command.capacities.assign(r.capacities().begin(), r.capacities().end());
        command.device_id = r.device_id();
        absl::StatusOr<AgentRecord> record = presence_->SetStatus(command);
        CheckServed(record.status(), "SetStatus");
        if (record.ok()) {
          seen_.insert(id);
          CheckWithinLimits(*record);
        }
        break;
      }
      case fuzz::Call::kSetAgentProfile: {
        const v1::SetAgentProfileRequest& r = call.set_agent_profile();
        if (call.role() != fuzz::SUPERVISOR || !r.has_profile()) break;  // the adapter refuses
        absl::StatusOr<AgentRecord> record = presence_->SetProfile(
            r.agent_id(), r.profile(), absl::StrCat("sup-", call.caller() % 2));
        CheckServed(record.status(), "SetProfile");
        if (record.ok()) {
          seen_.insert(r.agent_id());
          CheckWithinLimits(*record);
        }
        break;
      }
      case fuzz::Call::kHeartbeat: {
        if (!agent) break;
        const std::string id = target(call.heartbeat().agent_id());
        if (!id.empty()) {
          CheckServed(presence_->Heartbeat(id, call.heartbeat().device_id()).status(),
                      "Heartbeat");
        }
        break;
      }
      case fuzz::Call::kGetAgent: {
        const std::string id = target(call.get_agent().agent_id());
        if (!id.empty()) CheckServed(presence_->GetAgent(id).status(), "GetAgent");
        break;
      }
      case fuzz::Call::kListAgents: {
        const v1::ListAgentsRequest& r = call.list_agents();
        if (agent || !v1::AgentStatus_IsValid(r.status()) ||
            !common::v1::Category_IsValid(r.category()) ||
            !common::v1::Channel_IsValid(r.channel()) || r.language().size() > 35 ||
            r.page_size() < 0 || r.page_size() > 500) {
          break;  // the adapter refuses
        }
        std::string after;
        if (!r.page_token().empty() &&
            (!absl::WebSafeBase64Unescape(r.page_token(), &after) ||
             !absl::StartsWith(after, "agents:"))) {
          break;
        }
        if (!after.empty()) after = after.substr(sizeof("agents:") - 1);
        Presence::ListFilter filter;
        filter.status = r.status();
        filter.category = r.category();
        filter.language = PrimaryLanguage(r.language());
        filter.channel = r.channel();
        presence_->ListAgents(filter, r.page_size() == 0 ? 100 : r.page_size(), after);
        break;
      }
      case fuzz::Call::kWatchPresence: {
        if (agent) break;
        auto watcher = std::make_unique<Watcher>();
        presence_->Subscribe(watcher.get());
        watchers_.push_back(std::move(watcher));
        break;
      }
      case fuzz::Call::kReserveCapacity: {
        if (call.role() != fuzz::SERVICE) break;
        const v1::ReserveCapacityRequest& r = call.reserve_capacity();
        std::optional<absl::Duration> hold;
        if (r.has_hold()) hold = protoutil::FromDuration(r.hold());
        CheckServed(presence_->Reserve(r.agent_id(), r.session_id(), r.channel(), hold,
                                       r.holder_id())
                        .status(),
                    "Reserve");
        break;
      }
      case fuzz::Call::kConfirmReservation:
        if (call.role() != fuzz::SERVICE) break;
        CheckServed(presence_
                        ->Confirm(call.confirm_reservation().agent_id(),
                                  call.confirm_reservation().session_id())
                        .status(),
                    "Confirm");
        break;
      case fuzz::Call::kReleaseCapacity: {
        if (call.role() != fuzz::SERVICE) break;
        const v1::ReleaseCapacityRequest& r = call.release_capacity();
        CheckServed(
            presence_->ReleaseCapacity(r.agent_id(), r.session_id(), r.holder_id()).status(),
            "ReleaseCapacity");
        break;
      }
      case fuzz::Call::kReconcileReservations: {
        if (call.role() != fuzz::SERVICE) break;
        const v1::ReconcileReservationsRequest& r = call.reconcile_reservations();
        if (r.live_size() > 5000) break;  // the adapter refuses
        Presence::ReconcileCommand command;
        command.fence = r.fence();
        command.agent_id_from = r.agent_id_from();
        command.agent_id_to = r.agent_id_to();
        for (const v1::HeldCapacity& held : r.live()) {
          command.live.push_back(Presence::HeldCapacity{held.agent_id(), held.session_id(),
                                                        held.channel(), held.holder_id(),
                                                        held.assigned()});
        }
        CheckServed(presence_->Reconcile(command).status(), "Reconcile");
        break;
      }
      case fuzz::Call::kExpireDue:
        CheckServed(presence_->ExpireDue().status(), "ExpireDue");
        break;
      case fuzz::Call::REQUEST_NOT_SET:
        break;
    }
  }

  // An agent never holds more capacity on a channel than a supervisor
  // granted.
  static void CheckWithinLimits(const AgentRecord& agent) {
    for (const v1::ChannelCapacity& c : agent.profile.capacities()) {
      Check(c.capacity() <= c.max_capacity(),
            absl::StrCat(agent.agent_id, " has capacity ", c.capacity(), " above its limit ",
                         c.max_capacity(), " on channel ", c.channel()));
    }
  }

  // A restart shows every agent as it was, except that an agent not OFFLINE
  // gets a fresh lease (Presence::Load): the time the service was down does
  // not count against the agents.
  void Finish() {
    std::vector<AgentRecord> before;
    for (const std::string& id : seen_) {
      absl::StatusOr<AgentRecord> record = presence_->GetAgent(id);
      Check(record.ok(), absl::StrCat("agent ", id, " is gone"));
      before.push_back(*record);
    }
    Close();
    Open();
    for (const AgentRecord& record : before) {
      absl::StatusOr<AgentRecord> after = presence_->GetAgent(record.agent_id);
      Check(after.ok() && SameAgent(record, *after),
            absl::StrCat("agent ", record.agent_id, " differs after a restart"));
      const absl::Time lease = record.status == v1::AGENT_STATUS_OFFLINE
                                   ? record.lease_expires_at
                                   : clock_.Now() + PresenceOptions().lease;
      Check(after->lease_expires_at == lease,
            absl::StrCat("agent ", record.agent_id, " has lease ",
                         absl::FormatTime(after->lease_expires_at), " after a restart, not ",
                         absl::FormatTime(lease)));
    }
  }

 private:
  void Open() {
    db_ = *storage::Database::OpenMigrated({path_}, PresenceMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    store_ = std::make_unique<SqlitePresenceStore>(committer_.get(), "switchboard.presence.v1",
                                                   nullptr);
    presence_ = std::make_unique<Presence>(store_.get(), &clock_, &metrics_, PresenceOptions());
    CheckServed(presence_->Load(), "Load");
  }

  void Close() {
    for (const auto& watcher : watchers_) presence_->Unsubscribe(watcher.get());
    watchers_.clear();
    presence_.reset();
    committer_->Stop();
    store_.reset();
    committer_.reset();
    db_.reset();
  }

  const std::string path_;
  prometheus::Registry registry_;
  PresenceMetrics metrics_;
  FakeClock clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqlitePresenceStore> store_;
  std::unique_ptr<Presence> presence_;
  std::vector<std::unique_ptr<Watcher>> watchers_;
  std::set<std::string> seen_;
};

}  // namespace
}  // namespace switchboard::presence

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using switchboard::presence::fuzz::Call;
  const std::vector<Call> calls =
      switchboard::fuzzing::ReadCalls<Call>(data, size, switchboard::presence::kMaxCalls);
  if (calls.empty()) return 0;
  switchboard::presence::Harness harness;
  for (const Call& call : calls) harness.Run(call);
  harness.Finish();
  return 0;
}
