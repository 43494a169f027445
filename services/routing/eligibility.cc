#include "services/routing/eligibility.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "libs/protoutil/time.h"

namespace switchboard::routing {
namespace {

bool Contains(const std::vector<std::string>& ids, const std::string& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

std::string PrimaryLanguage(absl::string_view tag) {
  return absl::AsciiStrToLower(tag.substr(0, tag.find('-')));
}

std::vector<std::string> Rank(std::vector<Candidate> candidates, const OfferRules& rules) {
  std::vector<Candidate> fresh, retried;
  for (Candidate& c : candidates) {
    if (Contains(rules.excluded, c.id)) continue;
    if (!rules.target_agent_id.empty() && rules.target_agent_id != c.id) continue;
    (Contains(rules.timed_out, c.id) ? retried : fresh).push_back(std::move(c));
  }
  // Agents whose offer timed out come back only when nobody else is left.
  std::vector<Candidate>& pool = fresh.empty() ? retried : fresh;
  std::sort(pool.begin(), pool.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.since, a.id) < std::tie(b.since, b.id);
  });
  std::vector<std::string> out;
  for (Candidate& c : pool) {
    if (c.id == rules.preferred_agent_id) {
      out.insert(out.begin(), std::move(c.id));
    } else {
      out.push_back(std::move(c.id));
    }
  }
  return out;
}

std::map<QueueId, bool> AgentPool::EligibleQueues(const presence::v1::Agent& agent) const {
  std::map<QueueId, bool> queues;
  if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) return queues;
  const auto& skills = agent.profile().skills();
  std::set<std::string> languages;
  for (const std::string& tag : skills.languages()) languages.insert(PrimaryLanguage(tag));
  std::map<common::v1::Channel, bool> channels;  // channel -> has room
  for (const auto& c : agent.profile().capacities()) {
    if (c.capacity() > 0) channels.emplace(c.channel(), RoomOn(agent.agent_id(), c));
  }
  for (int category : skills.categories()) {
    for (const std::string& language : languages) {
      for (const auto& [channel, free] : channels) {
        queues[QueueId{v1::ENTRY_KIND_SESSION, channel,
                       static_cast<common::v1::Category>(category), language}] = free;
      }
    }
  }
  return queues;
}

bool AgentPool::RoomOn(const std::string& agent_id,
                       const presence::v1::ChannelCapacity& capacity) const {
  return !claimed_.count({agent_id, capacity.channel()}) && capacity.load() < capacity.capacity();
}

void AgentPool::Index(const presence::v1::Agent& agent, bool add) {
  const std::pair<absl::Time, std::string> place{protoutil::FromTimestamp(agent.idle_since()),
                                                 agent.agent_id()};
  for (const auto& [queue, free] : EligibleQueues(agent)) {
    QueueIndex& index = index_[queue];
    index.eligible += add ? 1 : -1;
    if (free) {
      if (add) {
        index.free.insert(place);
      } else {
        index.free.erase(place);
      }
    }
    if (index.eligible == 0) index_.erase(queue);
  }
}

void AgentPool::Upsert(const presence::v1::Agent& agent) {
  auto [it, inserted] = agents_.try_emplace(agent.agent_id(), agent);
  if (!inserted) {
    Index(it->second, false);
    it->second = agent;
  }
  Index(it->second, true);
}

void AgentPool::Remove(const std::string& agent_id) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  Index(it->second, false);
  agents_.erase(it);
}

void AgentPool::Clear() {
  agents_.clear();
  index_.clear();
}

const presence::v1::Agent* AgentPool::Find(const std::string& agent_id) const {
  auto it = agents_.find(agent_id);
  return it == agents_.end() ? nullptr : &it->second;
}

std::vector<std::string> AgentPool::Ids() const {
  std::vector<std::string> ids;
  for (const auto& [id, agent] : agents_) ids.push_back(id);
  return ids;
}

void AgentPool::MarkFull(const std::string& agent_id, common::v1::Channel channel) {
  auto it = agents_.find(agent_id);
  if (it == agents_.end()) return;
  Index(it->second, false);
  for (auto& c : *it->second.mutable_profile()->mutable_capacities()) {
    if (c.channel() == channel) c.set_load(std::max(c.load(), c.capacity()));
  }
  Index(it->second, true);
}

