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

bool Eligible(const presence::v1::Agent& agent, const QueueId& queue) {
  if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) return false;
  const auto& skills = agent.profile().skills();
  if (std::find(skills.categories().begin(), skills.categories().end(), queue.category) ==
      skills.categories().end()) {
    return false;
  }
  if (std::none_of(skills.languages().begin(), skills.languages().end(),
                   [&](const std::string& l) { return PrimaryLanguage(l) == queue.language; })) {
    return false;
  }
  return std::any_of(agent.profile().capacities().begin(), agent.profile().capacities().end(),
                     [&](const presence::v1::ChannelCapacity& c) {
                       return c.channel() == queue.channel && c.capacity() > 0;
                     });
}

bool HasFreeCapacity(const presence::v1::Agent& agent, common::v1::Channel channel) {
  for (const auto& c : agent.profile().capacities()) {
    if (c.channel() == channel) return c.load() < c.capacity();
  }
  return false;
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

void AgentPool::Upsert(const presence::v1::Agent& agent) { agents_[agent.agent_id()] = agent; }

void AgentPool::Remove(const std::string& agent_id) { agents_.erase(agent_id); }

void AgentPool::Clear() { agents_.clear(); }

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
  for (auto& c : *it->second.mutable_profile()->mutable_capacities()) {
    if (c.channel() == channel) c.set_load(std::max(c.load(), c.capacity()));
  }
}

bool AgentPool::AnyAvailable(const QueueId& queue) const {
  return std::any_of(agents_.begin(), agents_.end(), [&](const auto& agent) {
    return Eligible(agent.second, queue) && HasFreeCapacity(agent.second, queue.channel);
  });
}

std::vector<std::string> AgentPool::SessionCandidates(const QueueId& queue,
                                                      const OfferRules& rules) const {
  std::vector<Candidate> candidates;
  for (const auto& [id, agent] : agents_) {
    if (!Eligible(agent, queue) || !HasFreeCapacity(agent, queue.channel)) continue;
    candidates.push_back(Candidate{protoutil::FromTimestamp(agent.idle_since()), id});
  }
  return Rank(std::move(candidates), rules);
}

AgentPool::Counts AgentPool::Count(const QueueId& queue) const {
  Counts counts;
  for (const auto& [id, agent] : agents_) {
    if (!Eligible(agent, queue)) continue;
    ++counts.eligible;
    if (HasFreeCapacity(agent, queue.channel)) ++counts.available;
  }
  return counts;
}

std::set<QueueId> AgentPool::ServableQueues() const {
  std::set<QueueId> queues;
  for (const auto& [id, agent] : agents_) {
    if (agent.status() != presence::v1::AGENT_STATUS_ONLINE) continue;
    for (int category : agent.profile().skills().categories()) {
      for (const std::string& language : agent.profile().skills().languages()) {
        for (const auto& c : agent.profile().capacities()) {
          if (c.capacity() <= 0) continue;
          queues.insert(QueueId{v1::ENTRY_KIND_SESSION, c.channel(),
                                static_cast<common::v1::Category>(category),
                                PrimaryLanguage(language)});
        }
      }
    }
  }
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
