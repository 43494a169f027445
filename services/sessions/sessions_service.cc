#include "services/sessions/sessions_service.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "libs/auth/grpc_auth.h"
#include "libs/protoutil/time.h"
#include "libs/server/open_streams.h"
#include "libs/server/status.h"
#include "libs/server/unary.h"
#include "services/sessions/attachment_reactors.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using server::FinishNow;
using server::FinishUnary;
using server::RunUnaryAsync;

bool Staff(const Caller& caller) {
  return caller.role == Role::kSupervisor || caller.role == Role::kService;
}

// The key a principal's limits are counted under.
std::string PrincipalKey(const Caller& caller) {
  return absl::StrCat(auth::RoleName(caller.role), ":", caller.id);
}

// One unit of a ConcurrencyLimiter, given back when the last copy of the
// shared_ptr holding it goes (the pool task that ran, or was refused).
class Permit {
 public:
  Permit(limits::ConcurrencyLimiter* limiter, std::string key)
      : limiter_(limiter), key_(std::move(key)) {}
  ~Permit() { limiter_->Release(key_); }
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;

 private:
  limits::ConcurrencyLimiter* const limiter_;
  const std::string key_;
};

// The answer of a write that returns the session: fills `response` and ends
// the call. Responses of those RPCs all carry it in their `session` field.
template <typename Response>
Sessions::Answer<v1::Session> SessionAnswer(Response* response, FinishUnary finish) {
  return [response, finish = std::move(finish)](absl::StatusOr<v1::Session> session) {
    if (!session.ok()) return finish(session.status());
    *response->mutable_session() = *std::move(session);
    finish(absl::OkStatus());
  };
}

}  // namespace

