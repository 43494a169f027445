#include "services/sessions/deadlines.h"

#include <algorithm>

#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

absl::Time Ts(const google::protobuf::Timestamp& t) { return protoutil::FromTimestamp(t); }

absl::Time LastActivity(const SessionRecord& record) {
  absl::Time last = record.state_since;
  if (record.session.has_last_message_at()) {
    last = std::max(last, Ts(record.session.last_message_at()));
  }
  return last;
}

}  // namespace

absl::Time NextDue(const SessionRecord& record, const IdleTimeouts& timeouts) {
  const v1::Session& s = record.session;
  if (s.state() == v1::SESSION_STATE_CLOSED) return absl::InfiniteFuture();
  absl::Time due = absl::InfiniteFuture();
  if (s.has_sla() && !s.sla().breached() && !s.has_first_human_response_at()) {
    due = std::min(due, Ts(s.sla().due_at()) + absl::Nanoseconds(1));
  }
  if (!s.offered_agent_id().empty()) {
    due = std::min(due, s.state() == v1::SESSION_STATE_QUEUED ? Ts(s.offer_expires_at())
                                                              : absl::InfinitePast());
  }
  switch (s.state()) {
    case v1::SESSION_STATE_BOT:
    case v1::SESSION_STATE_ASSIGNED:
      due = std::min(due, LastActivity(record) + timeouts.idle);
      break;
    case v1::SESSION_STATE_RESOLVED:
      due = std::min(due, record.state_since + timeouts.resolved);
      break;
    default:
      break;
  }
  return due;
}

bool IdleAt(const SessionRecord& record, const IdleTimeouts& timeouts, absl::Time now) {
  switch (record.session.state()) {
    case v1::SESSION_STATE_BOT:
    case v1::SESSION_STATE_ASSIGNED:
      return now - LastActivity(record) >= timeouts.idle;
    case v1::SESSION_STATE_RESOLVED:
      return now - record.state_since >= timeouts.resolved;
    default:
      return false;
  }
}

void DeadlineIndex::Set(const std::string& session_id, absl::Time due) {
  if (due == absl::InfiniteFuture()) {
    Remove(session_id);
    return;
  }
  auto [it, inserted] = due_.try_emplace(session_id, due);
  if (!inserted) {
    if (it->second == due) return;
    by_time_.erase({it->second, session_id});
    it->second = due;
  }
  by_time_.emplace(due, session_id);
}

void DeadlineIndex::Remove(const std::string& session_id) {
  auto it = due_.find(session_id);
  if (it == due_.end()) return;
  by_time_.erase({it->second, session_id});
  due_.erase(it);
}

std::vector<std::string> DeadlineIndex::Due(absl::Time now, size_t limit) const {
  std::vector<std::string> out;
  for (auto it = by_time_.begin();
       it != by_time_.end() && it->first <= now && out.size() < limit; ++it) {
    out.push_back(it->second);
  }
  return out;
}

}  // namespace switchboard::sessions
