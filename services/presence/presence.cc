#include "services/presence/presence.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/events/envelope.h"
#include "libs/log/log.h"
#include "libs/validation/validation.h"

namespace switchboard::presence {
namespace {

constexpr char kProducer[] = "presence";
constexpr int kMaxSkills = 16;
constexpr int kMaxCapacity = 100;
constexpr size_t kMaxDisplayName = 128;
constexpr absl::Duration kMinHold = absl::Seconds(1);
constexpr absl::Duration kMaxHold = absl::Minutes(10);

bool IsLanguageTag(absl::string_view tag) {
  if (tag.size() < 2 || tag.size() > 35) return false;
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return absl::ascii_isalpha(static_cast<unsigned char>(tag[0]));
}

bool Matches(const AgentRecord& agent, const Presence::ListFilter& filter) {
  if (filter.status != v1::AGENT_STATUS_UNSPECIFIED && agent.status != filter.status) {
    return false;
  }
  const v1::Skills& skills = agent.profile.skills();
  if (filter.category != common::v1::CATEGORY_UNSPECIFIED &&
      std::find(skills.categories().begin(), skills.categories().end(),
                filter.category) == skills.categories().end()) {
    return false;
  }
  if (!filter.language.empty() &&
      std::none_of(skills.languages().begin(), skills.languages().end(),
                   [&](const std::string& l) {
                     return PrimaryLanguage(l) == filter.language;
                   })) {
    return false;
  }
  if (filter.channel != common::v1::CHANNEL_UNSPECIFIED &&
      std::none_of(agent.profile.capacities().begin(),
                   agent.profile.capacities().end(),
                   [&](const v1::ChannelCapacity& c) {
                     return c.channel() == filter.channel && c.capacity() > 0;
                   })) {
    return false;
  }
  return true;
}

int TotalLoad(const AgentRecord& agent) {
  int total = 0;
  for (const auto& c : agent.profile.capacities()) total += c.load();
  return total;
}

}  // namespace

std::string PrimaryLanguage(absl::string_view tag) {
  return absl::AsciiStrToLower(tag.substr(0, tag.find('-')));
}

absl::StatusOr<v1::AgentProfile> NormalizeProfile(absl::string_view field,
                                                  const v1::AgentProfile& profile) {
  v1::AgentProfile out;
  if (absl::Status s = validation::ValidateText(
          absl::StrCat(field, ".display_name"), profile.display_name(),
          kMaxDisplayName);
      !s.ok()) {
    return s;
  }
  out.set_display_name(profile.display_name());

  const v1::Skills& skills = profile.skills();
  if (skills.categories_size() > kMaxSkills || skills.languages_size() > kMaxSkills) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".skills: at most ", kMaxSkills, " categories and ", kMaxSkills,
        " languages"));
  }
  std::set<int> categories;
  for (int category : skills.categories()) {
    if (category == common::v1::CATEGORY_UNSPECIFIED ||
        !common::v1::Category_IsValid(category)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".skills.categories: unknown category ", category));
    }
    if (!categories.insert(category).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".skills.categories: duplicate ",
          common::v1::Category_Name(category)));
    }
    out.mutable_skills()->add_categories(
        static_cast<common::v1::Category>(category));
  }
  std::set<std::string> languages;
  for (const std::string& language : skills.languages()) {
    if (!IsLanguageTag(language)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".skills.languages: \"", validation::IsValidUtf8(language) ? language : "?",
          "\" is not a BCP 47 tag such as en or zh-CN"));
    }
    std::string lower = absl::AsciiStrToLower(language);
    if (!languages.insert(lower).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".skills.languages: duplicate ", lower));
    }
    out.mutable_skills()->add_languages(lower);
  }
  std::set<int> channels;
  for (const v1::ChannelCapacity& capacity : profile.capacities()) {
    const int channel = capacity.channel();
    if (channel == common::v1::CHANNEL_UNSPECIFIED ||
        !common::v1::Channel_IsValid(channel)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".capacities.channel: unknown channel ", channel));
    }
    if (!channels.insert(channel).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".capacities: duplicate channel ",
          common::v1::Channel_Name(channel)));
    }
    if (capacity.capacity() < 0 || capacity.capacity() > kMaxCapacity) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".capacities.capacity: must be 0 to ", kMaxCapacity, ", got ",
          capacity.capacity()));
    }
    v1::ChannelCapacity* c = out.add_capacities();
    c->set_channel(capacity.channel());
    c->set_capacity(capacity.capacity());
    c->set_max_capacity(capacity.capacity());
  }
  return out;
}