// One StreamSessionEvents stream. Subscribes, replays the store up to the
// subscription point one page at a time (each page read on the pool once the
// previous one is written), then goes live. Deletes itself once gRPC is done
// with it and no pool task of its own is pending.
class SessionsService::StreamReactor
    : public server::StreamWriter<v1::StreamSessionEventsResponse>,
      public SessionListener {
 public:
  StreamReactor(server::StreamCall<v1::StreamSessionEventsResponse>* call,
                SessionsService* service, Caller caller, std::string session_id, int64_t after)
      : StreamWriter(call),
        service_(service),
        caller_(std::move(caller)),
        session_id_(std::move(session_id)),
        last_queued_(after) {}

  // The caller's stream cap: OK (given back in OnDone) or RESOURCE_EXHAUSTED.
  absl::Status Admit() {
    limits::ConcurrencyLimiter* limiter =
        Staff(caller_) ? &service_->staff_streams_ : &service_->user_streams_;
    if (absl::Status s = limiter->Acquire(PrincipalKey(caller_)); !s.ok()) return s;
    limiter_ = limiter;
    return absl::OkStatus();
  }

  void Start() { RunTask([this] { Open(); }); }

  void OnEvent(const v1::SessionEvent& event) override {
    absl::MutexLock lock(&mu_);
    if (finished_ || ending_) return;
    if (!live_) {
      if (event.sequence() <= subscribed_at_) return;
      if (buffered_.size() >= service_->options_.max_stream_backlog) {
        FinishLocked(Behind());
        return;
      }
      buffered_.push_back(event);
      return;
    }
    QueueLiveLocked(event);
    WriteNextLocked();
  }

  void OnTyping(const v1::TypingIndication& typing) override {
    absl::MutexLock lock(&mu_);
    if (finished_ || ending_ || !live_ || typing.participant_id() == caller_.id) return;
    // Typing is ephemeral: under pressure it is dropped, never queued.
    if (queue_.size() >= service_->options_.max_stream_backlog / 2) return;
    *queue_.emplace_back().mutable_typing() = typing;
    WriteNextLocked();
  }

  void OnAccessMaybeLost() override {
    absl::MutexLock lock(&mu_);
    if (caller_.role != auth::Role::kAgent || finished_ || ending_) return;
    RunTaskLocked([this] {
      if (service_->sessions_->Get(caller_, session_id_).ok()) return;
      absl::MutexLock lock(&mu_);
      ending_ = true;
      WriteNextLocked();
    });
  }

  void End(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    FinishLocked(status);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "stream broken"));
      return;
    }
    queue_.pop_front();
    if (queue_.empty() && !live_ && !fetching_ && !finished_ && !ending_ && opened_) {
      fetching_ = true;
      RunTaskLocked([this] { FetchPage(); });
    }
    WriteNextLocked();
  }

  void OnCancel() override { End(grpc::Status::CANCELLED); }

  void OnDone() override {
    service_->streams_.Remove(this);
    if (limiter_ != nullptr) limiter_->Release(PrincipalKey(caller_));
    bool subscribed;
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
      subscribed = subscribed_;
      // Held like a task's until the unsubscribe: once done_ is set, a
      // pending task's Release would otherwise delete the reactor under it.
      ++tasks_;
    }
    if (subscribed) service_->sessions_->Unsubscribe(session_id_, this);
    Release();
  }

 private:
  grpc::Status Behind() const {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("subscriber fell more than ",
                                     service_->options_.max_stream_backlog,
                                     " events behind; reconnect with the last sequence seen"));
  }

  template <typename Task>
  void RunTask(Task task) {
    absl::MutexLock lock(&mu_);
    RunTaskLocked(std::move(task));
  }

  template <typename Task>
  void RunTaskLocked(Task task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++tasks_;
    if (!service_->pool_->Run([this, task = std::move(task)]() mutable {
          task();
          Release();
        })) {
      --tasks_;
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
    }
  }

  void Release() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      --tasks_;
      last = done_ && tasks_ == 0;
    }
    if (last) delete this;
  }

  // On the pool: subscribe, then the first replay page.
  void Open() {
    int64_t after;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      after = last_queued_;
    }
    absl::StatusOr<int64_t> subscribed =
        service_->sessions_->Subscribe(caller_, session_id_, after, this);
    if (!subscribed.ok()) {
      End(server::ToGrpcStatus(subscribed.status()));
      return;
    }
    bool already_done;
    {
      absl::MutexLock lock(&mu_);
      subscribed_ = true;
      subscribed_at_ = *subscribed;
      already_done = done_;
    }
    if (already_done) {
      service_->sessions_->Unsubscribe(session_id_, this);
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      opened_ = true;
      fetching_ = true;
    }
    FetchPage();
  }

  // On the pool: reads the next replay page and queues it.
  void FetchPage() {
    int64_t after;
    int64_t up_to;
    {
      absl::MutexLock lock(&mu_);
      after = last_queued_;
      up_to = subscribed_at_;
      if (finished_) return;
    }
    absl::StatusOr<std::vector<v1::SessionEvent>> events =
        after >= up_to ? std::vector<v1::SessionEvent>()
                       : service_->sessions_->ReadEvents(session_id_, after, up_to,
                                                         service_->options_.replay_page);
    absl::MutexLock lock(&mu_);
    fetching_ = false;
    if (finished_) return;
    if (!events.ok()) {
      FinishLocked(server::ToGrpcStatus(events.status()));
      return;
    }
    for (v1::SessionEvent& event : *events) {
      if (event.sequence() <= last_queued_) continue;
      last_queued_ = event.sequence();
      const bool closed = event.has_state_changed() &&
                          event.state_changed().state() == v1::SESSION_STATE_CLOSED;
      *queue_.emplace_back().mutable_event() = std::move(event);
      if (closed) ending_ = true;
    }
    if (events->empty() || last_queued_ >= subscribed_at_) {
      queue_.emplace_back().mutable_caught_up()->set_last_sequence(subscribed_at_);
      live_ = true;
      for (const v1::SessionEvent& event : buffered_) QueueLiveLocked(event);
      buffered_.clear();
    }
    WriteNextLocked();
  }

  void QueueLiveLocked(const v1::SessionEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (ending_ || event.sequence() <= last_queued_) return;
    if (queue_.size() >= service_->options_.max_stream_backlog) {
      FinishLocked(Behind());
      return;
    }
    last_queued_ = event.sequence();
    *queue_.emplace_back().mutable_event() = event;
    if (!StillParticipates(caller_, event)) ending_ = true;
  }

  void WriteNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return;
    if (queue_.empty()) {
      if (ending_) FinishLocked(grpc::Status::OK);
      return;
    }
    writing_ = true;
    StartWrite(&queue_.front());
  }

  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  SessionsService* const service_;
  const Caller caller_;
  const std::string session_id_;
  // The stream cap this stream holds a unit of; null if none.
  limits::ConcurrencyLimiter* limiter_ = nullptr;
  absl::Mutex mu_;
  // The front is being written while writing_.
  std::deque<v1::StreamSessionEventsResponse> queue_ ABSL_GUARDED_BY(mu_);
  // Live events that arrived during the replay.
  std::vector<v1::SessionEvent> buffered_ ABSL_GUARDED_BY(mu_);
  // The highest sequence queued so far (the request's after_sequence first).
  int64_t last_queued_ ABSL_GUARDED_BY(mu_);
  // Events up to this one are replayed from the store; later ones come live.
  int64_t subscribed_at_ ABSL_GUARDED_BY(mu_) = 0;
  bool opened_ ABSL_GUARDED_BY(mu_) = false;
  bool subscribed_ ABSL_GUARDED_BY(mu_) = false;
  bool fetching_ ABSL_GUARDED_BY(mu_) = false;
  bool live_ ABSL_GUARDED_BY(mu_) = false;
  // The last event to send is queued; finish OK once the queue is written.
  bool ending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  int tasks_ ABSL_GUARDED_BY(mu_) = 0;
};

