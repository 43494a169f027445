#pragma once

#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "services/routing/model.h"
#include "switchboard/presence/v1/presence_service.pb.h"

namespace switchboard::routing {

// "zh-CN" -> "zh": the part of a language tag routing queues and matches on.
std::string PrimaryLanguage(absl::string_view tag);

// What one entry's wait says about who may be offered it.
struct OfferRules {
  // If set, only this agent.
  std::string target_agent_id;
  // If among the candidates, first.
  std::string preferred_agent_id;
  // Never (decliners, the transferring agent).
  std::vector<std::string> excluded;
  // Only when no one else is left (their offer timed out).
  std::vector<std::string> timed_out;
};

// Orders candidates: those not in `rules.timed_out` if any, else those, by
// `since` (oldest first, then id); the preferred agent first if present.
struct Candidate {
  absl::Time since;
  std::string id;
};
std::vector<std::string> Rank(std::vector<Candidate> candidates, const OfferRules& rules);

// Routing's view of the agents presence reports not OFFLINE, and the
// eligibility questions routing asks of it. An agent is eligible for a
// session queue when ONLINE, with the queue's category, a language whose
// primary subtag is the queue's, and capacity above zero on its channel;
// free when their load there is below that capacity. Every change goes
// through Upsert, Remove, Clear and MarkFull, which keep an index per
// session queue (eligible count, free agents by idle time), so no question
// walks the agents: a routing decision costs O(log agents), not O(agents).
// While a reservation is being made at an agent (Claim, until Unclaim) the
// agent takes no other session on that channel: offers made at once go to
// different agents, and one agent's offers are decided one at a time, in
// queue order.
// Not thread-safe.
class AgentPool {
 public:
  // Adds or replaces an agent (any status but OFFLINE).
  void Upsert(const presence::v1::Agent& agent);
  void Remove(const std::string& agent_id);
  void Clear();
  // Null when the agent is not in the view.
  const presence::v1::Agent* Find(const std::string& agent_id) const;
  // The agents in the view, by id.
  std::vector<std::string> Ids() const;
  // Presence refused a reservation at `agent_id` on `channel`: routing's
  // view was stale, so the agent counts as full there until presence
  // reports their load again.
  void MarkFull(const std::string& agent_id, common::v1::Channel channel);
  // A reservation at `agent_id` on `channel` is being asked of presence:
  // until Unclaim the agent has no room there. A claim outlives Remove and
  // Clear (the reservation is still being made).
  void Claim(const std::string& agent_id, common::v1::Channel channel);
  void Unclaim(const std::string& agent_id, common::v1::Channel channel);
  // The agent is in the view, ONLINE, unclaimed on `channel`, and its load
  // there is below its capacity.
  bool HasRoom(const std::string& agent_id, common::v1::Channel channel) const;

  // Some agent could take a session of `queue` now (eligible, free).
  bool AnyAvailable(const QueueId& queue) const;
  // At most kMaxCandidates agents who may be offered a session of `queue`
  // under `rules`, best first: eligible with free capacity, in Rank's order
  // on how long they have been idle (presence's idle_since). Routing tries
  // them in turn until presence reserves one; more would only be stale.
  static constexpr int kMaxCandidates = 16;
  std::vector<std::string> SessionCandidates(const QueueId& queue,
                                             const OfferRules& rules) const;
  struct Counts {
    int eligible = 0;
    int available = 0;
  };
  // Eligible agents of `queue`, and how many of them have free capacity.
  Counts Count(const QueueId& queue) const;
  // The session queues ONLINE agents could serve.
  std::set<QueueId> ServableQueues() const;

 private:
  // One session queue's agents: how many are eligible, and the free ones by
  // (idle_since, id), Rank's order.
  struct QueueIndex {
    int eligible = 0;
    std::set<std::pair<absl::Time, std::string>> free;
  };
  // Adds `agent` to (or removes it from) the index of every session queue
  // it is eligible for.
  void Index(const presence::v1::Agent& agent, bool add);
  // The session queues `agent` is eligible for, each with whether the agent
  // has room there (RoomOn).
  std::map<QueueId, bool> EligibleQueues(const presence::v1::Agent& agent) const;
  // Unclaimed on the capacity's channel, and its load below it.
  bool RoomOn(const std::string& agent_id, const presence::v1::ChannelCapacity& capacity) const;

  std::map<std::string, presence::v1::Agent> agents_;
  std::map<QueueId, QueueIndex> index_;
  // Reservations being made, by agent and channel (one at a time each).
  std::set<std::pair<std::string, common::v1::Channel>> claimed_;
};

// The supervisors who may be offered a complaint under `rules`, best first:
// watching offers (`watching`), ONLINE in `agents`, not holding an open
// complaint offer (`offering`); the one who accepted a complaint least
// recently (`last_accept`; never counts as longest ago) first, ranked by
// Rank.
std::vector<std::string> ComplaintCandidates(const std::map<std::string, int>& watching,
                                             const AgentPool& agents,
                                             const std::set<std::string>& offering,
                                             const std::map<std::string, absl::Time>& last_accept,
                                             const OfferRules& rules);

}  // namespace switchboard::routing