Presence::Presence(PresenceStore* store, Clock* clock, PresenceMetrics* metrics,
                   PresenceOptions options)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      options_(options),
      commits_("presence", storage::OrderedCommits::FailedWrite::kStoreError) {}

absl::Status Presence::Load() {
  absl::StatusOr<PresenceStore::Contents> contents = store_->Load();
  if (!contents.ok()) return contents.status();
  absl::MutexLock lock(&mu_);
  const absl::Time now = clock_->Now();
  for (AgentRecord& agent : contents->agents) {
    revision_ = std::max(revision_, agent.revision);
    if (agent.status != v1::AGENT_STATUS_OFFLINE) {
      agent.lease_expires_at = now + options_.lease;
    }
    for (auto& c : *agent.profile.mutable_capacities()) {
      c.set_load(0);
      // A profile stored before supervisors set limits: what the agent had
      // declared is kept as the limit (`profile_set_by` stays empty, so
      // supervisors can find and review it).
      if (agent.profile_set_by.empty() && c.max_capacity() == 0) {
        c.set_max_capacity(c.capacity());
      }
    }
    CountStatus(v1::AGENT_STATUS_UNSPECIFIED, agent.status);
    agents_[agent.agent_id] = std::move(agent);
  }
  for (ReservationRecord& reservation : contents->reservations) {
    auto it = agents_.find(reservation.agent_id);
    if (it == agents_.end()) continue;
    if (v1::ChannelCapacity* c = CapacityOn(it->second, reservation.channel)) {
      c->set_load(c->load() + 1);
    }
    reservations_[reservation.session_id] = std::move(reservation);
  }
  return absl::OkStatus();
}

std::shared_ptr<storage::PendingWrite> Presence::Commit(PresenceWrite write,
                                                       std::vector<AgentChange> changes) {
  return commits_.Commit(*store_, std::move(write),
                         {[this, changes = std::move(changes)] { Publish(changes); }});
}

void Presence::Publish(const std::vector<AgentChange>& changes) {
  absl::MutexLock lock(&listeners_mu_);
  for (const AgentChange& change : changes) {
    for (const auto& [listener, snapshot_revision] : listeners_) {
      if (change.agent.revision > snapshot_revision) listener->OnChange(change);
    }
  }
}

void Presence::CountStatus(v1::AgentStatus from, v1::AgentStatus to) {
  if (metrics_ == nullptr) return;
  if (from != v1::AGENT_STATUS_UNSPECIFIED) metrics_->agents(from).Decrement();
  metrics_->agents(to).Increment();
}

void Presence::SetStatusOf(AgentRecord& agent, v1::AgentStatus status,
                           absl::Time now) {
  if (agent.status == status) return;
  CountStatus(agent.status, status);
  if (agent.status == v1::AGENT_STATUS_OFFLINE) agent.idle_since = now;
  agent.status = status;
  agent.status_changed_at = now;
}

v1::ChannelCapacity* Presence::CapacityOn(AgentRecord& agent,
                                          common::v1::Channel channel) {
  for (auto& c : *agent.profile.mutable_capacities()) {
    if (c.channel() == channel) return &c;
  }
  return nullptr;
}

void Presence::AddLoad(AgentRecord& agent, common::v1::Channel channel,
                       int delta, absl::Time now) {
  v1::ChannelCapacity* c = CapacityOn(agent, channel);
  if (c == nullptr) {
    // The profile dropped the channel while a session still held capacity on
    // it: keep counting it so the release balances.
    c = agent.profile.add_capacities();
    c->set_channel(channel);
  }
  c->set_load(std::max(0, c->load() + delta));
  if (TotalLoad(agent) == 0) agent.idle_since = now;
}

