#include "tools/loadgen/journey.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/auth/grpc_auth.h"
#include "libs/client/peer.h"

namespace switchboard::loadgen {
namespace {

bool Retryable(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::UNAVAILABLE ||
         status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
}

// The customer's view of the session, read on its own thread.
class Watch {
 public:
  Watch(const PlatformClients& clients, const std::string& token, const std::string& session,
        Journey* journey)
      : thread_([this, &clients, token, session, journey] {
          absl::Duration backoff = clients.retry().first_backoff;
          for (;;) {
            sessions::v1::StreamSessionEventsRequest request;
            request.set_session_id(session);
            grpc::ClientContext context;
            auth::AttachToken(context, token);
            {
              absl::MutexLock lock(&mu_);
              if (stop_) return;
              request.set_after_sequence(last_);
              context_ = &context;
            }
            auto reader = clients.sessions().StreamSessionEvents(&context, request);
            sessions::v1::StreamSessionEventsResponse response;
            while (reader->Read(&response)) {
              if (!response.has_event()) continue;
              absl::MutexLock lock(&mu_);
              journey->streamed.push_back(response.event().sequence());
              last_ = response.event().sequence();
              backoff = clients.retry().first_backoff;
            }
            const grpc::Status ended = reader->Finish();
            {
              absl::MutexLock lock(&mu_);
              context_ = nullptr;
              // OK: the session closed, and the stream has all of it.
              if (stop_ || ended.ok()) return;
              ++journey->stream_resumes;
              mu_.AwaitWithTimeout(absl::Condition(&stop_), backoff);
            }
            backoff = std::min(backoff * 2, clients.retry().max_backoff);
          }
        }) {}

  // Waits up to `limit` for the stream to reach `sequence`, then ends it.
  void FinishAt(int64_t sequence, absl::Duration limit) {
    absl::MutexLock lock(&mu_);
    struct Arg {
      const Watch* watch;
      int64_t sequence;
    } arg{this, sequence};
    mu_.AwaitWithTimeout(absl::Condition(
                             +[](Arg* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                               return a->watch->last_ >= a->sequence;
                             },
                             &arg),
                         limit);
    stop_ = true;
    if (context_ != nullptr) context_->TryCancel();
  }

  ~Watch() {
    FinishAt(0, absl::ZeroDuration());
    thread_.join();
  }

 private:
  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  int64_t last_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread thread_;
};

}  // namespace

PlatformClients::PlatformClients(const Platform& platform, RetryPolicy retry)
    : platform_(platform), retry_(retry) {
  const auto channel = [&](const std::string& service) {
    grpc::ChannelArguments args;
    args.SetServiceConfigJSON(client::kBalancedServiceConfig);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
    return grpc::CreateCustomChannel(platform.address(service),
                                     grpc::InsecureChannelCredentials(), args);
  };
  sessions_ = sessions::v1::SessionsService::NewStub(channel("sessions"));
  routing_ = routing::v1::RoutingService::NewStub(channel("routing"));
  presence_ = presence::v1::PresenceService::NewStub(channel("presence"));
  feedback_ = feedback::v1::FeedbackService::NewStub(channel("feedback"));
}

std::unique_ptr<grpc::ClientContext> PlatformClients::Context(const std::string& token) const {
  auto context = std::make_unique<grpc::ClientContext>();
  auth::AttachToken(*context, token);
  context->set_deadline(absl::ToChronoTime(absl::Now() + retry_.attempt_deadline));
  return context;
}

grpc::Status PlatformClients::Retrying(const std::function<grpc::Status()>& call,
                                       int* retries) const {
  const absl::Time give_up = absl::Now() + retry_.give_up_after;
  absl::Duration backoff = retry_.first_backoff;
  for (;;) {
    grpc::Status status = call();
    if (!Retryable(status) || absl::Now() + backoff > give_up) return status;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, retry_.max_backoff);
    ++*retries;
  }
}