SessionsService::SessionsService(Sessions* sessions, Attachments* attachments,
                                 const auth::TokenVerifier* tokens, Clock* clock,
                                 server::BlockingPool* pool, Options options)
    : sessions_(sessions),
      attachments_(attachments),
      tokens_(tokens),
      policy_(auth::ServicePolicy::Of(v1::SessionsService::service_full_name())),
      clock_(clock),
      pool_(pool),
      options_(options),
      user_streams_(options.max_streams_per_user, "StreamSessionEvents streams"),
      staff_streams_(options.max_streams_per_staff, "StreamSessionEvents streams"),
      user_calls_(options.max_calls_per_user, "sessions calls in flight"),
      staff_calls_(options.max_calls_per_staff, "sessions calls in flight"),
      user_reads_({options.reads_per_second, options.reads_burst,
                   "ListSessions and ListMessages calls"}),
      staff_reads_({options.staff_reads_per_second, options.staff_reads_burst,
                    "ListSessions and ListMessages calls"}) {}

absl::StatusOr<std::shared_ptr<void>> SessionsService::AcquireCall(const Caller& caller) {
  limits::ConcurrencyLimiter& limiter = Staff(caller) ? staff_calls_ : user_calls_;
  std::string key = PrincipalKey(caller);
  if (absl::Status s = limiter.Acquire(key); !s.ok()) return s;
  return std::make_shared<Permit>(&limiter, std::move(key));
}

template <typename Work>
grpc::ServerUnaryReactor* SessionsService::Run(grpc::CallbackServerContext* context,
                                               const Caller& caller, Work work) {
  return RunAsync(context, caller,
                  [work = std::move(work)](const FinishUnary& finish) mutable {
                    finish(work());
                  });
}

template <typename Work>
grpc::ServerUnaryReactor* SessionsService::RunAsync(grpc::CallbackServerContext* context,
                                                    const Caller& caller, Work work) {
  absl::StatusOr<std::shared_ptr<void>> permit = AcquireCall(caller);
  if (!permit.ok()) return FinishNow(context, permit.status());
  // The permit lives until the call ends, wherever that is.
  return RunUnaryAsync(context, *pool_,
                       [permit = *std::move(permit),
                        work = std::move(work)](FinishUnary finish) mutable {
                         work(FinishUnary([permit, finish = std::move(finish)](
                                              absl::Status status) { finish(std::move(status)); }));
                       });
}

absl::Status SessionsService::SpendRead(const Caller& caller) {
  return (Staff(caller) ? staff_reads_ : user_reads_)
      .Allow(PrincipalKey(caller), clock_->Now());
}

absl::StatusOr<Caller> SessionsService::Authenticate(grpc::ServerContextBase* context,
                                                     absl::string_view method) {
  absl::StatusOr<auth::Principal> principal =
      auth::AuthenticateAndAuthorize(*context, *tokens_, policy_, clock_->Now(), method);
  if (!principal.ok()) return principal.status();
  return Caller{principal->subject, principal->role};
}

grpc::ServerUnaryReactor* SessionsService::CreateSession(
    grpc::CallbackServerContext* context, const v1::CreateSessionRequest* request,
    v1::CreateSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "CreateSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->CreateAsync(
        caller, *request,
        [response, finish = std::move(finish)](absl::StatusOr<Sessions::Created> created) {
          if (!created.ok()) return finish(created.status());
          *response->mutable_session() = std::move(created->session);
          if (created->first_message) {
            *response->mutable_first_message() = *std::move(created->first_message);
          }
          response->set_replayed(created->replayed);
          finish(absl::OkStatus());
        });
  });
}

