#include "tools/cli/demo.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "libs/protoutil/time.h"
#include "tools/cli/chat.h"
#include "tools/cli/command_line.h"
#include "tools/cli/streams.h"

namespace switchboard::cli {
namespace {

#define DEMO_RETURN_IF_ERROR(expr)        \
  do {                                    \
    absl::Status demo_status_ = (expr);   \
    if (!demo_status_.ok()) return demo_status_; \
  } while (0)

using sessions::v1::SessionState;

std::string Quote(absl::string_view text, size_t limit = 70) {
  if (text.size() <= limit) return absl::StrCat("\"", text, "\"");
  size_t cut = limit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // UTF-8
  return absl::StrCat("\"", text.substr(0, cut), "...\"");
}

// Renews an agent's presence lease in the background, as a device does. A
// failed heartbeat is reported through `on_error` and retried soon, not a
// whole interval later: a few lost in a row would let the lease lapse.
class Heartbeats {
 public:
  Heartbeats(const Clients& clients, std::string token, absl::Duration interval,
             std::function<void(const std::string&)> on_error)
      : thread_([this, &clients, token = std::move(token), interval,
                 on_error = std::move(on_error)] {
          absl::Duration wait = interval;
          while (!stop_.WaitForNotificationWithTimeout(wait)) {
            presence::v1::HeartbeatResponse response;
            const grpc::Status status =
                clients.presence->Heartbeat(clients.Context(token).get(), {}, &response);
            wait = status.ok() ? interval : std::min(interval, absl::Milliseconds(100));
            if (!status.ok()) on_error(FromGrpc(status).ToString());
          }
        }) {}
  ~Heartbeats() { Stop(); }
  void Stop() {
    if (!stop_.HasBeenNotified()) stop_.Notify();
    if (thread_.joinable()) thread_.join();
  }

 private:
  absl::Notification stop_;
  std::thread thread_;
};

// An agent's WatchOffers stream, read on its own thread.
class OfferWatch {
 public:
  using OnOffer = std::function<void(const routing::v1::Offer&)>;
  OfferWatch(const Clients& clients, const std::string& token, OnOffer on_offer)
      : context_(clients.StreamContext(token)), on_offer_(std::move(on_offer)) {
    thread_ = std::thread([this, &clients] {
      auto stream = clients.routing->WatchOffers(context_.get(), {});
      routing::v1::WatchOffersResponse response;
      while (stream->Read(&response)) {
        if (!response.has_offer()) continue;
        {
          absl::MutexLock lock(&mu_);
          offers_.push_back(response.offer());
        }
        on_offer_(response.offer());
      }
      stream->Finish();
    });
  }
  ~OfferWatch() {
    context_->TryCancel();
    thread_.join();
  }
  // The latest open offer of `session`, or "".
  std::string OfferFor(const std::string& session) {
    absl::MutexLock lock(&mu_);
    for (auto it = offers_.rbegin(); it != offers_.rend(); ++it) {
      if (it->entry().session_id() == session) return it->offer_id();
    }
    return "";
  }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  OnOffer on_offer_;
  absl::Mutex mu_;
  std::vector<routing::v1::Offer> offers_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

class Demo {
 public:
  Demo(Command& command, absl::Duration max_lapse_wait, absl::Duration step_limit)
      : clients_(*command.clients),
        printer_(*command.printer),
        max_lapse_wait_(max_lapse_wait),
        step_limit_(step_limit),
        start_(absl::Now()) {}

  absl::Status Play();

 private:
  void Step(absl::string_view actor, absl::string_view what);
  absl::Status WaitFor(absl::string_view what, const std::function<bool()>& done,
                       absl::Duration limit);
  absl::Status WaitFor(absl::string_view what, const std::function<bool()>& done) {
    return WaitFor(what, done, step_limit_);
  }
  void OnSessionEvent(const sessions::v1::StreamSessionEventsResponse& response);
  int StateCount(SessionState state);
  bool SawText(const std::string& text);
  // A supervisor sets the agent up (deposit chats in English, 2 at once),
  // then the agent goes online.
  absl::StatusOr<presence::v1::SetStatusResponse> GoOnline(const std::string& agent,
                                                           const std::string& token,
                                                           const std::string& name);
  absl::Status Say(const std::string& actor, const std::string& token, const std::string& text);
  absl::Status AcceptOffer(const std::string& actor, const std::string& token, OfferWatch& offers);
  void PrintFigures();

