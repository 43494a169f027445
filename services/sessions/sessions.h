#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/auth/verifier.h"
#include "libs/clock/clock.h"
#include "libs/storage/ordered_commits.h"
#include "services/sessions/attachment_backend.h"
#include "services/sessions/bot_turn.h"
#include "services/sessions/closed_cache.h"
#include "services/sessions/deadlines.h"
#include "services/sessions/metrics.h"
#include "services/sessions/model.h"
#include "services/sessions/peers.h"
#include "services/sessions/rules.h"
#include "services/sessions/store.h"

namespace switchboard::sessions {

struct SessionsOptions {
  // First-response SLA of EMAIL sessions, unless their category has its own.
  absl::Duration email_sla = absl::Hours(48);
  absl::flat_hash_map<int, absl::Duration> email_sla_by_category;
  // EMAIL categories whose target counts only the open hours of the EMAIL
  // queue's schedule (routing's hours of operation). Their due time comes
  // from routing (GetQueueHours) when the session is created; if routing
  // cannot answer, the calendar due time applies (never later than the
  // business-hours one).
  absl::flat_hash_set<int> business_hours_sla_categories;
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
  // CLOSED sessions kept in memory after use; older ones are read from the
  // store again when asked for.
  size_t closed_cache_size = 10'000;
  // Bot turns that may wait per session behind the one running; a message
  // beyond that escalates the session instead.
  size_t max_waiting_bot_turns = 8;
  // Files one message may carry (NewMessage.attachment_ids).
  int max_attachments_per_message = 10;
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

// Runs background work (telling routing, resetting the bot's dialogue): in
// the service, a pool of its own (--peer_threads), apart from the RPC
// workers. The amount is bounded by the calls and timer ticks that queue it.
using Executor = std::function<void(std::function<void()>)>;
// Runs a task on a pool with a bounded backlog; returns false, dropping the
// task, when the backlog is full. Bot turns run on one of their own, so a
// slow bot never holds the RPC pool.
using BoundedExecutor = std::function<bool(std::function<void()>)>;

// The sessions logic: the state machine (see sessions_service.proto), the
// ordered per-session events, the bot turn, escalation and the hand-over to
// routing, SLAs and idle timeouts. The units it is built from each have one
// job: rules.h (validation, transitions, access), session_events.h (what a
// change writes), bot_turn.h, handoff.h (routing), deadlines.h (when a
// session falls due), closed_cache.h. This class keeps the locking.
//
// Memory holds open work only: sessions that are not CLOSED (and CLOSED ones
// until routing has acknowledged their cancellation). A CLOSED session
// leaves memory once its close is durable; reads of it come from a bounded
// cache or the store. Idempotency keys of messages and creations are looked
// up in the store by index; only keys whose write is not durable yet are in
// memory.
//
// Writes: each is decided under one lock (so a session's sequence numbers
// have no gaps and transitions are atomic), admitted by the store first
// (a full writer backlog refuses it with RESOURCE_EXHAUSTED before anything
// is decided), queued to the store in that order, and answered only once
// committed (group commit). Listeners see an event only once it is
// committed. A retry of a write, or any answer a write RPC gives from
// memory without writing (a session already RESOLVED, a request id seen),
// is given only once the writes it reflects are durable: if such a write
// failed, the retry gets the failure, never a success for something not on
// disk. If a commit fails the memory may be ahead of the disk, so every
// later write is refused with UNAVAILABLE until a restart reloads the store.
//
// Peers: the bot and routing are called without the lock held, from
// background threads, never from the RPC that triggered them, so they carry
// their own timeouts. A customer message is committed before the bot sees
// it; a failed, slow or overloaded bot escalates the session to a human.
// Every change routing must learn of is committed with `routing_pending`
// set before routing is called, and RetryRouting repeats the call until
// routing acknowledges it, so a session is never lost while routing is down.
//
// Crash tests stop the process (libs/fault) at "sessions.create.after_commit"
// (a creation durable but not answered), "sessions.bot_turn.before_answer"
// and "sessions.bot_turn.after_answer" (a committed customer message whose
// bot turn did not finish: a restart runs it again, ResumeBotTurns), and
// "sessions.routing.before_call" (an escalation committed, routing not yet
// told: RetryRouting tells it after a restart).
//
// Errors name the field at fault; a session the caller may not see is
// NOT_FOUND, exactly like a missing one. Thread-safe. Blocking (waits for
// commits, reads the store) unless a method says otherwise: call from worker
// threads.
class Sessions : public AttachmentBackend {
 public:
  // `bot` and `routing` may be null (not configured): then every bot turn
  // escalates, and routing calls stay pending. Nothing owned.
  Sessions(SessionStore* store, Clock* clock, SessionsMetrics* metrics,
           const auth::TokenVerifier* tokens, BotClient* bot, RoutingClient* routing,
           Executor background, BoundedExecutor bot_executor, SessionsOptions options,
           Executor answers = nullptr);