events::v1::Event Presence::StatusEvent(const AgentRecord& agent,
                                        v1::AgentStatus previous,
                                        v1::ChangeReason reason, absl::Time now) {
  events::v1::Event event;
  events::v1::AgentStatusChanged* payload = event.mutable_agent_status_changed();
  payload->set_agent_id(agent.agent_id);
  payload->set_previous_status(previous);
  payload->set_status(agent.status);
  payload->set_reason(reason);
  *payload->mutable_skills() = agent.profile.skills();
  *payload->mutable_capacities() = agent.profile.capacities();
  events::Seal(event, kProducer, agent.agent_id, now).IgnoreError();
  return event;
}

events::v1::Event Presence::ProfileEvent(const AgentRecord& agent, const AgentRecord& before,
                                         absl::Time now) {
  events::v1::Event event;
  events::v1::AgentProfileSet* payload = event.mutable_agent_profile_set();
  payload->set_agent_id(agent.agent_id);
  payload->set_set_by(agent.profile_set_by);
  *payload->mutable_skills() = agent.profile.skills();
  *payload->mutable_capacities() = agent.profile.capacities();
  *payload->mutable_previous_skills() = before.profile.skills();
  *payload->mutable_previous_capacities() = before.profile.capacities();
  events::Seal(event, kProducer, agent.agent_id, now).IgnoreError();
  return event;
}

events::v1::Event Presence::LoadEvent(const AgentRecord& agent,
                                      const ReservationRecord& reservation,
                                      events::v1::AgentLoadChanged::Change change,
                                      absl::Time now) {
  events::v1::Event event;
  events::v1::AgentLoadChanged* payload = event.mutable_agent_load_changed();
  payload->set_agent_id(agent.agent_id);
  payload->set_session_id(reservation.session_id);
  payload->set_channel(reservation.channel);
  payload->set_change(change);
  for (const auto& c : agent.profile.capacities()) {
    if (c.channel() == reservation.channel) {
      payload->set_load(c.load());
      payload->set_capacity(c.capacity());
    }
  }
  events::Seal(event, kProducer, agent.agent_id, now).IgnoreError();
  return event;
}

