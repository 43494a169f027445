#pragma once

#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "services/routing/peers.h"

namespace switchboard::routing {

// Presence's capacity rules in memory, for tests: reservations per session
// with holder ids, confirm, release (holder-aware) and reconcile as
// presence_service.proto states them. Any call can be made to fail, to
// succeed and then report a failure (a reply lost on the way back), or to
// take effect and then wait until the test lets it answer.
// Thread-safe.
class FakePresence : public PresencePort {
 public:
  struct Held {
    std::string agent_id;
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
    int64_t holder_id = 0;
    bool assigned = false;
  };

  void SetCapacity(const std::string& agent, int capacity) {
    absl::MutexLock lock(&mu_);
    capacity_[agent] = capacity;
  }

  // Calls to `method` ("Reserve", "Confirm", "Release", "Reconcile") fail
  // with `status` until Heal(method).
  void Fail(const std::string& method, absl::Status status) {
    absl::MutexLock lock(&mu_);
    failures_[method] = std::move(status);
  }
  // Calls to `method` take effect, then answer UNAVAILABLE, until Heal.
  void LoseReplies(const std::string& method) {
    absl::MutexLock lock(&mu_);
    lost_replies_[method] = true;
  }
  void Heal(const std::string& method) {
    absl::MutexLock lock(&mu_);
    failures_.erase(method);
    lost_replies_.erase(method);
  }
  // Calls to `method` take effect, then wait until Resume(method).
  void Pause(const std::string& method) {
    absl::MutexLock lock(&mu_);
    paused_[method] = true;
  }
  void Resume(const std::string& method) {
    absl::MutexLock lock(&mu_);
    paused_.erase(method);
  }
  // Waits (up to 10 s) until `calls` calls to `method` are paused at once.
  bool AwaitPaused(const std::string& method, int calls = 1) {
    absl::MutexLock lock(&mu_);
    auto waiting = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return waiting_[method] >= calls; };
    return mu_.AwaitWithTimeout(absl::Condition(&waiting), absl::Seconds(10));
  }

  absl::Status Reserve(const std::string& agent, const std::string& session,
                       common::v1::Channel channel, absl::Duration, int64_t holder_id,
                       absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("Reserve", deadline);
    if (absl::Status s = FailureOf("Reserve"); !s.ok()) return s;
    if (auto it = held_.find(session); it != held_.end()) {
      if (it->second.agent_id != agent) return absl::AlreadyExistsError("held elsewhere");
      it->second.holder_id = std::max(it->second.holder_id, holder_id);
      return ReplyOf("Reserve");
    }
    const int load = LoadLocked(agent);
    if (load >= capacity_[agent]) return absl::ResourceExhaustedError("at capacity");
    held_[session] = Held{agent, channel, holder_id, false};
    max_load_ = std::max(max_load_, load + 1);
    return ReplyOf("Reserve");
  }

  absl::Status Confirm(const std::string& agent, const std::string& session,
                       absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("Confirm", deadline);
    if (absl::Status s = FailureOf("Confirm"); !s.ok()) return s;
    auto it = held_.find(session);
    if (it == held_.end() || it->second.agent_id != agent) {
      return absl::NotFoundError("no reservation");
    }
    it->second.assigned = true;
    confirmed_.push_back(session);
    return ReplyOf("Confirm");
  }

  absl::Status Release(const std::string& agent, const std::string& session, int64_t holder_id,
                       absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("Release", deadline);
    if (absl::Status s = FailureOf("Release"); !s.ok()) return s;
    auto it = held_.find(session);
    if (it != held_.end() && it->second.agent_id == agent &&
        (holder_id == 0 || it->second.holder_id <= holder_id)) {
      held_.erase(it);
    }
    return ReplyOf("Release");
  }