void AgentPool::Claim(const std::string& agent_id, common::v1::Channel channel) {
  auto it = agents_.find(agent_id);
  if (it != agents_.end()) Index(it->second, false);
  claimed_.insert({agent_id, channel});
  if (it != agents_.end()) Index(it->second, true);
}

void AgentPool::Unclaim(const std::string& agent_id, common::v1::Channel channel) {
  auto it = agents_.find(agent_id);
  if (it != agents_.end()) Index(it->second, false);
  claimed_.erase({agent_id, channel});
  if (it != agents_.end()) Index(it->second, true);
}

bool AgentPool::HasRoom(const std::string& agent_id, common::v1::Channel channel) const {
  const presence::v1::Agent* agent = Find(agent_id);
  if (agent == nullptr || agent->status() != presence::v1::AGENT_STATUS_ONLINE) return false;
  for (const auto& c : agent->profile().capacities()) {
    if (c.channel() == channel) return RoomOn(agent_id, c);
  }
  return false;
}

bool AgentPool::AnyAvailable(const QueueId& queue) const {
  auto it = index_.find(queue);
  return it != index_.end() && !it->second.free.empty();
}

std::vector<std::string> AgentPool::SessionCandidates(const QueueId& queue,
                                                      const OfferRules& rules) const {
  auto it = index_.find(queue);
  if (it == index_.end()) return {};
  const auto& free = it->second.free;
  auto is_free = [&](const std::string& id) {
    const presence::v1::Agent* agent = Find(id);
    return agent != nullptr &&
           free.count({protoutil::FromTimestamp(agent->idle_since()), id}) > 0;
  };
  if (!rules.target_agent_id.empty()) {
    if (Contains(rules.excluded, rules.target_agent_id) || !is_free(rules.target_agent_id)) {
      return {};
    }
    return {rules.target_agent_id};
  }
  // The longest idle first. Excluded and timed-out agents are few (an
  // entry's own decliners), so the walk stops after about kMaxCandidates.
  std::vector<std::string> fresh, retried;
  for (const auto& [since, id] : free) {
    if (static_cast<int>(fresh.size()) == kMaxCandidates) break;
    if (Contains(rules.excluded, id)) continue;
    if (Contains(rules.timed_out, id)) {
      if (static_cast<int>(retried.size()) < kMaxCandidates) retried.push_back(id);
    } else {
      fresh.push_back(id);
    }
  }
  // Agents whose offer timed out come back only when nobody else is left.
  std::vector<std::string>& out = fresh.empty() ? retried : fresh;
  const std::string& preferred = rules.preferred_agent_id;
  if (!preferred.empty() && !Contains(rules.excluded, preferred) && is_free(preferred) &&
      Contains(rules.timed_out, preferred) == fresh.empty()) {
    out.erase(std::remove(out.begin(), out.end(), preferred), out.end());
    out.insert(out.begin(), preferred);
    if (static_cast<int>(out.size()) > kMaxCandidates) out.pop_back();
  }
  return out;
}

AgentPool::Counts AgentPool::Count(const QueueId& queue) const {
  auto it = index_.find(queue);
  if (it == index_.end()) return {};
  return Counts{it->second.eligible, static_cast<int>(it->second.free.size())};
}

std::set<QueueId> AgentPool::ServableQueues() const {
  std::set<QueueId> queues;
  for (const auto& [queue, index] : index_) queues.insert(queue);
  return queues;
}

std::vector<std::string> ComplaintCandidates(const std::map<std::string, int>& watching,
                                             const AgentPool& agents,
                                             const std::set<std::string>& offering,
                                             const std::map<std::string, absl::Time>& last_accept,
                                             const OfferRules& rules) {
  std::vector<Candidate> candidates;
  for (const auto& [id, streams] : watching) {
    const presence::v1::Agent* agent = agents.Find(id);
    if (agent == nullptr || agent->status() != presence::v1::AGENT_STATUS_ONLINE ||
        offering.count(id)) {
      continue;
    }
    auto last = last_accept.find(id);
    candidates.push_back(
        Candidate{last == last_accept.end() ? absl::InfinitePast() : last->second, id});
  }
  return Rank(std::move(candidates), rules);
}

}  // namespace switchboard::routing
