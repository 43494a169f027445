#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>

#include <ext/pb_ds/assoc_container.hpp>
#include <ext/pb_ds/tree_policy.hpp>

#include "absl/functional/function_ref.h"
#include "services/routing/model.h"

namespace switchboard::routing {

// The order in which waiting entries are offered: one ordered set per queue
// (kind, channel, category, language), each by priority (URGENT first), then
// order key (lower first: the enqueue time in microseconds, or below the
// current head for entries put at the head), then entry key.
//
// Knows nothing of offers or agents: the Router decides what may be offered
// and keeps the locking. Not thread-safe.
class QueueOrder {
 public:
  // One entry's place.
  struct Slot {
    v1::Priority priority = v1::PRIORITY_UNSPECIFIED;
    int64_t order = 0;
    std::string key;

    std::tuple<int, int64_t, const std::string&> Tie() const {
      return {-static_cast<int>(priority), order, key};
    }
    bool operator<(const Slot& other) const { return Tie() < other.Tie(); }
    bool operator==(const Slot& other) const { return Tie() == other.Tie(); }
  };
  // An ordered set that also knows each node's subtree size, so a slot's
  // place is found in O(log n) (a waiting customer's position is asked on
  // every enqueue and every status read; std::set would walk to it).
  using Queue = __gnu_pbds::tree<Slot, __gnu_pbds::null_type, std::less<Slot>,
                                 __gnu_pbds::rb_tree_tag,
                                 __gnu_pbds::tree_order_statistics_node_update>;

  // Adds `slot` to `queue`, not offered (no effect if it is there).
  void Add(const QueueId& queue, const Slot& slot);
  // Removes `slot` from `queue` (no effect if it is not there). An emptied
  // queue is forgotten, so that memory follows the queues in use (customers
  // choose languages, and with them queues).
  void Remove(const QueueId& queue, const Slot& slot);
  // Marks `slot` of `queue` offered (an agent is considering it) or not (no
  // effect if it is not there). An offered slot keeps its place and counts
  // in positions and depth, but Pick never walks it: under load the heads
  // of the queues are offered entries, hundreds of them, which every pick
  // would otherwise pass over.
  void SetOffered(const QueueId& queue, const Slot& slot, bool offered);

  // The order key that puts an entry of `priority` first among that
  // priority in `queue`: one less than the current first's, or `fallback`
  // if that is lower or the priority is empty.
  int64_t HeadOrder(const QueueId& queue, v1::Priority priority, int64_t fallback) const;

  // 1-based place of `slot` in `queue`; 0 when it is not there.
  int PositionOf(const QueueId& queue, const Slot& slot) const;
  // Entries in `queue`.
  int Depth(const QueueId& queue) const;

  // Every queue holding an entry, in (kind, channel, category, language)
  // order.
  const std::map<QueueId, Queue>& queues() const { return queues_; }

  // The slot to offer next across all queues: the first slot not offered,
  // in (priority, order, key) order, whose queue `servable` accepts and
  // which `offerable` accepts. A queue `servable` rejects is not walked, and a queue's walk
  // stops as soon as its slots cannot beat the best found so far, so a pick
  // looks at few slots however long the queues are. `offerable` may be
  // called for slots that are not picked.
  std::optional<Slot> Pick(absl::FunctionRef<bool(const QueueId&)> servable,
                           absl::FunctionRef<bool(const Slot&)> offerable) const;

 private:
  std::map<QueueId, Queue> queues_;
  // Per queue, its slots not offered (Pick's walk); a queue with none is
  // not here.
  std::map<QueueId, std::set<Slot>> not_offered_;
};

}  // namespace switchboard::routing
