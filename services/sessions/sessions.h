#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/clock/clock.h"
#include "services/sessions/metrics.h"
#include "services/sessions/model.h"
#include "services/sessions/peers.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

struct SessionsOptions {
  // First-response SLA of EMAIL sessions, unless their category has its own.
  absl::Duration email_sla = absl::Hours(48);
  absl::flat_hash_map<int, absl::Duration> email_sla_by_category;
  // How long after resolution ReopenSession is accepted.
  absl::Duration reopen_window = absl::Hours(72);
  // BOT and ASSIGNED sessions without a message this long are closed.
  absl::Duration idle_timeout = absl::Minutes(30);
  // RESOLVED sessions are closed this long after resolution.
  absl::Duration resolved_idle_timeout = absl::Hours(24);
  // Open (not CLOSED) sessions per customer.
  int max_open_sessions = 20;
  // Sessions a customer may open per minute.
  int max_creations_per_minute = 10;
  // Messages per session, all senders.
  int max_messages = 10'000;
  // Messages per second per sender and session.
  int max_messages_per_second = 10;
  // An indication lapses this long after it was sent.
  absl::Duration typing_ttl = absl::Seconds(6);
};

// Who is calling, as the access token names them.
struct Caller {
  std::string id;
  auth::Role role = auth::Role::kCustomer;
};

// Receives one session's committed events, in sequence order, and its typing
// indications. Called on the store's commit thread (events) or the caller's
// thread (typing), never concurrently for one listener; must not block.
class SessionListener {
 public:
  virtual ~SessionListener() = default;
  virtual void OnEvent(const v1::SessionEvent& event) = 0;
  virtual void OnTyping(const v1::TypingIndication& typing) = 0;
  // Who may see the session changed without an event (an offer lapsed or
  // went to another agent): a stream should check its caller's access again.
  virtual void OnAccessMaybeLost() {}
};

// Runs work in the background (the bot turn after a message, telling
// routing): in the service, the blocking pool.
using Executor = std::function<void(std::function<void()>)>;

// The sessions logic: the state machine (see sessions_service.proto), the
// ordered per-session events, the bot turn, escalation and the hand-over to
// routing, SLAs and idle timeouts.
//
// Sessions live in memory and in the store: each operation is decided under
// one lock (so a session's sequence numbers have no gaps and transitions are
// atomic), queued to the store in that order, and answered only after it is
// committed (group commit). Listeners see an event only once it is committed.
// If a commit fails the memory may be ahead of the disk, so every later write
// is refused with UNAVAILABLE until a restart reloads the store.
//
// Peers: the bot and routing are called without the lock held, from
// blocking threads (Executor), never from the RPC that triggered them. A
// customer message is committed before the bot sees it; a failed or slow bot
// escalates the session to a human. Every change routing must learn of is
// committed with `routing_pending` set before routing is called, and
// RetryRouting repeats the call until routing acknowledges it, so a session is
// never lost while routing is down.
//
// Errors name the field at fault; a session the caller may not see is
// NOT_FOUND, exactly like a missing one. Thread-safe. Blocking (waits for
// commits, reads the store): call from worker threads.
class Sessions {
 public:
  // `bot` and `routing` may be null (not configured): then every bot turn
  // escalates, and routing calls stay pending. Nothing owned.
  Sessions(SessionStore* store, Clock* clock, SessionsMetrics* metrics,
           const auth::TokenCodec* tokens, BotClient* bot, RoutingClient* routing,
           Executor background, SessionsOptions options);

  // Reads the store. Call once, before anything else.
  absl::Status Load();

  struct Created {
    v1::Session session;
    std::optional<v1::Message> first_message;
    bool replayed = false;
  };
  absl::StatusOr<Created> Create(const Caller& caller,
                                 const v1::CreateSessionRequest& request);

  absl::StatusOr<v1::Session> Get(const Caller& caller, const std::string& session_id);

  struct ListFilter {
    std::string customer_id;
    std::string agent_id;
    std::vector<v1::SessionState> states;
    common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
    common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
    absl::Time created_after = absl::InfinitePast();
    absl::Time created_before = absl::InfiniteFuture();
  };
  struct SessionPage {
    std::vector<v1::Session> sessions;
    std::string next_page_token;
  };
  // Newest first. Customers see only their own sessions, agents only those
  // assigned to them; naming anyone else is PERMISSION_DENIED.
  absl::StatusOr<SessionPage> List(const Caller& caller, ListFilter filter,
                                   int page_size, const std::string& page_token);