grpc::ServerUnaryReactor* SessionsService::GetSession(grpc::CallbackServerContext* context,
                                                      const v1::GetSessionRequest* request,
                                                      v1::GetSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "GetSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  // In memory: answered on the callback thread. Else on the pool, which
  // reads the store or hands the wait for a change to the commit.
  if (std::optional<absl::StatusOr<v1::Session>> session =
          sessions_->TryGet(*caller, request->session_id())) {
    if (session->ok()) *response->mutable_session() = std::move(**session);
    return FinishNow(context, session->status());
  }
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->GetAsync(caller, request->session_id(), SessionAnswer(response, finish));
  });
}

grpc::ServerUnaryReactor* SessionsService::ListSessions(
    grpc::CallbackServerContext* context, const v1::ListSessionsRequest* request,
    v1::ListSessionsResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ListSessions");
  if (!caller.ok()) return FinishNow(context, caller.status());
  if (absl::Status s = SpendRead(*caller); !s.ok()) return FinishNow(context, s);
  Sessions::ListFilter filter;
  filter.customer_id = request->customer_id();
  filter.agent_id = request->agent_id();
  for (int state : request->states()) {
    filter.states.push_back(static_cast<v1::SessionState>(state));
  }
  filter.category = request->category();
  filter.channel = request->channel();
  if (request->has_created_after()) {
    filter.created_after = protoutil::FromTimestamp(request->created_after());
  }
  if (request->has_created_before()) {
    filter.created_before = protoutil::FromTimestamp(request->created_before());
  }
  return Run(context, *caller, [this, caller = *caller, filter, request, response] {
    absl::StatusOr<Sessions::SessionPage> page =
        sessions_->List(caller, filter, request->page_size(), request->page_token());
    if (!page.ok()) return page.status();
    for (v1::Session& s : page->sessions) *response->add_sessions() = std::move(s);
    response->set_next_page_token(page->next_page_token);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::SendMessage(grpc::CallbackServerContext* context,
                                                       const v1::SendMessageRequest* request,
                                                       v1::SendMessageResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "SendMessage");
  if (!caller.ok()) return FinishNow(context, caller.status());
  // Ends from the message's group commit: no worker waits for the disk.
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->SendMessageAsync(
        caller, request->session_id(), request->client_message_id(), request->message(),
        [response, finish = std::move(finish)](absl::StatusOr<Sessions::Sent> sent) {
          if (!sent.ok()) return finish(sent.status());
          *response->mutable_message() = std::move(sent->message);
          response->set_replayed(sent->replayed);
          response->set_session_state(sent->state);
          finish(absl::OkStatus());
        });
  });
}

grpc::ServerUnaryReactor* SessionsService::ListMessages(
    grpc::CallbackServerContext* context, const v1::ListMessagesRequest* request,
    v1::ListMessagesResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ListMessages");
  if (!caller.ok()) return FinishNow(context, caller.status());
  if (absl::Status s = SpendRead(*caller); !s.ok()) return FinishNow(context, s);
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<Sessions::MessagePage> page = sessions_->ListMessages(
        caller, request->session_id(), request->after_sequence(), request->before_sequence(),
        request->newest_first(), request->page_size(), request->page_token());
    if (!page.ok()) return page.status();
    for (v1::Message& m : page->messages) *response->add_messages() = std::move(m);
    response->set_next_page_token(page->next_page_token);
    response->set_last_sequence(page->last_sequence);
    return absl::OkStatus();
  });
}

void SessionsService::ServeStreams(server::StreamQueues& queues) {
  queues.Serve<v1::StreamSessionEventsRequest, v1::StreamSessionEventsResponse>(
      [this](grpc::ServerContext* context, v1::StreamSessionEventsRequest* request,
             grpc::ServerAsyncWriter<v1::StreamSessionEventsResponse>* stream,
             grpc::ServerCompletionQueue* queue, void* tag) {
        RequestStreamSessionEvents(context, request, stream, queue, queue, tag);
      },
      [this](server::StreamCall<v1::StreamSessionEventsResponse>* call,
             grpc::ServerContext* context, const v1::StreamSessionEventsRequest& request) {
        return OpenEventStream(call, context, request);
      });
}