OnlineAgents::OnlineAgents(const PlatformClients& clients, const std::string& prefix,
                           int count, int capacity, absl::Duration heartbeat_every)
    : clients_(clients) {
  const std::string supervisor = clients.Token(auth::Role::kSupervisor, prefix + "-supervisor");
  int retries = 0;
  for (int i = 0; i < count && status_.ok(); ++i) {
    const std::string agent = absl::StrCat(prefix, "-", i);
    ids_.push_back(agent);
    const std::string token = clients.Token(auth::Role::kAgent, agent);
    // A supervisor sets what the agent handles; the agent goes online.
    presence::v1::SetAgentProfileRequest grant;
    grant.set_agent_id(agent);
    grant.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
    grant.mutable_profile()->mutable_skills()->add_languages("en");
    presence::v1::ChannelCapacity* chat = grant.mutable_profile()->add_capacities();
    chat->set_channel(common::v1::CHANNEL_CHAT);
    chat->set_capacity(capacity);
    presence::v1::SetAgentProfileResponse granted;
    presence::v1::SetStatusRequest online;
    online.set_status(presence::v1::AGENT_STATUS_ONLINE);
    presence::v1::SetStatusResponse set;
    routing::v1::UpdateAgentSettingsRequest settings;
    settings.mutable_settings()->set_auto_accept(true);
    routing::v1::UpdateAgentSettingsResponse updated;
    grpc::Status status = clients.Retrying(
        [&] {
          return clients.presence().SetAgentProfile(clients.Context(supervisor).get(), grant,
                                                    &granted);
        },
        &retries);
    if (status.ok()) {
      status = clients.Retrying(
          [&] { return clients.presence().SetStatus(clients.Context(token).get(), online, &set); },
          &retries);
    }
    if (status.ok()) {
      status = clients.Retrying(
          [&] {
            return clients.routing().UpdateAgentSettings(clients.Context(token).get(), settings,
                                                         &updated);
          },
          &retries);
    }
    if (!status.ok()) {
      status_ = absl::UnavailableError(absl::StrCat("agent ", agent, ": ", status.error_code(),
                                                    " ", status.error_message()));
    }
  }
  heartbeats_ = std::thread([this, heartbeat_every] {
    std::vector<std::string> tokens;
    for (const std::string& agent : ids_) {
      tokens.push_back(clients_.Token(auth::Role::kAgent, agent));
    }
    while (!done_) {
      const absl::Time next = absl::Now() + heartbeat_every;
      for (const std::string& token : tokens) {
        presence::v1::HeartbeatResponse beat;
        int retries = 0;
        if (!clients_
                 .Retrying(
                     [&] {
                       return clients_.presence().Heartbeat(clients_.Context(token).get(), {},
                                                            &beat);
                     },
                     &retries)
                 .ok()) {
          ++lost_heartbeats_;
        }
      }
      while (!done_ && absl::Now() < next) absl::SleepFor(absl::Milliseconds(20));
    }
  });
}

OnlineAgents::~OnlineAgents() {
  done_ = true;
  heartbeats_.join();
}