absl::StatusOr<AgentRecord> Presence::SetStatus(const SetStatusCommand& command) {
  if (absl::Status s = validation::ValidateId("agent_id", command.agent_id); !s.ok()) {
    return s;
  }
  if (command.status == v1::AGENT_STATUS_UNSPECIFIED ||
      !v1::AgentStatus_IsValid(command.status)) {
    return absl::InvalidArgumentError(
        absl::StrCat("status: must be ONLINE, AWAY, BUSY or OFFLINE, got ",
                     static_cast<int>(command.status)));
  }
  if (absl::Status s = validation::ValidateText("device_id", command.device_id, 128);
      !s.ok()) {
    return s;
  }
  std::set<int> channels;
  for (const v1::ChannelCapacity& c : command.capacities) {
    if (c.channel() == common::v1::CHANNEL_UNSPECIFIED ||
        !common::v1::Channel_IsValid(c.channel())) {
      return absl::InvalidArgumentError(
          absl::StrCat("capacities.channel: unknown channel ", static_cast<int>(c.channel())));
    }
    if (!channels.insert(c.channel()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "capacities: duplicate channel ", common::v1::Channel_Name(c.channel())));
    }
    if (c.capacity() < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "capacities.capacity: must not be negative, got ", c.capacity()));
    }
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  AgentRecord result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    // The limits are checked before anything changes: a refused call
    // changes nothing. An agent presence does not know has none.
    auto known = agents_.find(command.agent_id);
    for (const v1::ChannelCapacity& wanted : command.capacities) {
      const v1::ChannelCapacity* current =
          known == agents_.end() ? nullptr : CapacityOn(known->second, wanted.channel());
      const int limit = current == nullptr ? 0 : current->max_capacity();
      if (wanted.capacity() > limit) {
        return absl::PermissionDeniedError(absl::StrCat(
            "capacities.capacity: at most ", limit, " on ",
            common::v1::Channel_Name(wanted.channel()),
            ", the limit a supervisor set (SetAgentProfile)"));
      }
    }
    auto [it, inserted] = agents_.try_emplace(command.agent_id);
    AgentRecord& agent = it->second;
    if (inserted) {
      agent.agent_id = command.agent_id;
      agent.status_changed_at = now;
      agent.idle_since = now;
      CountStatus(v1::AGENT_STATUS_UNSPECIFIED, agent.status);
    }
    const AgentRecord before = agent;
    for (const v1::ChannelCapacity& wanted : command.capacities) {
      if (v1::ChannelCapacity* current = CapacityOn(agent, wanted.channel())) {
        current->set_capacity(wanted.capacity());
      }
    }
    SetStatusOf(agent, command.status, now);
    agent.lease_expires_at = command.status == v1::AGENT_STATUS_OFFLINE
                                 ? absl::InfinitePast()
                                 : now + options_.lease;
    const bool changed =
        inserted || before.status != agent.status ||
        before.profile.SerializeAsString() != agent.profile.SerializeAsString();
    if (changed) {
      agent.revision = ++revision_;
      PresenceWrite write;
      write.agents.push_back(agent);
      write.events.push_back(
          StatusEvent(agent, before.status, v1::CHANGE_REASON_STATUS_SET, now));
      pending = Commit(std::move(write),
                       {AgentChange{agent, before.status, v1::CHANGE_REASON_STATUS_SET}});
      log::Info("agent_status_set",
                {{"agent_id", agent.agent_id},
                 {"status", v1::AgentStatus_Name(agent.status)},
                 {"previous_status", v1::AgentStatus_Name(before.status)},
                 {"device_id", command.device_id}});
    } else {
      // Nothing changed (a retry, or a renewal by SetStatus): answer once
      // what it reports is durable.
      pending = commits_.Newest();
    }
    result = agent;
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<AgentRecord> Presence::SetProfile(const std::string& agent_id,
                                                 const v1::AgentProfile& profile,
                                                 const std::string& supervisor_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  absl::StatusOr<v1::AgentProfile> normalized = NormalizeProfile("profile", profile);
  if (!normalized.ok()) return normalized.status();
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  AgentRecord result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    auto [it, inserted] = agents_.try_emplace(agent_id);
    AgentRecord& agent = it->second;
    if (inserted) {
      agent.agent_id = agent_id;
      agent.status_changed_at = now;
      agent.idle_since = now;
      CountStatus(v1::AGENT_STATUS_UNSPECIFIED, agent.status);
    }
    const AgentRecord before = agent;
    // Loads belong to presence, not to the supervisor: carry them over,
    // keeping a dropped channel that still holds sessions (at capacity 0)
    // so that their releases balance.
    v1::AgentProfile next = *std::move(normalized);
    for (const auto& old : before.profile.capacities()) {
      if (old.load() == 0) continue;
      bool found = false;
      for (auto& c : *next.mutable_capacities()) {
        if (c.channel() == old.channel()) {
          c.set_load(old.load());
          found = true;
        }
      }
      if (!found) {
        v1::ChannelCapacity* kept = next.add_capacities();
        kept->set_channel(old.channel());
        kept->set_load(old.load());
      }
    }
    agent.profile = std::move(next);
    const bool changed =
        inserted || before.profile.SerializeAsString() != agent.profile.SerializeAsString();
    if (changed) {
      agent.profile_set_by = supervisor_id;
      agent.profile_set_at = now;
      agent.revision = ++revision_;
      PresenceWrite write;
      write.agents.push_back(agent);
      write.events.push_back(ProfileEvent(agent, before, now));
      pending = Commit(std::move(write),
                       {AgentChange{agent, before.status, v1::CHANGE_REASON_PROFILE_SET}});
      log::Info("agent_profile_set", {{"agent_id", agent.agent_id},
                                      {"set_by", supervisor_id},
                                      {"categories", agent.profile.skills().categories_size()},
                                      {"languages", agent.profile.skills().languages_size()}});
    } else {
      // A retry: answered once what it reports is durable.
      pending = commits_.Newest();
    }
    result = agent;
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<AgentRecord> Presence::Heartbeat(const std::string& agent_id,
                                                const std::string& device_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("device_id", device_id, 128); !s.ok()) {
    return s;
  }
  absl::MutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(
        absl::StrCat("agent ", agent_id, " has no presence; call SetStatus first"));
  }
  AgentRecord& agent = it->second;
  if (agent.status == v1::AGENT_STATUS_OFFLINE) {
    return absl::FailedPreconditionError(absl::StrCat(
        "agent ", agent_id, " is OFFLINE; call SetStatus to go online again"));
  }
  agent.lease_expires_at = clock_->Now() + options_.lease;
  return agent;
}