server::StreamWriter<v1::StreamSessionEventsResponse>* SessionsService::OpenEventStream(
    server::StreamCall<v1::StreamSessionEventsResponse>* call, grpc::ServerContext* context,
    const v1::StreamSessionEventsRequest& request) {
  absl::StatusOr<Caller> caller = Authenticate(context, "StreamSessionEvents");
  auto* reactor = new StreamReactor(call, this, caller.ok() ? *caller : Caller{},
                                    request.session_id(), request.after_sequence());
  if (!caller.ok()) {
    reactor->End(server::ToGrpcStatus(caller.status()));
    return reactor;
  }
  if (request.after_sequence() < 0) {
    reactor->End(server::ToGrpcStatus(
        absl::InvalidArgumentError("after_sequence: must not be negative")));
    return reactor;
  }
  if (absl::Status s = reactor->Admit(); !s.ok()) {
    reactor->End(server::ToGrpcStatus(s, *context));
    return reactor;
  }
  if (!streams_.Add(reactor, [&] { reactor->Start(); })) {
    reactor->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server shutting down"));
  }
  return reactor;
}

grpc::ServerReadReactor<v1::UploadAttachmentRequest>* SessionsService::UploadAttachment(
    grpc::CallbackServerContext* context, v1::UploadAttachmentResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "UploadAttachment");
  if (!caller.ok()) return RefusedUpload(server::ToGrpcStatus(caller.status()));
  absl::StatusOr<std::shared_ptr<void>> permit = AcquireCall(*caller);
  if (!permit.ok()) return RefusedUpload(server::ToGrpcStatus(permit.status(), *context));
  return StartUpload(attachments_, pool_, *caller, response, options_.upload_time_limit,
                     *std::move(permit));
}

grpc::ServerWriteReactor<v1::DownloadAttachmentResponse>* SessionsService::DownloadAttachment(
    grpc::CallbackServerContext* context, const v1::DownloadAttachmentRequest* request) {
  absl::StatusOr<Caller> caller = Authenticate(context, "DownloadAttachment");
  if (!caller.ok()) return RefusedDownload(server::ToGrpcStatus(caller.status()));
  absl::StatusOr<std::shared_ptr<void>> permit = AcquireCall(*caller);
  if (!permit.ok()) return RefusedDownload(server::ToGrpcStatus(permit.status(), *context));
  return StartDownload(attachments_, pool_, *caller, *request, *std::move(permit));
}

void SessionsService::EndStreams() { streams_.EndAll("reconnect with the last sequence seen"); }


grpc::ServerUnaryReactor* SessionsService::UpdateTyping(grpc::CallbackServerContext* context,
                                                        const v1::UpdateTypingRequest* request,
                                                        v1::UpdateTypingResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "UpdateTyping");
  if (!caller.ok()) return FinishNow(context, caller.status());
  // Never stored: answered on the callback thread while the session is in
  // memory (open sessions are); a CLOSED one is read on the pool.
  if (std::optional<absl::StatusOr<absl::Time>> expires =
          sessions_->TryUpdateTyping(*caller, request->session_id(), request->typing())) {
    if (expires->ok()) protoutil::ToTimestamp(**expires, response->mutable_expires_at());
    return FinishNow(context, expires->status());
  }
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<absl::Time> expires =
        sessions_->UpdateTyping(caller, request->session_id(), request->typing());
    if (!expires.ok()) return expires.status();
    protoutil::ToTimestamp(*expires, response->mutable_expires_at());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::AttachVerification(
    grpc::CallbackServerContext* context, const v1::AttachVerificationRequest* request,
    v1::AttachVerificationResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "AttachVerification");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<Sessions::Verified> verified = sessions_->AttachVerification(
        caller, request->session_id(), request->verification_token());
    if (!verified.ok()) return verified.status();
    *response->mutable_verification() = verified->verification;
    response->set_sequence(verified->sequence);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::EscalateSession(
    grpc::CallbackServerContext* context, const v1::EscalateSessionRequest* request,
    v1::EscalateSessionResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "EscalateSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<v1::Session> session = sessions_->Escalate(caller, request->session_id());
    if (!session.ok()) return session.status();
    *response->mutable_session() = std::move(*session);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::RecordOffer(grpc::CallbackServerContext* context,
                                                       const v1::RecordOfferRequest* request,
                                                       v1::RecordOfferResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "RecordOffer");
  if (!caller.ok()) return FinishNow(context, caller.status());
  if (!request->has_expires_at()) {
    return FinishNow(context, absl::InvalidArgumentError("expires_at: required"));
  }
  return RunAsync(context, *caller, [this, caller = *caller, request](FinishUnary finish) {
    sessions_->RecordOfferAsync(caller, request->session_id(), request->agent_id(),
                                request->offer_id(),
                                protoutil::FromTimestamp(request->expires_at()),
                                std::move(finish));
  });
}