namespace {

// PlayJourney's steps; `watch` is PlayJourney's, which ends it before
// `journey` is read.
void Play(const PlatformClients& clients, const JourneyOptions& options, int index,
          Journey& journey, std::unique_ptr<Watch>& watch) {
  const auto failed = [&](const std::string& stage, const grpc::Status& status) {
    journey.failed_stage = stage;
    journey.failure = status;
  };
  const std::string& customer = journey.customer;
  const std::string ctoken = clients.Token(auth::Role::kCustomer, customer);
  sessions::v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.set_language("en");
  create.set_request_id(absl::StrCat("journey-", index));
  create.set_first_client_message_id("c-first");
  create.mutable_first_message()->set_text("My deposit has not arrived, I want a human agent");
  sessions::v1::CreateSessionResponse created;
  if (grpc::Status s = clients.Retrying(
          [&] {
            return clients.sessions().CreateSession(clients.Context(ctoken).get(), create,
                                                    &created);
          },
          &journey.retries);
      !s.ok()) {
    return failed("create", s);
  }
  journey.session_id = created.session().session_id();
  const std::string& session = journey.session_id;
  journey.customer_sent.emplace_back("c-first", created.first_message().sequence());
  if (options.watch) watch = std::make_unique<Watch>(clients, ctoken, session, &journey);

  const std::string supervisor = clients.Token(auth::Role::kSupervisor, "journey-supervisor");
  const auto get = [&](sessions::v1::GetSessionResponse* got) {
    sessions::v1::GetSessionRequest request;
    request.set_session_id(session);
    return clients.Retrying(
        [&] {
          return clients.sessions().GetSession(clients.Context(supervisor).get(), request, got);
        },
        &journey.retries);
  };
  const absl::Time give_up = absl::Now() + absl::Seconds(60);
  while (journey.agent.empty()) {
    sessions::v1::GetSessionResponse got;
    if (grpc::Status s = get(&got); !s.ok()) return failed("wait_assigned", s);
    if (got.session().state() == sessions::v1::SESSION_STATE_ASSIGNED) {
      journey.agent = got.session().assigned_agent_id();
      journey.assigned_seen = absl::Now();
    } else if (absl::Now() > give_up) {
      return failed("wait_assigned", grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                                  "not assigned within 60 s"));
    } else {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  const std::string atoken = clients.Token(auth::Role::kAgent, journey.agent);
  for (int m = 0; m < options.messages; ++m) {
    const bool from_customer = m % 2 == 0;
    sessions::v1::SendMessageRequest send;
    send.set_session_id(session);
    send.set_client_message_id(absl::StrCat(from_customer ? "c-" : "a-", m));
    send.mutable_message()->set_text(from_customer ? "Here are the details of my deposit"
                                                   : "Thank you, checking it now");
    sessions::v1::SendMessageResponse sent;
    if (grpc::Status s = clients.Retrying(
            [&] {
              return clients.sessions().SendMessage(
                  clients.Context(from_customer ? ctoken : atoken).get(), send, &sent);
            },
            &journey.retries);
        !s.ok()) {
      return failed("send_message", s);
    }
    (from_customer ? journey.customer_sent : journey.agent_sent)
        .emplace_back(send.client_message_id(), sent.message().sequence());
  }
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(session);
  resolve.set_resolution_summary("credited");
  resolve.set_request_id(absl::StrCat("resolve-", index));
  sessions::v1::ResolveSessionResponse resolved;
  journey.resolve_called = absl::Now();
  if (grpc::Status s = clients.Retrying(
          [&] {
            return clients.sessions().ResolveSession(clients.Context(atoken).get(), resolve,
                                                     &resolved);
          },
          &journey.retries);
      !s.ok()) {
    return failed("resolve", s);
  }
  feedback::v1::SubmitFeedbackRequest rate;
  rate.set_session_id(session);
  rate.mutable_ratings()->set_response_speed(5);
  rate.mutable_ratings()->set_professionalism(5);
  rate.mutable_ratings()->set_problem_resolution(5);
  rate.set_overall_satisfaction(5);
  rate.set_request_id(absl::StrCat("rate-", index));
  feedback::v1::SubmitFeedbackResponse rated;
  if (grpc::Status s = clients.Retrying(
          [&] {
            return clients.feedback().SubmitFeedback(clients.Context(ctoken).get(), rate, &rated);
          },
          &journey.retries);
      !s.ok()) {
    return failed("rate", s);
  }
  if (watch != nullptr) {
    sessions::v1::GetSessionResponse got;
    if (grpc::Status s = get(&got); !s.ok()) return failed("last_sequence", s);
    journey.last_sequence = got.session().last_sequence();
    watch->FinishAt(journey.last_sequence, absl::Seconds(30));
  }
}

}  // namespace

Journey PlayJourney(const PlatformClients& clients, const JourneyOptions& options,
                    const std::string& customer, int index) {
  Journey journey;
  journey.customer = customer;
  std::unique_ptr<Watch> watch;
  Play(clients, options, index, journey, watch);
  watch.reset();
  return journey;
}

}  // namespace switchboard::loadgen