  // Reads the open work from the store. Call once, before anything else.
  absl::Status Load();

  struct Created {
    v1::Session session;
    std::optional<v1::Message> first_message;
    bool replayed = false;
  };
  // The answer of a write's ...Async form: exactly what the blocking form
  // returns, given once and without blocking when the write it reflects is
  // durable: at once, on the calling thread, when there is nothing to wait
  // for (an error, a replay of a stored write); else on the store's commit
  // thread, after the write's events are published, in commit order. If
  // that write fails, its failure is the answer. Must not block.
  //
  // The ...Async forms decide on the calling thread (they may read the
  // store: call them from a worker thread) and return; no thread waits for
  // the disk. The gRPC adapter uses them; the blocking forms wait for the
  // answer.
  template <typename T>
  using Answer = std::function<void(absl::StatusOr<T>)>;

  absl::StatusOr<Created> Create(const Caller& caller,
                                 const v1::CreateSessionRequest& request);
  // The new session's bot turn is queued, and routing told, before `done`.
  void CreateAsync(const Caller& caller, const v1::CreateSessionRequest& request,
                   Answer<Created> done);

  // Non-blocking: the session if it is in memory (open, or a recently used
  // CLOSED one) with its latest change durable, an error that needs no
  // store (bad id, not the caller's); nullopt when the store must be read or
  // a change is still on its way to disk: then call Get, on a worker thread,
  // which waits for it. Neither answers with a state a crash could undo.
  std::optional<absl::StatusOr<v1::Session>> TryGet(const Caller& caller,
                                                    const std::string& session_id);
  absl::StatusOr<v1::Session> Get(const Caller& caller, const std::string& session_id);
  // Get that waits for a change on its way to disk without holding the
  // calling thread (a worker's: a session out of memory is read from the
  // store).
  void GetAsync(const Caller& caller, const std::string& session_id,
                Answer<v1::Session> done);

  using ListFilter = sessions::ListFilter;
  struct SessionPage {
    std::vector<v1::Session> sessions;
    std::string next_page_token;
  };
  // Newest first, committed state, paged by the store's indexes (no lock
  // held while reading). Customers see only their own sessions, agents only
  // those assigned to them; naming anyone else is PERMISSION_DENIED.
  absl::StatusOr<SessionPage> List(const Caller& caller, ListFilter filter, int page_size,
                                   const std::string& page_token);

  struct Sent {
    v1::Message message;
    bool replayed = false;
    v1::SessionState state = v1::SESSION_STATE_UNSPECIFIED;
  };
  absl::StatusOr<Sent> SendMessage(const Caller& caller, const std::string& session_id,
                                   const std::string& client_message_id,
                                   const v1::NewMessage& message);
  // A replay of a message still pending waits for that message's write.
  // The customer's bot turn is queued before `done`.
  void SendMessageAsync(const Caller& caller, const std::string& session_id,
                        const std::string& client_message_id, const v1::NewMessage& message,
                        Answer<Sent> done);

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
  // listener. A CLOSED session has no later events: nothing is registered.
  // Errors: NOT_FOUND; INVALID_ARGUMENT (negative after); OUT_OF_RANGE
  // (after above the last sequence).
  absl::StatusOr<int64_t> Subscribe(const Caller& caller, const std::string& session_id,
                                    int64_t after, SessionListener* listener);
  void Unsubscribe(const std::string& session_id, SessionListener* listener);
  // Committed events with after < sequence <= up_to, at most `limit`.
  absl::StatusOr<std::vector<v1::SessionEvent>> ReadEvents(const std::string& session_id,
                                                           int64_t after, int64_t up_to,
                                                           int limit);