  absl::StatusOr<ReconcileReply> Reconcile(int64_t fence, const std::string& from,
                                           const std::string& to,
                                           const std::vector<HeldCapacity>& live,
                                           absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("Reconcile", deadline);
    if (absl::Status s = FailureOf("Reconcile"); !s.ok()) return s;
    auto in_range = [&](const std::string& agent) {
      return agent >= from && (to.empty() || agent < to);
    };
    std::map<std::string, const HeldCapacity*> by_session;
    for (const HeldCapacity& h : live) by_session[h.session_id] = &h;
    ReconcileReply reply;
    for (auto it = held_.begin(); it != held_.end();) {
      if (!in_range(it->second.agent_id)) {
        ++it;
        continue;
      }
      auto l = by_session.find(it->first);
      if (l != by_session.end() && l->second->agent_id == it->second.agent_id) {
        if (l->second->assigned) it->second.assigned = true;
        ++it;
      } else if (it->second.holder_id <= fence) {
        ++reply.released;
        it = held_.erase(it);
      } else {
        ++it;
      }
    }
    for (const HeldCapacity& h : live) {
      auto it = held_.find(h.session_id);
      if (it != held_.end() && it->second.agent_id == h.agent_id) continue;
      if (!h.assigned) {
        reply.missing.push_back(h);
      } else if (it == held_.end()) {
        held_[h.session_id] = Held{h.agent_id, h.channel, h.holder_id, true};
        ++reply.restored;
      }
    }
    ++reconciles_;
    return reply;
  }

  int Load(const std::string& agent) {
    absl::MutexLock lock(&mu_);
    return LoadLocked(agent);
  }
  int max_load() {
    absl::MutexLock lock(&mu_);
    return max_load_;
  }
  std::map<std::string, Held> held() {
    absl::MutexLock lock(&mu_);
    return held_;
  }
  // Puts a reservation in place directly (capacity a crash left behind).
  void Put(const std::string& session, Held held) {
    absl::MutexLock lock(&mu_);
    held_[session] = std::move(held);
  }
  void Drop(const std::string& session) {
    absl::MutexLock lock(&mu_);
    held_.erase(session);
  }
  int calls(const std::string& method) {
    absl::MutexLock lock(&mu_);
    return calls_[method];
  }
  absl::Time last_deadline(const std::string& method) {
    absl::MutexLock lock(&mu_);
    return deadlines_[method];
  }
  std::vector<std::string> confirmed() {
    absl::MutexLock lock(&mu_);
    return confirmed_;
  }
  int reconciles() {
    absl::MutexLock lock(&mu_);
    return reconciles_;
  }

 private:
  void Note(const std::string& method, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++calls_[method];
    deadlines_[method] = deadline;
  }
  absl::Status FailureOf(const std::string& method) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = failures_.find(method);
    return it == failures_.end() ? absl::OkStatus() : it->second;
  }
  absl::Status ReplyOf(const std::string& method) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (paused_.count(method)) {
      ++waiting_[method];
      auto resumed = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return !paused_.count(method); };
      mu_.Await(absl::Condition(&resumed));
      --waiting_[method];
    }
    return lost_replies_.count(method) ? absl::UnavailableError("reply lost")
                                       : absl::OkStatus();
  }
  int LoadLocked(const std::string& agent) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    int load = 0;
    for (const auto& [session, held] : held_) load += held.agent_id == agent;
    return load;
  }

  absl::Mutex mu_;
  std::map<std::string, int> capacity_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Held> held_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> lost_replies_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> paused_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> waiting_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> confirmed_ ABSL_GUARDED_BY(mu_);
  int max_load_ ABSL_GUARDED_BY(mu_) = 0;
  int reconciles_ ABSL_GUARDED_BY(mu_) = 0;
};

// Sessions' side of routing in memory, for tests: a session is QUEUED until
// assigned (idempotently, to one agent), and can be closed. Calls can fail
// or lose their replies like FakePresence's. Every call is recorded.
// Thread-safe.
class FakeSessions : public SessionsPort {
 public:
  void Fail(const std::string& method, absl::Status status) {
    absl::MutexLock lock(&mu_);
    failures_[method] = std::move(status);
  }
  void LoseReplies(const std::string& method) {
    absl::MutexLock lock(&mu_);
    lost_replies_[method] = true;
  }
  void Heal(const std::string& method) {
    absl::MutexLock lock(&mu_);
    failures_.erase(method);
    lost_replies_.erase(method);
  }
  // The session leaves (resolved or closed): no agent may be assigned.
  void Close(const std::string& session) {
    absl::MutexLock lock(&mu_);
    sessions_[session] = SessionView{SessionView::State::kOther, ""};
  }
  // The session waits for an agent again (a transfer).
  void Queue(const std::string& session) {
    absl::MutexLock lock(&mu_);
    sessions_[session] = SessionView{SessionView::State::kQueued, ""};
  }

