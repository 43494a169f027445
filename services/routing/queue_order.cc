#include "services/routing/queue_order.h"

#include <algorithm>
#include <limits>

namespace switchboard::routing {

void QueueOrder::Add(const QueueId& queue, const Slot& slot) {
  if (queues_[queue].insert(slot).second) not_offered_[queue].insert(slot);
}

void QueueOrder::Remove(const QueueId& queue, const Slot& slot) {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return;
  it->second.erase(slot);
  if (it->second.empty()) queues_.erase(it);
  SetOffered(queue, slot, true);
}

void QueueOrder::SetOffered(const QueueId& queue, const Slot& slot, bool offered) {
  if (offered) {
    auto it = not_offered_.find(queue);
    if (it == not_offered_.end()) return;
    it->second.erase(slot);
    if (it->second.empty()) not_offered_.erase(it);
    return;
  }
  auto it = queues_.find(queue);
  if (it == queues_.end() || it->second.find(slot) == it->second.end()) return;
  not_offered_[queue].insert(slot);
}

int64_t QueueOrder::HeadOrder(const QueueId& queue, v1::Priority priority,
                              int64_t fallback) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return fallback;
  auto first = it->second.lower_bound(
      Slot{priority, std::numeric_limits<int64_t>::min(), std::string()});
  if (first == it->second.end() || first->priority != priority) return fallback;
  return std::min(fallback, first->order - 1);
}

int QueueOrder::PositionOf(const QueueId& queue, const Slot& slot) const {
  auto it = queues_.find(queue);
  if (it == queues_.end()) return 0;
  if (it->second.find(slot) == it->second.end()) return 0;
  return static_cast<int>(it->second.order_of_key(slot)) + 1;
}

int QueueOrder::Depth(const QueueId& queue) const {
  auto it = queues_.find(queue);
  return it == queues_.end() ? 0 : static_cast<int>(it->second.size());
}

std::optional<QueueOrder::Slot> QueueOrder::Pick(
    absl::FunctionRef<bool(const QueueId&)> servable,
    absl::FunctionRef<bool(const Slot&)> offerable) const {
  // Priority and age order slots across queues too: an urgent entry in one
  // queue goes before a normal one in another queue the same agents serve.
  // Each queue is already in that order, so the pick is the smallest of the
  // queues' first offerable slots.
  const Slot* best = nullptr;
  for (const auto& [queue, slots] : not_offered_) {
    if (best != nullptr && !(*slots.begin() < *best)) continue;
    if (!servable(queue)) continue;
    for (const Slot& slot : slots) {
      if (best != nullptr && !(slot < *best)) break;
      if (!offerable(slot)) continue;
      best = &slot;
      break;
    }
  }
  if (best == nullptr) return std::nullopt;
  return *best;
}

}  // namespace switchboard::routing