  // Non-blocking, as TryGet: the indication's lapse time, or nullopt when
  // the session is not in memory (call UpdateTyping on a worker thread).
  std::optional<absl::StatusOr<absl::Time>> TryUpdateTyping(const Caller& caller,
                                                            const std::string& session_id,
                                                            bool typing);
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
  void RecordOfferAsync(const Caller& caller, const std::string& session_id,
                        const std::string& agent_id, const std::string& offer_id,
                        absl::Time expires_at, std::function<void(absl::Status)> done);
  absl::StatusOr<v1::Session> AssignAgent(const Caller& caller,
                                          const std::string& session_id,
                                          const std::string& agent_id,
                                          const std::string& display_name,
                                          const std::string& offer_id);
  void AssignAgentAsync(const Caller& caller, const std::string& session_id,
                        const std::string& agent_id, const std::string& display_name,
                        const std::string& offer_id, Answer<v1::Session> done);
  absl::StatusOr<v1::Session> Transfer(const Caller& caller,
                                       const v1::TransferSessionRequest& request);
  absl::StatusOr<v1::Session> Requeue(const Caller& caller, const std::string& session_id,
                                      const std::string& agent_id);
  absl::StatusOr<v1::Session> Resolve(const Caller& caller, const std::string& session_id,
                                      const std::string& summary,
                                      const std::string& request_id);
  void ResolveAsync(const Caller& caller, const std::string& session_id,
                    const std::string& summary, const std::string& request_id,
                    Answer<v1::Session> done);
  absl::StatusOr<v1::Session> Reopen(const Caller& caller, const std::string& session_id,
                                     const std::string& reason,
                                     const std::string& request_id);
  absl::StatusOr<v1::Session> Close(const Caller& caller, const std::string& session_id,
                                    v1::CloseReason reason);
  void CloseAsync(const Caller& caller, const std::string& session_id, v1::CloseReason reason,
                  Answer<v1::Session> done);

  struct Callback {
    v1::CallbackRequest callback;
    v1::Session phone_session;
  };
  absl::StatusOr<Callback> RequestCallback(const Caller& caller,
                                           const std::string& session_id,
                                           const v1::CallbackDetails& details,
                                           const std::string& request_id);

  // QUEUED CHAT -> EMAIL (see ContinueByEmail in sessions_service.proto).
  absl::StatusOr<v1::Session> ContinueByEmail(const Caller& caller,
                                              const std::string& session_id);

  // AttachmentBackend: what the attachment logic asks of sessions.
  absl::Status CheckUpload(const Caller& caller, const std::string& session_id) override;
  absl::Status CheckDownload(const Caller& caller, const std::string& session_id) override;
  absl::Status WriteAttachment(const AttachmentRecord& record) override;
  absl::Status RecordDownload(const Caller& caller, const v1::Attachment& attachment,
                              bool signed_url) override;
  absl::StatusOr<std::optional<AttachmentRecord>> FindAttachment(
      const std::string& attachment_id) override;
  absl::StatusOr<std::optional<AttachmentRecord>> FindUpload(
      const std::string& session_id, const std::string& uploader_id,
      const std::string& upload_id) override;
  absl::StatusOr<std::vector<AttachmentRecord>> PendingScans(int limit) override;
  absl::StatusOr<Usage> UploadedSince(const std::string& uploader_id,
                                      absl::Time since) override;
  absl::StatusOr<std::vector<AttachmentRecord>> ExpiredAttachments(absl::Time closed_before,
                                                                   int limit) override;
  absl::StatusOr<bool> BlobInUse(const std::string& blob_key) override;
  absl::StatusOr<std::vector<AttachmentRecord>> ListAttachments(const std::string& after_id,
                                                                int limit) override;