  absl::Status RecordOffer(const std::string& session, const std::string& agent,
                           const std::string&, absl::Time, absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("RecordOffer " + session + " " + agent, "RecordOffer", deadline);
    if (absl::Status s = FailureOf("RecordOffer"); !s.ok()) return s;
    if (StateLocked(session) != SessionView::State::kQueued) {
      return absl::FailedPreconditionError("not QUEUED");
    }
    return ReplyOf("RecordOffer");
  }
  absl::Status AssignAgent(const std::string& session, const std::string& agent,
                           const std::string&, const std::string&,
                           absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("AssignAgent " + session + " " + agent, "AssignAgent", deadline);
    if (absl::Status s = FailureOf("AssignAgent"); !s.ok()) return s;
    SessionView& view = ViewLocked(session);
    if (view.state == SessionView::State::kAssigned && view.assigned_agent_id == agent) {
      return ReplyOf("AssignAgent");
    }
    if (view.state != SessionView::State::kQueued) {
      return absl::FailedPreconditionError("not QUEUED");
    }
    view = SessionView{SessionView::State::kAssigned, agent};
    return ReplyOf("AssignAgent");
  }
  absl::Status RequeueSession(const std::string& session, const std::string& agent,
                              absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("RequeueSession " + session + " " + agent, "RequeueSession", deadline);
    if (absl::Status s = FailureOf("RequeueSession"); !s.ok()) return s;
    SessionView& view = ViewLocked(session);
    if (view.state == SessionView::State::kAssigned && view.assigned_agent_id == agent) {
      view = SessionView{SessionView::State::kQueued, ""};
    }
    return ReplyOf("RequeueSession");
  }
  absl::StatusOr<SessionView> GetSession(const std::string& session,
                                         absl::Time deadline) override {
    absl::MutexLock lock(&mu_);
    Note("GetSession " + session, "GetSession", deadline);
    if (absl::Status s = FailureOf("GetSession"); !s.ok()) return s;
    auto it = sessions_.find(session);
    if (it == sessions_.end()) return SessionView{SessionView::State::kQueued, ""};
    return it->second;
  }

  SessionView View(const std::string& session) {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(session);
    return it == sessions_.end() ? SessionView{SessionView::State::kQueued, ""} : it->second;
  }
  std::vector<std::string> Calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  absl::Time last_deadline(const std::string& method) {
    absl::MutexLock lock(&mu_);
    return deadlines_[method];
  }

 private:
  SessionView& ViewLocked(const std::string& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return sessions_.try_emplace(session, SessionView{SessionView::State::kQueued, ""})
        .first->second;
  }
  SessionView::State StateLocked(const std::string& session) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = sessions_.find(session);
    return it == sessions_.end() ? SessionView::State::kQueued : it->second.state;
  }
  void Note(std::string call, const std::string& method, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    calls_.push_back(std::move(call));
    deadlines_[method] = deadline;
  }
  absl::Status FailureOf(const std::string& method) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = failures_.find(method);
    return it == failures_.end() ? absl::OkStatus() : it->second;
  }
  absl::Status ReplyOf(const std::string& method) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return lost_replies_.count(method) ? absl::UnavailableError("reply lost")
                                       : absl::OkStatus();
  }

  absl::Mutex mu_;
  // Sessions not listed are QUEUED.
  std::map<std::string, SessionView> sessions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Status> failures_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, bool> lost_replies_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> deadlines_ ABSL_GUARDED_BY(mu_);
};

}  // namespace switchboard::routing