  struct Sent {
    v1::Message message;
    bool replayed = false;
    v1::SessionState state = v1::SESSION_STATE_UNSPECIFIED;
  };
  absl::StatusOr<Sent> SendMessage(const Caller& caller, const std::string& session_id,
                                   const std::string& client_message_id,
                                   const v1::NewMessage& message);

  struct MessagePage {
    std::vector<v1::Message> messages;
    std::string next_page_token;
    int64_t last_sequence = 0;
  };
  absl::StatusOr<MessagePage> ListMessages(const Caller& caller,
                                           const std::string& session_id,
                                           int64_t after, int64_t before,
                                           bool newest_first, int page_size,
                                           const std::string& page_token);

  // Checks access, then registers `listener` for the session's events with a
  // sequence above the returned one (the last committed at that moment):
  // events up to it are in the store (ReadEvents), later ones reach the
  // listener. Errors: NOT_FOUND; INVALID_ARGUMENT (negative after);
  // OUT_OF_RANGE (after above the last sequence).
  absl::StatusOr<int64_t> Subscribe(const Caller& caller, const std::string& session_id,
                                    int64_t after, SessionListener* listener);
  void Unsubscribe(const std::string& session_id, SessionListener* listener);
  // Committed events with after < sequence <= up_to, at most `limit`.
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(const std::string& session_id,
                                                           int64_t after, int64_t up_to,
                                                           int limit);
  // Whether `caller` still belongs on a stream of the session after `event`
  // (an agent transferred away or an offer that went to another agent does
  // not).
  static bool StillParticipates(const Caller& caller, const v1::SessionEvent& event);

  // Returns when the indication lapses.
  absl::StatusOr<absl::Time> UpdateTyping(const Caller& caller,
                                          const std::string& session_id, bool typing);

  struct Verified {
    common::v1::VerificationState verification;
    int64_t sequence = 0;
  };
  absl::StatusOr<Verified> AttachVerification(const Caller& caller,
                                              const std::string& session_id,
                                              const std::string& token);

  absl::StatusOr<v1::Session> Escalate(const Caller& caller, const std::string& session_id);
  absl::Status RecordOffer(const Caller& caller, const std::string& session_id,
                           const std::string& agent_id, const std::string& offer_id,
                           absl::Time expires_at);
  absl::StatusOr<v1::Session> AssignAgent(const Caller& caller,
                                          const std::string& session_id,
                                          const std::string& agent_id,
                                          const std::string& display_name,
                                          const std::string& offer_id);
  absl::StatusOr<v1::Session> Transfer(const Caller& caller,
                                       const v1::TransferSessionRequest& request);
  absl::StatusOr<v1::Session> Requeue(const Caller& caller, const std::string& session_id,
                                      const std::string& agent_id);
  absl::StatusOr<v1::Session> Resolve(const Caller& caller, const std::string& session_id,
                                      const std::string& summary,
                                      const std::string& request_id);
  absl::StatusOr<v1::Session> Reopen(const Caller& caller, const std::string& session_id,
                                     const std::string& reason,
                                     const std::string& request_id);
  absl::StatusOr<v1::Session> Close(const Caller& caller, const std::string& session_id,
                                    v1::CloseReason reason);

  struct Callback {
    v1::CallbackRequest callback;
    v1::Session phone_session;
  };
  absl::StatusOr<Callback> RequestCallback(const Caller& caller,
                                           const std::string& session_id,
                                           const v1::CallbackDetails& details,
                                           const std::string& request_id);

  // Background work, public so that tests and the service's loops drive it.
  //
  // One bot turn for the committed customer message `message` (BOT state).
  // A session's turns run one at a time, in message order.
  void RunBotTurn(const v1::Message& message);
  // Runs again the bot turns a previous run left unfinished (call once
  // after Load, from a blocking thread).
  void ResumeBotTurns();
  // Tells routing the session's latest state if it is pending.
  void SyncRouting(const std::string& session_id);
  // SyncRouting for every pending session; returns how many were pending.
  int RetryRouting();
  // Records SLA breaches, drops lapsed offers and closes idle sessions, as
  // of the clock's Now.
  // Returns how many sessions changed.
  absl::StatusOr<int> Sweep();

 private:
  struct Pending;

  absl::Status CheckWritable() const;
  void BotTurn(const v1::Message& message);
  std::shared_ptr<Pending> Commit(SessionWrite write) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Wait(const std::shared_ptr<Pending>& pending);
  void Publish(const std::vector<v1::SessionEvent>& events);