  // Background work, public so that tests and the service's loops drive it.
  //
  // Runs again the bot turns a previous run left unfinished (call once
  // after Load, from a blocking thread): each goes to the bot executor,
  // waiting for room in its backlog.
  void ResumeBotTurns();
  // Tells routing the session's latest state if it is pending.
  void SyncRouting(const std::string& session_id);
  // SyncRouting for every pending session; returns how many were pending.
  int RetryRouting();
  // Records SLA breaches, drops lapsed offers and closes idle sessions that
  // are due as of the clock's Now (only those: the due times are indexed).
  // Returns how many sessions changed.
  absl::StatusOr<int> Sweep();

  // Sessions held in memory (open work), CLOSED ones in the cache, and
  // idempotency keys whose write is not durable yet: for tests and gauges.
  struct Footprint {
    size_t live_sessions = 0;
    size_t cached_closed = 0;
    size_t pending_keys = 0;
    size_t deadlines = 0;
  };
  Footprint footprint() const;

 private:
  // A session in memory.
  struct Live {
    SessionRecord record;
    // The latest write that changed it: answers given from memory wait for
    // it, so they never reflect what is not durable.
    std::shared_ptr<storage::PendingWrite> last_write;
    // The state it is counted in (gauges, the customer's open sessions).
    v1::SessionState counted_state = v1::SESSION_STATE_UNSPECIFIED;
    // Hashes of every client_message_id the session holds, when this
    // process has seen all of them (it created the session): a key not in
    // it is new without reading the store. Unset for sessions loaded from
    // the store.
    std::optional<absl::flat_hash_set<uint64_t>> message_keys;
  };
  // A message or creation decided but not durable yet, by idempotency key.
  struct PendingMessage {
    std::shared_ptr<storage::PendingWrite> write;
    v1::Message message;
    std::string fingerprint;
  };
  struct PendingCreation {
    std::shared_ptr<storage::PendingWrite> write;
    std::string session_id;
    std::optional<v1::Message> first_message;
  };
  // The keys a write carries, settled when it completes.
  struct WriteKeys {
    std::vector<std::string> messages;
    std::vector<std::string> creations;
    // Ids of the verification tokens it binds.
    std::vector<std::string> tokens;
  };
  // Where a verification token was used, read before deciding (see
  // ReadTokenBinding).
  struct TokenBindingRead {
    // Empty when the token does not verify (the check under the lock then
    // refuses it).
    std::string token_id;
    // The session the store has it bound to.
    std::optional<std::string> stored;
    // The token's settle stamp, taken before the store was read.
    uint64_t stamp = 0;
  };
  // The EMAIL first-response target of `category`, and its due time for a
  // session created (or switched to EMAIL) at `now`: in business hours for
  // the configured categories (asks routing: blocking, call without the
  // lock), else, or when routing cannot answer, `now` + target.
  struct EmailSla {
    absl::Duration target;
    absl::Time due;
    bool business_hours = false;
    std::string time_zone;
  };
  EmailSla EmailSlaFor(common::v1::Category category, const std::string& language,
                       absl::Time now);
  // The PHONE queue's hours for `category` and `language` if it is closed
  // now and opens again; nullopt when open, never opening, or routing cannot
  // answer (the callback is then queued as usual). Blocking, without the
  // lock.
  std::optional<routing::v1::QueueHours> ClosedPhoneHours(common::v1::Category category,
                                                          const std::string& language);
  // Writes the EMAIL SLA into the session (before it is queued: routing is
  // told the due time), and the acknowledgement stating it.
  static void SetEmailSla(v1::Session& session, const EmailSla& sla);
  static std::string Acknowledgement(const v1::Session& session, const EmailSla& sla);
  // Books the callback of a PHONE session for the desk's next opening, and
  // tells the customer in `notify` (the session the customer asked from).
  void BookCallback(SessionRecord& phone, const routing::v1::QueueHours& hours,
                    SessionRecord& notify, absl::Time now, SessionWrite& write);
  // Under the lock, right before deciding a client's write: refused when
  // storage failed (memory may be ahead of the disk) or when the writer's
  // backlog is full (RESOURCE_EXHAUSTED, nothing decided).
  absl::Status AdmitWrite() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Queues `write` (its keys already in the pending maps with `pending`,
  // if given) and returns the handle of its outcome.
  std::shared_ptr<storage::PendingWrite> Commit(SessionWrite write, WriteKeys keys = {},
                                  std::shared_ptr<storage::PendingWrite> pending = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Brings gauges, the customer's open count, the routing-pending set and
  // the deadline index up to date with the live session.
  void Account(const std::string& session_id, Live& live) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // On the commit thread, before anyone can learn of the events: what
  // Subscribe and ListMessages report as committed (a client told of a
  // sequence may subscribe from it at once). Its entry goes with the
  // session when it leaves memory, which a late Publish must not undo.
  void MarkCommitted(const std::vector<v1::SessionEvent>& events);
  // Hands the events to the session's listeners (on answers_); a listener
  // that subscribed after MarkCommitted already has them from the store,
  // and drops them by sequence.
  void Publish(const std::vector<v1::SessionEvent>& events);
  void Settle(const WriteKeys& keys);

  // A verification token verifies the session it is first used on, and no
  // other: these three bind it there and refuse it elsewhere.
  //
  // Reads where `token` is bound (call without mu_, before deciding).
  absl::StatusOr<TokenBindingRead> ReadTokenBinding(const std::string& token, absl::Time now);
  // Under mu_, once the token passed CheckVerification: OK when it may
  // verify `session_id` (unbound, or bound there), PERMISSION_DENIED when it
  // is bound to another session, nullopt when a binding became durable
  // after `read` (read again).
  std::optional<absl::Status> CheckTokenBinding(const TokenBindingRead& read,
                                                const std::string& session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Under mu_, deciding a write that uses the token: binds it to
  // `session_id` in `write` (and as pending, settled through `keys`)
  // unless it is bound already.
  void BindToken(const TokenBindingRead& read, const auth::VerificationClaims& claims,
                 const std::string& session_id, absl::Time now, SessionWrite& write,
                 WriteKeys& keys) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The live session if `caller` may see it; nullptr when it is not in
  // memory (CLOSED and evicted, or missing: see ReadClosed); NOT_FOUND or
  // INVALID_ARGUMENT otherwise. With `past_agents`, agents who ever took
  // part also see it.
  absl::StatusOr<Live*> FindLive(const Caller& caller, const std::string& session_id,
                                 bool past_agents = false) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A session that is not in memory, from the cache or the store, if
  // `caller` may see it; NOT_FOUND otherwise. Call without the lock.
  absl::StatusOr<SessionRecord> ReadClosed(const Caller& caller,
                                           const std::string& session_id,
                                           bool past_agents = false);
  // The session as `caller` sees it now, wherever it is.
  absl::StatusOr<v1::Session> ViewNow(const Caller& caller, const std::string& session_id);
  // Moves a CLOSED session whose close is durable from memory to the cache.
  void MaybeEvict(const std::string& session_id);

  void SetRoutingPending(SessionRecord& record);
  void QueueFor(SessionRecord& record, routing::v1::EnqueueReason reason);
  // Closes with its event and routing cancel as needed.
  absl::Status CloseLocked(SessionRecord& record, v1::CloseReason reason,
                           const std::string& actor, absl::Time now, SessionWrite& write);
  bool BreachIfDue(SessionRecord& record, absl::Time now, SessionWrite& write);
  // The last committed messages as transcript lines, oldest first.
  std::vector<common::v1::TranscriptLine> Excerpt(const std::string& session_id);
  static bool SeenRequest(const SessionRecord& record, const std::string& request_id);
  static void RememberRequest(SessionRecord& record, const std::string& request_id);
  // The key under which an applied AssignAgent's offer is remembered among
  // the session's request ids (apart from clients' ids by its prefix).
  static std::string AppliedOfferKey(const std::string& offer_id);
  void CountState(v1::SessionState from, v1::SessionState to);
  void ScheduleRouting(const std::string& session_id);
  void NotifyAccess(const std::string& session_id);

  // Queues the bot turn of a committed customer message (bot executor).
  void StartBotTurn(const v1::Message& message);
  // The attachments `message` lists, as the sender may attach them to a
  // message in `session_id`: uploaded there by the sender, not REJECTED or
  // DELETED. INVALID_ARGUMENT naming the id otherwise. Reads the store:
  // call without the lock.
  absl::StatusOr<std::vector<v1::Attachment>> AttachedFiles(const Caller& caller,
                                                            const std::string& session_id,
                                                            const v1::NewMessage& message);
  // Runs `message`'s turn, then the session's turns that queued meanwhile.
  // `shed`: the bot's pool was full; the session escalates without asking.
  void RunBotTurns(v1::Message message, bool shed);
  // Asks the bot and decides the answer; returns once the answer's write is
  // queued, not durable (it is published when it is).
  void BotTurn(const v1::Message& message, bool shed);

  absl::StatusOr<Created> ReplayCreation(const Caller& caller, const std::string& session_id,
                                         std::optional<v1::Message> first_message,
                                         const std::string& first_client_message_id);
  // A write decided: its answer, to give once `wait` (null: nothing) is
  // durable; if that write fails, the failure is the answer instead.
  template <typename T>
  struct Decision {
    Decision(T value) : answer(std::move(value)) {}
    Decision(absl::StatusOr<T> answer) : answer(std::move(answer)) {}
    Decision(absl::Status error) : answer(std::move(error)) {}

    absl::StatusOr<T> answer;
    std::shared_ptr<storage::PendingWrite> wait;
    // Runs once `wait` is durable, before the answer, if the answer is OK:
    // what must follow the write (a bot turn, telling routing). Must not
    // block.
    std::function<void()> on_durable;
  };
  // Gives `decision`'s answer to `done` as the ...Async forms promise.
  template <typename T>
  void AnswerWhenDurable(Decision<T> decision, Answer<T> done);
  // Runs `task` on answers_ (or here, without one).
  void RunAnswer(std::function<void()> task);
  // The blocking forms: waits for AnswerWhenDurable's answer.
  template <typename T>
  absl::StatusOr<T> AwaitAnswer(Decision<T> decision);

  // The write RPCs up to the write they wait for: validate, find a replay,
  // or decide and queue the change.
  Decision<Created> DecideCreate(const Caller& caller, const v1::CreateSessionRequest& request);
  Decision<std::monostate> DecideRecordOffer(const Caller& caller,
                                             const std::string& session_id,
                                             const std::string& agent_id,
                                             const std::string& offer_id,
                                             absl::Time expires_at);
  Decision<v1::Session> DecideAssignAgent(const Caller& caller, const std::string& session_id,
                                          const std::string& agent_id,
                                          const std::string& display_name,
                                          const std::string& offer_id);
  Decision<v1::Session> DecideResolve(const Caller& caller, const std::string& session_id,
                                      const std::string& summary,
                                      const std::string& request_id);
  Decision<v1::Session> DecideClose(const Caller& caller, const std::string& session_id,
                                    v1::CloseReason requested);
  // A session in memory as `caller` may see it: the answer, or the write to
  // wait for before answering (the session's latest change, not durable
  // yet), or neither when it is not in memory (the cache or the store).
  struct MemoryRead {
    std::optional<absl::StatusOr<v1::Session>> answer;
    std::shared_ptr<storage::PendingWrite> wait;
  };
  MemoryRead ReadMemory(const Caller& caller, const std::string& session_id);
  // GetAsync's answer, once a write it waited for is durable: `may_block`
  // is false on the commit thread (a store read then goes to background_).
  void AnswerGet(const Caller& caller, const std::string& session_id, bool may_block,
                 Answer<v1::Session> done);
  Decision<Sent> DecideMessage(const Caller& caller, const std::string& session_id,
                               const std::string& client_message_id,
                               const v1::NewMessage& message);
  absl::StatusOr<Sent> ReplayMessage(const Caller& caller, const std::string& fingerprint,
                                     const v1::Message& stored,
                                     const std::string& stored_fingerprint,
                                     v1::SessionState state);

  SessionStore* const store_;
  Clock* const clock_;
  SessionsMetrics* const metrics_;
  // Checks verification tokens (identity's public keys).
  const auth::TokenVerifier* const tokens_;
  BotClient* const bot_;
  RoutingClient* const routing_;
  const Executor background_;
  const BoundedExecutor bot_executor_;
  // Runs, one at a time and in the order given, what follows a commit and
  // talks to clients: the answers of calls whose writes it made durable and
  // the events published to streams. In the service, one thread of its own,
  // so that the commit thread only writes (on a saturated floor, answering,
  // gRPC's sends included, took nearly as long as writing). Null: both run
  // on the commit thread.
  const Executor answers_;
  const SessionsOptions options_;
  const IdleTimeouts idle_timeouts_;

  mutable absl::Mutex mu_;
  // Open work. Node-based: records are referred to across insertions.
  absl::node_hash_map<std::string, Live> sessions_ ABSL_GUARDED_BY(mu_);
  // customer -> sessions not CLOSED (entries at zero are erased).
  absl::flat_hash_map<std::string, int> open_by_customer_ ABSL_GUARDED_BY(mu_);
  DeadlineIndex deadlines_ ABSL_GUARDED_BY(mu_);
  BotTurnQueue bot_turns_ ABSL_GUARDED_BY(mu_);
  // Sessions with routing_pending, and those with a routing call in flight.
  absl::flat_hash_set<std::string> routing_pending_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> routing_in_flight_ ABSL_GUARDED_BY(mu_);
  // (session, sender) -> start of the current one-second window and its count.
  absl::flat_hash_map<std::string, std::pair<absl::Time, int>> send_rate_
      ABSL_GUARDED_BY(mu_);
  // customer -> start of the current one-minute window and sessions created.
  absl::flat_hash_map<std::string, std::pair<absl::Time, int>> create_rate_
      ABSL_GUARDED_BY(mu_);
  // (session, participant) -> when their last typing indication was forwarded.
  absl::flat_hash_map<std::string, absl::Time> typing_sent_ ABSL_GUARDED_BY(mu_);
  // "session\nuploader\nupload_id" of attachment writes not durable yet ->
  // the attachment id writing it and how many such writes are in flight:
  // a second attachment with the key is refused before anything is
  // decided (the store's unique index would otherwise fail the write,
  // and with it every write after it).
  absl::flat_hash_map<std::string, std::pair<std::string, int>> attachment_writes_
      ABSL_GUARDED_BY(mu_);
  // Writes are queued under mu_; answers wait for them outside it.
  storage::OrderedCommits commits_;
  ClosedSessionCache closed_;

  // Taken after mu_ (or alone, by commit callbacks).
  mutable absl::Mutex durable_mu_;
  // "session\nclient_message_id" and "customer\nrequest_id" of writes not
  // durable yet.
  absl::flat_hash_map<std::string, PendingMessage> pending_messages_
      ABSL_GUARDED_BY(durable_mu_);
  absl::flat_hash_map<std::string, PendingCreation> pending_creations_
      ABSL_GUARDED_BY(durable_mu_);
  // token id -> the session a write not durable yet binds it to.
  absl::flat_hash_map<std::string, std::string> pending_tokens_ ABSL_GUARDED_BY(durable_mu_);
  // Key look-ups compare a key's stamp before and after reading the store:
  // a key that settled meanwhile changed it, and the caller reads again.
  storage::SettleStamps settled_ ABSL_GUARDED_BY(durable_mu_);

  // Separate from mu_ (taken after it, never before): commit callbacks
  // publish while other calls decide.
  absl::Mutex listeners_mu_;
  // The last committed sequence of each live session.
  absl::flat_hash_map<std::string, int64_t> committed_ ABSL_GUARDED_BY(listeners_mu_);
  absl::flat_hash_map<std::string, absl::flat_hash_set<SessionListener*>> listeners_
      ABSL_GUARDED_BY(listeners_mu_);
};

}  // namespace switchboard::sessions