absl::StatusOr<AgentRecord> Presence::GetAgent(const std::string& agent_id) const {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  absl::ReaderMutexLock lock(&mu_);
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) {
    return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
  }
  return it->second;
}

Presence::ListPage Presence::ListAgents(const ListFilter& filter, int page_size,
                                        const std::string& after_agent_id) const {
  ListPage page;
  absl::ReaderMutexLock lock(&mu_);
  for (auto it = agents_.upper_bound(after_agent_id); it != agents_.end(); ++it) {
    if (!Matches(it->second, filter)) continue;
    if (static_cast<int>(page.agents.size()) == page_size) {
      page.last_agent_id = page.agents.back().agent_id;
      break;
    }
    page.agents.push_back(it->second);
  }
  return page;
}

absl::StatusOr<Presence::Reservation> Presence::Reserve(
    const std::string& agent_id, const std::string& session_id,
    common::v1::Channel channel, std::optional<absl::Duration> hold,
    int64_t holder_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("session_id", session_id); !s.ok()) {
    return s;
  }
  if (channel == common::v1::CHANNEL_UNSPECIFIED || !common::v1::Channel_IsValid(channel)) {
    return absl::InvalidArgumentError(
        absl::StrCat("channel: unknown channel ", static_cast<int>(channel)));
  }
  const absl::Duration hold_time = hold.value_or(options_.default_hold);
  if (hold_time < kMinHold || hold_time > kMaxHold) {
    return absl::InvalidArgumentError("hold: must be between 1s and 10m");
  }
  if (holder_id < 0) return absl::InvalidArgumentError("holder_id: must not be negative");
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  Reservation result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    auto agent_it = agents_.find(agent_id);
    if (agent_it == agents_.end()) {
      return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
    }
    AgentRecord& agent = agent_it->second;
    auto existing = reservations_.find(session_id);
    if (existing != reservations_.end()) {
      ReservationRecord& held = existing->second;
      if (held.agent_id != agent_id) {
        return absl::AlreadyExistsError(absl::StrCat(
            "session ", session_id, " already holds capacity at agent ", held.agent_id,
            "; release it first"));
      }
      if (held.assigned || held.expires_at > now) {
        if (holder_id <= held.holder_id) {
          // A retry: answered once the first attempt is durable.
          result = Reservation{held, agent};
          pending = commits_.Newest();
        } else {
          // A newer offer of the same session to the same agent takes the
          // capacity over, so that the older offer's late release cannot
          // free it.
          held.holder_id = holder_id;
          if (!held.assigned) held.expires_at = std::max(held.expires_at, now + hold_time);
          PresenceWrite write;
          write.upserted_reservations.push_back(held);
          pending = Commit(std::move(write), {});
          result = Reservation{held, agent};
        }
      }
    }
    if (pending == nullptr && result.reservation.session_id.empty()) {
      if (agent.status != v1::AGENT_STATUS_ONLINE || agent.lease_expires_at <= now) {
        if (metrics_) metrics_->rejected_not_online->Increment();
        return absl::FailedPreconditionError(absl::StrCat(
            "agent ", agent_id, " is not online (", v1::AgentStatus_Name(agent.status),
            ")"));
      }
      v1::ChannelCapacity* capacity = CapacityOn(agent, channel);
      if (capacity == nullptr || capacity->capacity() == 0) {
        if (metrics_) metrics_->rejected_no_channel->Increment();
        return absl::FailedPreconditionError(absl::StrCat(
            "agent ", agent_id, " takes no ", common::v1::Channel_Name(channel),
            " sessions"));
      }
      if (capacity->load() >= capacity->capacity()) {
        if (metrics_) metrics_->rejected_at_capacity->Increment();
        return absl::ResourceExhaustedError(absl::StrCat(
            "agent ", agent_id, " is at capacity on ", common::v1::Channel_Name(channel),
            " (", capacity->load(), "/", capacity->capacity(), ")"));
      }
      PresenceWrite write;
      if (existing != reservations_.end()) {
        // A lapsed reservation of the same session at the same agent that
        // the sweeper has not removed yet: it is replaced, its load reused.
        write.deleted_reservations.push_back(existing->second);
        AddLoad(agent, existing->second.channel, -1, now);
        reservations_.erase(existing);
      }
      ReservationRecord reservation{agent_id, session_id,      channel,
                                    false,    now,             now + hold_time,
                                    holder_id};
      AddLoad(agent, channel, +1, now);
      agent.revision = ++revision_;
      reservations_[session_id] = reservation;
      write.agents.push_back(agent);
      write.upserted_reservations.push_back(reservation);
      write.capacity_guards.push_back(
          CapacityGuard{agent_id, channel, static_cast<int>(capacity->capacity())});
      write.events.push_back(LoadEvent(agent, reservation,
                                       events::v1::AgentLoadChanged::CHANGE_RESERVED, now));
      pending = Commit(std::move(write),
                       {AgentChange{agent, agent.status, v1::CHANGE_REASON_LOAD_CHANGED}});
      if (metrics_) metrics_->reservations_granted->Increment();
      result = Reservation{reservation, agent};
    }
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<ReservationRecord> Presence::Confirm(const std::string& agent_id,
                                                    const std::string& session_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("session_id", session_id); !s.ok()) {
    return s;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  ReservationRecord result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    auto it = reservations_.find(session_id);
    if (it == reservations_.end() || it->second.agent_id != agent_id ||
        (!it->second.assigned && it->second.expires_at <= now)) {
      return absl::NotFoundError(absl::StrCat("no reservation of session ", session_id,
                                              " at agent ", agent_id,
                                              " (never made, released or expired)"));
    }
    ReservationRecord& reservation = it->second;
    if (reservation.assigned) {
      // A retry: answered once the confirmation is durable.
      pending = commits_.Newest();
    } else {
      reservation.assigned = true;
      reservation.expires_at = absl::InfiniteFuture();
      PresenceWrite write;
      write.upserted_reservations.push_back(reservation);
      write.events.push_back(LoadEvent(agents_.at(agent_id), reservation,
                                       events::v1::AgentLoadChanged::CHANGE_CONFIRMED, now));
      pending = Commit(std::move(write), {});
    }
    result = reservation;
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<Presence::Release> Presence::ReleaseCapacity(
    const std::string& agent_id, const std::string& session_id, int64_t holder_id) {
  if (absl::Status s = validation::ValidateId("agent_id", agent_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateId("session_id", session_id); !s.ok()) {
    return s;
  }
  if (holder_id < 0) return absl::InvalidArgumentError("holder_id: must not be negative");
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  std::shared_ptr<storage::PendingWrite> pending;
  Release result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    auto agent_it = agents_.find(agent_id);
    if (agent_it == agents_.end()) {
      return absl::NotFoundError(absl::StrCat("agent ", agent_id, " not found"));
    }
    AgentRecord& agent = agent_it->second;
    auto it = reservations_.find(session_id);
    if (it == reservations_.end() || it->second.agent_id != agent_id ||
        (holder_id > 0 && it->second.holder_id > holder_id)) {
      // Nothing this caller holds (a retry, or a newer holder owns it):
      // answered once the state it reports is durable.
      result = Release{false, agent};
      pending = commits_.Newest();
    } else {
      const ReservationRecord reservation = it->second;
      reservations_.erase(it);
      PresenceWrite write;
      std::vector<AgentChange> changes;
      AddReleaseTo(write, changes, agent, reservation,
                   events::v1::AgentLoadChanged::CHANGE_RELEASED, now);
      pending = Commit(std::move(write), std::move(changes));
      result = Release{true, agent};
    }
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

void Presence::AddReleaseTo(PresenceWrite& write, std::vector<AgentChange>& changes,
                            AgentRecord& agent, const ReservationRecord& reservation,
                            events::v1::AgentLoadChanged::Change change, absl::Time now) {
  AddLoad(agent, reservation.channel, -1, now);
  agent.revision = ++revision_;
  write.agents.push_back(agent);
  write.deleted_reservations.push_back(reservation);
  write.events.push_back(LoadEvent(agent, reservation, change, now));
  changes.push_back(AgentChange{agent, agent.status, v1::CHANGE_REASON_LOAD_CHANGED});
}

absl::StatusOr<Presence::ReconcileResult> Presence::Reconcile(
    const ReconcileCommand& command) {
  if (command.fence < 0) return absl::InvalidArgumentError("fence: must not be negative");
  const auto in_range = [&](const std::string& agent_id) {
    return agent_id >= command.agent_id_from &&
           (command.agent_id_to.empty() || agent_id < command.agent_id_to);
  };
  if (!command.agent_id_to.empty() && command.agent_id_to <= command.agent_id_from) {
    return absl::InvalidArgumentError("agent_id_to: must be empty or above agent_id_from");
  }
  absl::flat_hash_map<std::string, const HeldCapacity*> live;
  for (const HeldCapacity& held : command.live) {
    if (absl::Status s = validation::ValidateId("live.agent_id", held.agent_id); !s.ok()) {
      return s;
    }
    if (absl::Status s = validation::ValidateId("live.session_id", held.session_id);
        !s.ok()) {
      return s;
    }
    if (!in_range(held.agent_id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "live.agent_id: ", held.agent_id, " is outside [agent_id_from, agent_id_to)"));
    }
    if (held.assigned && (held.channel == common::v1::CHANNEL_UNSPECIFIED ||
                          !common::v1::Channel_IsValid(held.channel))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "live.channel: an assignment needs its channel (session ", held.session_id, ")"));
    }
    if (held.holder_id < 0) {
      return absl::InvalidArgumentError("live.holder_id: must not be negative");
    }
    if (!live.emplace(held.session_id, &held).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("live.session_id: ", held.session_id, " is listed twice"));
    }
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  std::shared_ptr<storage::PendingWrite> pending;
  ReconcileResult result;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    PresenceWrite write;
    std::set<std::string> touched;
    for (auto it = reservations_.begin(); it != reservations_.end();) {
      ReservationRecord& reservation = it->second;
      if (!in_range(reservation.agent_id)) {
        ++it;
        continue;
      }
      auto held = live.find(reservation.session_id);
      if (held != live.end() && held->second->agent_id == reservation.agent_id) {
        if (held->second->assigned && !reservation.assigned) {
          reservation.assigned = true;
          reservation.expires_at = absl::InfiniteFuture();
          write.upserted_reservations.push_back(reservation);
          write.events.push_back(LoadEvent(agents_.at(reservation.agent_id), reservation,
                                           events::v1::AgentLoadChanged::CHANGE_CONFIRMED,
                                           now));
          ++result.confirmed;
        }
        ++it;
        continue;
      }
      if (reservation.holder_id > command.fence) {
        ++it;  // made after the caller took its view
        continue;
      }
      AgentRecord& agent = agents_.at(reservation.agent_id);
      AddLoad(agent, reservation.channel, -1, now);
      write.deleted_reservations.push_back(reservation);
      write.events.push_back(LoadEvent(
          agent, reservation, events::v1::AgentLoadChanged::CHANGE_RECONCILED_RELEASED, now));
      touched.insert(agent.agent_id);
      result.released.push_back(reservation);
      reservations_.erase(it++);
    }
    for (const HeldCapacity& held : command.live) {
      auto it = reservations_.find(held.session_id);
      if (it != reservations_.end() && it->second.agent_id == held.agent_id) continue;
      if (!held.assigned) {
        result.missing.push_back(held);
        continue;
      }
      // Held elsewhere by a newer holder: the caller's view is already
      // stale; its next call sorts it out.
      if (it != reservations_.end()) continue;
      auto agent = agents_.find(held.agent_id);
      if (agent == agents_.end()) {
        log::Warning("reconcile_unknown_agent",
                     {{"agent_id", held.agent_id}, {"session_id", held.session_id}});
        continue;
      }
      ReservationRecord restored{held.agent_id, held.session_id,       held.channel,
                                 true,          now,                   absl::InfiniteFuture(),
                                 held.holder_id};
      AddLoad(agent->second, held.channel, +1, now);
      reservations_[held.session_id] = restored;
      write.upserted_reservations.push_back(restored);
      write.events.push_back(LoadEvent(agent->second, restored,
                                       events::v1::AgentLoadChanged::CHANGE_RECONCILED_RESTORED,
                                       now));
      touched.insert(held.agent_id);
      result.restored.push_back(restored);
    }
    std::vector<AgentChange> changes;
    for (const std::string& id : touched) {
      AgentRecord& agent = agents_.at(id);
      agent.revision = ++revision_;
      write.agents.push_back(agent);
      changes.push_back(AgentChange{agent, agent.status, v1::CHANGE_REASON_LOAD_CHANGED});
    }
    if (metrics_) {
      metrics_->reconciled_released->Increment(static_cast<double>(result.released.size()));
      metrics_->reconciled_restored->Increment(static_cast<double>(result.restored.size()));
    }
    if (!result.released.empty() || !result.restored.empty()) {
      log::Warning("reservations_reconciled",
                   {{"released", static_cast<int64_t>(result.released.size())},
                    {"restored", static_cast<int64_t>(result.restored.size())},
                    {"confirmed", result.confirmed},
                    {"fence", command.fence}});
    }
    pending = write.empty() ? commits_.Newest() : Commit(std::move(write), std::move(changes));
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return result;
}