  const Clients& clients_;
  Printer& printer_;
  const absl::Duration max_lapse_wait_;
  const absl::Duration step_limit_;
  const absl::Time start_;
  std::string session_;
  std::string customer_token_;

  absl::Mutex mu_;
  std::vector<sessions::v1::SessionEvent> events_ ABSL_GUARDED_BY(mu_);
};

void Demo::Step(absl::string_view actor, absl::string_view what) {
  const int64_t elapsed = absl::ToInt64Milliseconds(absl::Now() - start_);
  if (printer_.json()) {
    printer_.JsonLine(absl::StrCat("{\"elapsed_ms\":", elapsed, ",\"actor\":\"", actor,
                                   "\",\"event\":", JsonString(what), "}"));
  } else {
    printer_.Text(absl::StrFormat("%+8d ms  %-9s %s", elapsed, std::string(actor),
                                  std::string(what)));
  }
}

absl::Status Demo::WaitFor(absl::string_view what, const std::function<bool()>& done,
                           absl::Duration limit) {
  const absl::Time give_up = absl::Now() + limit;
  while (!done()) {
    if (absl::Now() > give_up) {
      return absl::DeadlineExceededError(
          absl::StrCat("no ", what, " within ", HumanDuration(limit)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

void Demo::OnSessionEvent(const sessions::v1::StreamSessionEventsResponse& response) {
  if (!response.has_event()) return;
  const sessions::v1::SessionEvent& event = response.event();
  {
    absl::MutexLock lock(&mu_);
    events_.push_back(event);
  }
  if (event.has_message() && event.message().sender_role() == common::v1::SENDER_ROLE_BOT) {
    std::string what = absl::StrCat("answers ", Quote(event.message().text()));
    if (!event.message().bot().intent_id().empty()) {
      absl::StrAppend(&what, absl::StrFormat(" (intent %s, confidence %.2f)",
                                             event.message().bot().intent_id(),
                                             event.message().bot().confidence()));
    }
    Step("bot", what);
  } else if (event.has_message() &&
             event.message().sender_role() == common::v1::SENDER_ROLE_SYSTEM) {
    Step("sessions", absl::StrCat("system message ", Quote(event.message().text())));
  } else if (event.has_state_changed()) {
    const sessions::v1::StateChange& change = event.state_changed();
    Step("sessions",
         absl::StrCat("session ",
                      EnumLabel(sessions::v1::SessionState_descriptor(), change.previous_state()),
                      " -> ", EnumLabel(sessions::v1::SessionState_descriptor(), change.state()),
                      " (", EnumLabel(sessions::v1::StateChangeReason_descriptor(), change.reason()),
                      change.agent_id().empty() ? "" : absl::StrCat(", agent ", change.agent_id()),
                      change.close_reason() == sessions::v1::CLOSE_REASON_UNSPECIFIED
                          ? ""
                          : absl::StrCat(", ", EnumLabel(sessions::v1::CloseReason_descriptor(),
                                                         change.close_reason())),
                      ")"));
  }
}

int Demo::StateCount(SessionState state) {
  absl::MutexLock lock(&mu_);
  int count = 0;
  for (const auto& event : events_) {
    count += event.has_state_changed() && event.state_changed().state() == state;
  }
  return count;
}

bool Demo::SawText(const std::string& text) {
  absl::MutexLock lock(&mu_);
  for (const auto& event : events_) {
    if (event.has_message() && event.message().text() == text) return true;
  }
  return false;
}

absl::StatusOr<presence::v1::SetStatusResponse> Demo::GoOnline(const std::string& agent,
                                                               const std::string& token,
                                                               const std::string& name) {
  absl::StatusOr<std::string> supervisor =
      clients_.Token(auth::Role::kSupervisor, "demo-supervisor");
  if (!supervisor.ok()) return supervisor.status();
  presence::v1::SetAgentProfileRequest grant;
  grant.set_agent_id(agent);
  presence::v1::AgentProfile* profile = grant.mutable_profile();
  profile->set_display_name(name);
  profile->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  profile->mutable_skills()->add_languages("en");
  presence::v1::ChannelCapacity* chat = profile->add_capacities();
  chat->set_channel(common::v1::CHANNEL_CHAT);
  chat->set_capacity(2);
  presence::v1::SetAgentProfileResponse granted;
  DEMO_RETURN_IF_ERROR(FromGrpc(clients_.presence->SetAgentProfile(
      clients_.Context(*supervisor).get(), grant, &granted)));
  routing::v1::UpdateAgentSettingsRequest settings;
  settings.mutable_settings()->set_auto_accept(false);
  routing::v1::UpdateAgentSettingsResponse updated;
  DEMO_RETURN_IF_ERROR(FromGrpc(
      clients_.routing->UpdateAgentSettings(clients_.Context(token).get(), settings, &updated)));
  presence::v1::SetStatusRequest request;
  request.set_status(presence::v1::AGENT_STATUS_ONLINE);
  request.set_device_id("switchboard-demo");
  presence::v1::SetStatusResponse response;
  DEMO_RETURN_IF_ERROR(
      FromGrpc(clients_.presence->SetStatus(clients_.Context(token).get(), request, &response)));
  return response;
}

absl::Status Demo::Say(const std::string& actor, const std::string& token,
                       const std::string& text) {
  sessions::v1::SendMessageRequest request;
  request.set_session_id(session_);
  request.set_client_message_id(NewRequestId());
  request.mutable_message()->set_text(text);
  sessions::v1::SendMessageResponse response;
  DEMO_RETURN_IF_ERROR(
      FromGrpc(clients_.sessions->SendMessage(clients_.Context(token).get(), request, &response)));
  Step(actor, absl::StrCat("says ", Quote(text)));
  return absl::OkStatus();
}

absl::Status Demo::AcceptOffer(const std::string& actor, const std::string& token,
                               OfferWatch& offers) {
  std::string offer_id;
  DEMO_RETURN_IF_ERROR(WaitFor(absl::StrCat("offer to ", actor, " (another online agent with the "
                                            "deposit/en skills may have been offered it)"),
                               [&] { return !(offer_id = offers.OfferFor(session_)).empty(); }));
  routing::v1::AcceptOfferRequest request;
  request.set_offer_id(offer_id);
  routing::v1::AcceptOfferResponse response;
  DEMO_RETURN_IF_ERROR(
      FromGrpc(clients_.routing->AcceptOffer(clients_.Context(token).get(), request, &response)));
  Step(actor, absl::StrCat("accepts the offer (routing: queue wait ",
                           HumanDuration(protoutil::FromDuration(response.assignment().queue_wait())),
                           ")"));
  return absl::OkStatus();
}

absl::Status Demo::Play() {
  const std::string run = absl::StrFormat("%x", absl::ToUnixMillis(absl::Now()) & 0xffffffff);
  const std::string customer = "demo-customer-" + run;
  const std::string ana = "demo-ana-" + run;
  const std::string ben = "demo-ben-" + run;
  absl::StatusOr<std::string> token = clients_.Token(auth::Role::kCustomer, customer);
  if (!token.ok()) return token.status();
  customer_token_ = *token;
  const std::string ana_token = *clients_.Token(auth::Role::kAgent, ana);
  const std::string ben_token = *clients_.Token(auth::Role::kAgent, ben);
  printer_.Text(absl::StrCat("demo: customer = ", customer, ", ana = ", ana, ", ben = ", ben));
  printer_.Text("timeline (elapsed since start, actor, what happened):");

  // Agent one comes online and watches for offers.
  const auto announce = [this](const std::string& who) {
    return [this, who](const routing::v1::Offer& offer) {
      if (offer.entry().session_id() != session_) return;
      Step("routing", absl::StrCat("offers the session to ", who, " (", offer.offer_id(), ")"));
    };
  };
  OfferWatch ana_offers(clients_, ana_token, announce("ana"));
  absl::StatusOr<presence::v1::SetStatusResponse> online = GoOnline(ana, ana_token, "Ana");
  if (!online.ok()) return online.status();
  const absl::Duration lease =
      protoutil::FromTimestamp(online->agent().lease_expires_at()) - absl::Now();
  absl::Duration interval = protoutil::FromDuration(online->heartbeat_interval());
  if (interval <= absl::ZeroDuration()) interval = absl::Seconds(1);
  const auto heartbeat_failed = [this](const std::string& who) {
    return [this, who](const std::string& error) {
      Step(who, absl::StrCat("heartbeat failed (", error, "); retrying"));
    };
  };
  auto ana_heartbeats =
      std::make_unique<Heartbeats>(clients_, ana_token, interval, heartbeat_failed("ana"));
  Step("ana", absl::StrCat("online: deposit, en, chat capacity 2; presence lease ",
                         HumanDuration(absl::Seconds(std::round(absl::ToDoubleSeconds(lease)))),
                         ", heartbeat every ", HumanDuration(interval)));

  // The customer asks the bot a question.
  const std::string question = "My deposit has not arrived yet";
  sessions::v1::CreateSessionRequest create;
  create.set_channel(common::v1::CHANNEL_CHAT);
  create.set_category(common::v1::CATEGORY_DEPOSIT);
  create.set_language("en");
  create.set_request_id(NewRequestId());
  create.mutable_first_message()->set_text(question);
  sessions::v1::CreateSessionResponse created;
  DEMO_RETURN_IF_ERROR(FromGrpc(clients_.sessions->CreateSession(
      clients_.Context(customer_token_).get(), create, &created)));
  session_ = created.session().session_id();
  Step("customer", absl::StrCat("opens chat session ", session_, " asking ", Quote(question)));
  SessionFollower follower(
      clients_, customer_token_, session_, 0,
      [this](const sessions::v1::StreamSessionEventsResponse& response) {
        OnSessionEvent(response);
      },
      [this](const std::string& notice) { printer_.Note(notice); });
  const auto bot_answered = [this] {
    absl::MutexLock lock(&mu_);
    for (const auto& event : events_) {
      if (event.has_message() && event.message().sender_role() == common::v1::SENDER_ROLE_BOT) {
        return true;
      }
    }
    return false;
  };
  DEMO_RETURN_IF_ERROR(WaitFor("bot answer", [&] {
    return bot_answered() || StateCount(sessions::v1::SESSION_STATE_QUEUED) > 0;
  }));

  // The customer asks for a human.
  if (StateCount(sessions::v1::SESSION_STATE_QUEUED) == 0) {
    DEMO_RETURN_IF_ERROR(Say("customer", customer_token_, "I want to talk to a human agent"));
  }
  DEMO_RETURN_IF_ERROR(WaitFor("escalation to the queue", [&] {
    return StateCount(sessions::v1::SESSION_STATE_QUEUED) > 0;
  }));

  // Agent one is offered the session and accepts; they chat.
  DEMO_RETURN_IF_ERROR(AcceptOffer("ana", ana_token, ana_offers));
  DEMO_RETURN_IF_ERROR(WaitFor("assignment", [&] {
    return StateCount(sessions::v1::SESSION_STATE_ASSIGNED) > 0;
  }));
  const std::string hello = "Hi, I am Ana. Let me check your deposit.";
  DEMO_RETURN_IF_ERROR(Say("ana", ana_token, hello));
  const std::string txid = "Thanks! It is 100 USDT on TRC20, txid 0x9f3c...";
  DEMO_RETURN_IF_ERROR(Say("customer", customer_token_, txid));
  DEMO_RETURN_IF_ERROR(WaitFor("both messages on the customer's stream",
                               [&] { return SawText(hello) && SawText(txid); }));

  // Agent one drops.
  if (lease <= max_lapse_wait_ + absl::Seconds(1)) {
    ana_heartbeats->Stop();
    Step("ana", absl::StrCat("drops off the network: heartbeats stop; the presence lease lapses "
                           "within ",
                           HumanDuration(lease)));
  } else {
    ana_heartbeats->Stop();
    presence::v1::SetStatusRequest offline;
    offline.set_status(presence::v1::AGENT_STATUS_OFFLINE);
    presence::v1::SetStatusResponse went;
    DEMO_RETURN_IF_ERROR(FromGrpc(
        clients_.presence->SetStatus(clients_.Context(ana_token).get(), offline, &went)));
    Step("ana", absl::StrCat("drops: goes OFFLINE with SetStatus (simulated: the presence lease is ",
                           HumanDuration(lease), ", longer than --max_lapse_wait=",
                           HumanDuration(max_lapse_wait_),
                           "; start presence with --lease=5s to see a real lapse)"));
  }
  DEMO_RETURN_IF_ERROR(WaitFor(
      "re-queue after agent one dropped",
      [&] { return StateCount(sessions::v1::SESSION_STATE_QUEUED) > 1; },
      lease + step_limit_));

  // Agent two comes online, is offered the session and finishes the job.
  OfferWatch ben_offers(clients_, ben_token, announce("ben"));
  online = GoOnline(ben, ben_token, "Ben");
  if (!online.ok()) return online.status();
  Heartbeats ben_heartbeats(clients_, ben_token, interval, heartbeat_failed("ben"));
  Step("ben", "online: deposit, en, chat capacity 2");
  DEMO_RETURN_IF_ERROR(AcceptOffer("ben", ben_token, ben_offers));
  DEMO_RETURN_IF_ERROR(WaitFor("second assignment", [&] {
    return StateCount(sessions::v1::SESSION_STATE_ASSIGNED) > 1;
  }));
  DEMO_RETURN_IF_ERROR(Say("ben", ben_token,
                           "I see the whole conversation. Your deposit is credited now."));
  sessions::v1::ResolveSessionRequest resolve;
  resolve.set_session_id(session_);
  resolve.set_resolution_summary("TRC20 deposit credited after network confirmations");
  resolve.set_request_id(NewRequestId());
  sessions::v1::ResolveSessionResponse resolved;
  DEMO_RETURN_IF_ERROR(FromGrpc(
      clients_.sessions->ResolveSession(clients_.Context(ben_token).get(), resolve, &resolved)));
  Step("ben", "resolves the session");
  DEMO_RETURN_IF_ERROR(WaitFor("resolution", [&] {
    return StateCount(sessions::v1::SESSION_STATE_RESOLVED) > 0;
  }));

  // The customer rates it.
  feedback::v1::SubmitFeedbackRequest rate;
  rate.set_session_id(session_);
  rate.mutable_ratings()->set_response_speed(4);
  rate.mutable_ratings()->set_professionalism(5);
  rate.mutable_ratings()->set_problem_resolution(5);
  rate.set_overall_satisfaction(5);
  rate.set_comment("Quick and friendly, even after the first agent dropped.");
  rate.set_request_id(NewRequestId());
  feedback::v1::SubmitFeedbackResponse rated;
  DEMO_RETURN_IF_ERROR(FromGrpc(
      clients_.feedback->SubmitFeedback(clients_.Context(customer_token_).get(), rate, &rated)));
  Step("customer", "rates it: speed 4, professionalism 5, resolution 5, overall 5");
  // Feedback closes a rated session; show it if it comes soon.
  WaitFor("close", [&] { return StateCount(sessions::v1::SESSION_STATE_CLOSED) > 0; },
          absl::Seconds(3))
      .IgnoreError();

  presence::v1::SetStatusRequest offline;
  offline.set_status(presence::v1::AGENT_STATUS_OFFLINE);
  presence::v1::SetStatusResponse went;
  ben_heartbeats.Stop();
  clients_.presence->SetStatus(clients_.Context(ben_token).get(), offline, &went);
  Step("ben", "goes offline");
  follower.Stop();
  PrintFigures();
  return absl::OkStatus();
}

void Demo::PrintFigures() {
  sessions::v1::GetSessionRequest request;
  request.set_session_id(session_);
  sessions::v1::GetSessionResponse response;
  const absl::Status status = FromGrpc(
      clients_.sessions->GetSession(clients_.Context(customer_token_).get(), request, &response));
  if (!status.ok()) {
    printer_.Fail(status);
    return;
  }
  const sessions::v1::Session& session = response.session();
  const absl::Time created = protoutil::FromTimestamp(session.created_at());
  struct Figure {
    std::string name;
    std::string json_name;
    absl::Duration value;
    std::string definition;
  };
  std::vector<Figure> figures;
  std::vector<sessions::v1::SessionEvent> events;
  {
    absl::MutexLock lock(&mu_);
    events = events_;
  }
  // Bot answer: the customer's first message to the bot's first reply.
  absl::Time first_customer = absl::InfinitePast(), first_bot = absl::InfinitePast();
  for (const auto& event : events) {
    if (!event.has_message()) continue;
    const absl::Time at = protoutil::FromTimestamp(event.message().created_at());
    if (event.message().sender_role() == common::v1::SENDER_ROLE_CUSTOMER &&
        first_customer == absl::InfinitePast()) {
      first_customer = at;
    }
    if (event.message().sender_role() == common::v1::SENDER_ROLE_BOT &&
        first_bot == absl::InfinitePast()) {
      first_bot = at;
    }
  }
  if (first_bot != absl::InfinitePast() && first_customer != absl::InfinitePast()) {
    figures.push_back({"bot answer", "bot_answer_ms", first_bot - first_customer,
                       "the customer's first message to the bot's reply"});
  }
  if (session.has_first_human_response_at()) {
    figures.push_back({"time to first human response", "first_human_response_ms",
                       protoutil::FromTimestamp(session.first_human_response_at()) - created,
                       "session created to the first agent message; bot messages never count"});
  }
  // Queue waits: each entry into QUEUED to the next assignment.
  absl::Time queued = absl::InfinitePast();
  int wait_number = 0;
  for (const auto& event : events) {
    if (!event.has_state_changed()) continue;
    const absl::Time at = protoutil::FromTimestamp(event.occurred_at());
    if (event.state_changed().state() == sessions::v1::SESSION_STATE_QUEUED) {
      queued = at;
    } else if (event.state_changed().state() == sessions::v1::SESSION_STATE_ASSIGNED &&
               queued != absl::InfinitePast()) {
      ++wait_number;
      figures.push_back({absl::StrCat("queue wait ", wait_number),
                         absl::StrCat("queue_wait_", wait_number, "_ms"), at - queued,
                         wait_number == 1 ? "entering QUEUED (escalation) to an agent assigned"
                                          : "re-queued after the drop to the next agent assigned"});
      queued = absl::InfinitePast();
    }
  }
  if (session.has_resolved_at()) {
    figures.push_back({"time to resolution", "resolution_ms",
                       protoutil::FromTimestamp(session.resolved_at()) - created,
                       "session created to resolved"});
  }
  if (printer_.json()) {
    std::string json = absl::StrCat("{\"session_id\":\"", session_.c_str(), "\",\"figures\":{");
    for (size_t i = 0; i < figures.size(); ++i) {
      absl::StrAppend(&json, i ? "," : "", "\"", figures[i].json_name,
                      "\":", absl::ToInt64Milliseconds(figures[i].value));
    }
    printer_.JsonLine(absl::StrCat(json, "}}"));
    return;
  }
  printer_.Text("");
  printer_.Text(absl::StrCat("response-time figures of session ", session_,
                             " (from its timestamps, as the sessions metrics define them):"));
  for (const Figure& figure : figures) {
    printer_.Text(absl::StrFormat("  %-30s %10s   %s", figure.name, HumanDuration(figure.value),
                                  figure.definition));
  }
}

}  // namespace

int RunDemo(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard demo [--max_lapse_wait=10s] [--step_timeout=30s]");
  absl::Duration max_lapse_wait = absl::Seconds(10);
  absl::Duration step_timeout = absl::Seconds(30);
  command.flags.Add("max_lapse_wait", &max_lapse_wait,
                    "wait for a real presence lapse when the lease is at most this; otherwise "
                    "agent one goes OFFLINE with SetStatus");
  command.flags.Add("step_timeout", &step_timeout, "give up on a step after this long");
  if (int code = command.Start(args, {}, 0, 0); code >= 0) return code;
  Demo demo(command, max_lapse_wait, step_timeout);
  absl::Status status = demo.Play();
  if (!status.ok()) return command.printer->Fail(status);
  return kExitOk;
}

}  // namespace switchboard::cli