  // The session if `caller` may see it, else NOT_FOUND. With `past_agents`,
  // agents who ever took part also see it.
  absl::StatusOr<SessionRecord*> Find(const Caller& caller, const std::string& session_id,
                                      bool past_agents = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  v1::Session ViewFor(const SessionRecord& record, const Caller& caller) const;

  // Appends a numbered event to the session and the write.
  v1::SessionEvent& AddEvent(SessionRecord& record, absl::Time now, SessionWrite& write);
  // Moves the session to `to` if the state machine allows it, recording a
  // StateChange event; FAILED_PRECONDITION (nothing changed) otherwise.
  absl::Status Transition(SessionRecord& record, v1::SessionState to,
                          v1::StateChangeReason reason, const std::string& actor,
                          absl::Time now, SessionWrite& write);
  // Appends a message (any sender) with its MessageSent event.
  v1::Message& AddMessage(SessionRecord& record, v1::Message message, absl::Time now,
                          SessionWrite& write);
  // BOT -> QUEUED with `handoff` completed by the session's own knowledge.
  absl::Status EscalateLocked(SessionRecord& record, common::v1::HandoffContext handoff,
                              std::vector<common::v1::TranscriptLine> excerpt,
                              const std::string& actor, absl::Time now,
                              SessionWrite& write);
  void SetRoutingPending(SessionRecord& record);
  void QueueFor(SessionRecord& record, routing::v1::EnqueueReason reason, absl::Time now);
  // Closes with its event and routing cancel as needed.
  absl::Status CloseLocked(SessionRecord& record, v1::CloseReason reason,
                           const std::string& actor, absl::Time now, SessionWrite& write);
  bool BreachIfDue(SessionRecord& record, absl::Time now, SessionWrite& write);
  // The last messages (committed) as transcript lines, oldest first.
  std::vector<common::v1::TranscriptLine> Excerpt(const std::string& session_id);
  absl::StatusOr<common::v1::VerificationState> CheckVerification(
      const std::string& token, const std::string& customer_id,
      const std::string& session_id, absl::Time now) const;
  static bool SeenRequest(const SessionRecord& record, const std::string& request_id);
  static void RememberRequest(SessionRecord& record, const std::string& request_id);
  void CountState(v1::SessionState from, v1::SessionState to);
  void ScheduleRouting(const std::string& session_id);
  void NotifyAccess(const std::string& session_id);

  SessionStore* const store_;
  Clock* const clock_;
  SessionsMetrics* const metrics_;
  const auth::TokenCodec* const tokens_;
  BotClient* const bot_;
  RoutingClient* const routing_;
  const Executor background_;
  const SessionsOptions options_;

  mutable absl::Mutex mu_;
  std::map<std::string, SessionRecord> sessions_ ABSL_GUARDED_BY(mu_);
  // (customer_id, request_id) -> session_id, for CreateSession retries.
  absl::flat_hash_map<std::string, std::string> created_by_request_ ABSL_GUARDED_BY(mu_);
  // session_id -> client_message_id -> the message first stored with it.
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, StoredMessage>>
      keyed_messages_ ABSL_GUARDED_BY(mu_);
  // (session, sender) -> start of the current one-second window and its count.
  absl::flat_hash_map<std::string, std::pair<absl::Time, int>> send_rate_
      ABSL_GUARDED_BY(mu_);
  // customer -> start of the current one-minute window and sessions created.
  absl::flat_hash_map<std::string, std::pair<absl::Time, int>> create_rate_
      ABSL_GUARDED_BY(mu_);
  // (session, participant) -> when their last typing indication was forwarded.
  absl::flat_hash_map<std::string, absl::Time> typing_sent_ ABSL_GUARDED_BY(mu_);
  // Sessions with a bot turn running, and the messages waiting for theirs.
  absl::flat_hash_map<std::string, std::deque<v1::Message>> bot_turns_ ABSL_GUARDED_BY(mu_);
  // Sessions with a routing call in flight.
  absl::flat_hash_set<std::string> routing_in_flight_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> store_failed_{false};

  // Separate from mu_ (taken after it, never before): commit callbacks
  // publish while other calls decide.
  absl::Mutex listeners_mu_;
  absl::flat_hash_map<std::string, int64_t> committed_ ABSL_GUARDED_BY(listeners_mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<SessionListener*>> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
};

// Whether the state machine allows `from` -> `to` (see sessions_service.proto).
bool TransitionAllowed(v1::SessionState from, v1::SessionState to);

// Checks a client's message: text (at most 4,000 code points, valid UTF-8,
// no control characters but tab and newline), attachments (at most 5, with
// the limits of Attachment), quick reply id; not empty.
absl::Status ValidateNewMessage(absl::string_view field, const v1::NewMessage& message);

// An idempotency key: 1 to 64 letters, digits, '-' or '_'.
absl::Status ValidateKey(absl::string_view field, absl::string_view key, bool required);

}  // namespace switchboard::sessions