absl::StatusOr<int> Presence::ExpireDue() {
  std::shared_ptr<storage::PendingWrite> pending;
  int lapsed = 0;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = commits_.CheckWritable(); !s.ok()) return s;
    const absl::Time now = clock_->Now();
    PresenceWrite write;
    std::vector<AgentChange> changes;
    std::set<std::string> touched;
    for (auto it = reservations_.begin(); it != reservations_.end();) {
      const ReservationRecord& reservation = it->second;
      if (reservation.assigned || reservation.expires_at > now) {
        ++it;
        continue;
      }
      AgentRecord& agent = agents_.at(reservation.agent_id);
      AddLoad(agent, reservation.channel, -1, now);
      write.deleted_reservations.push_back(reservation);
      write.events.push_back(LoadEvent(
          agent, reservation, events::v1::AgentLoadChanged::CHANGE_EXPIRED, now));
      touched.insert(agent.agent_id);
      if (metrics_) metrics_->reservations_expired->Increment();
      reservations_.erase(it++);
    }
    for (auto& [id, agent] : agents_) {
      const bool lease_lapsed =
          agent.status != v1::AGENT_STATUS_OFFLINE && agent.lease_expires_at <= now;
      if (!lease_lapsed && !touched.count(id)) continue;
      const v1::AgentStatus previous = agent.status;
      v1::ChangeReason reason = v1::CHANGE_REASON_LOAD_CHANGED;
      if (lease_lapsed) {
        SetStatusOf(agent, v1::AGENT_STATUS_OFFLINE, now);
        agent.lease_expires_at = absl::InfinitePast();
        reason = v1::CHANGE_REASON_LEASE_EXPIRED;
        write.events.push_back(StatusEvent(agent, previous, reason, now));
        if (metrics_) metrics_->leases_expired->Increment();
        log::Info("agent_lease_expired", {{"agent_id", id},
                                          {"previous_status", v1::AgentStatus_Name(previous)}});
        ++lapsed;
      }
      agent.revision = ++revision_;
      write.agents.push_back(agent);
      changes.push_back(AgentChange{agent, previous, reason});
    }
    if (write.empty()) return 0;
    pending = Commit(std::move(write), std::move(changes));
  }
  if (absl::Status s = commits_.AwaitInOrder(pending); !s.ok()) return s;
  return lapsed;
}

Presence::Snapshot Presence::Subscribe(PresenceListener* listener) {
  Snapshot snapshot;
  absl::ReaderMutexLock lock(&mu_);
  for (const auto& [id, agent] : agents_) {
    if (agent.status != v1::AGENT_STATUS_OFFLINE) snapshot.agents.push_back(agent);
  }
  snapshot.revision = revision_;
  // Registered while mu_ is held: every change with a higher revision is
  // decided after this point, so it reaches the listener.
  absl::MutexLock listeners_lock(&listeners_mu_);
  listeners_[listener] = snapshot.revision;
  return snapshot;
}

void Presence::Unsubscribe(PresenceListener* listener) {
  absl::MutexLock lock(&listeners_mu_);
  listeners_.erase(listener);
}

}  // namespace switchboard::presence