grpc::ServerUnaryReactor* SessionsService::AssignAgent(grpc::CallbackServerContext* context,
                                                       const v1::AssignAgentRequest* request,
                                                       v1::AssignAgentResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "AssignAgent");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->AssignAgentAsync(caller, request->session_id(), request->agent_id(),
                                request->agent_display_name(), request->offer_id(),
                                SessionAnswer(response, finish));
  });
}

grpc::ServerUnaryReactor* SessionsService::TransferSession(
    grpc::CallbackServerContext* context, const v1::TransferSessionRequest* request,
    v1::TransferSessionResponse* response) {
  absl::StatusOr<Caller> caller =
      Authenticate(context, "TransferSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<v1::Session> session = sessions_->Transfer(caller, *request);
    if (!session.ok()) return session.status();
    *response->mutable_session() = std::move(*session);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::RequeueSession(
    grpc::CallbackServerContext* context, const v1::RequeueSessionRequest* request,
    v1::RequeueSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "RequeueSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<v1::Session> session =
        sessions_->Requeue(caller, request->session_id(), request->agent_id());
    if (!session.ok()) return session.status();
    *response->mutable_session() = std::move(*session);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::ResolveSession(
    grpc::CallbackServerContext* context, const v1::ResolveSessionRequest* request,
    v1::ResolveSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ResolveSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->ResolveAsync(caller, request->session_id(), request->resolution_summary(),
                            request->request_id(), SessionAnswer(response, finish));
  });
}

grpc::ServerUnaryReactor* SessionsService::ReopenSession(
    grpc::CallbackServerContext* context, const v1::ReopenSessionRequest* request,
    v1::ReopenSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ReopenSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<v1::Session> session = sessions_->Reopen(
        caller, request->session_id(), request->reason(), request->request_id());
    if (!session.ok()) return session.status();
    *response->mutable_session() = std::move(*session);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::CloseSession(grpc::CallbackServerContext* context,
                                                        const v1::CloseSessionRequest* request,
                                                        v1::CloseSessionResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "CloseSession");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return RunAsync(context, *caller, [this, caller = *caller, request,
                                     response](FinishUnary finish) {
    sessions_->CloseAsync(caller, request->session_id(), request->reason(),
                          SessionAnswer(response, finish));
  });
}

grpc::ServerUnaryReactor* SessionsService::RequestCallback(
    grpc::CallbackServerContext* context, const v1::RequestCallbackRequest* request,
    v1::RequestCallbackResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "RequestCallback");
  if (!caller.ok()) return FinishNow(context, caller.status());
  if (!request->has_callback()) {
    return FinishNow(context, absl::InvalidArgumentError("callback: required"));
  }
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<Sessions::Callback> callback = sessions_->RequestCallback(
        caller, request->session_id(), request->callback(), request->request_id());
    if (!callback.ok()) return callback.status();
    *response->mutable_callback() = std::move(callback->callback);
    *response->mutable_phone_session() = std::move(callback->phone_session);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* SessionsService::ContinueByEmail(
    grpc::CallbackServerContext* context, const v1::ContinueByEmailRequest* request,
    v1::ContinueByEmailResponse* response) {
  absl::StatusOr<Caller> caller = Authenticate(context, "ContinueByEmail");
  if (!caller.ok()) return FinishNow(context, caller.status());
  return Run(context, *caller, [this, caller = *caller, request, response] {
    absl::StatusOr<v1::Session> session = sessions_->ContinueByEmail(caller, request->session_id());
    if (!session.ok()) return session.status();
    *response->mutable_session() = *std::move(session);
    return absl::OkStatus();
  });
}

}  // namespace switchboard::sessions
