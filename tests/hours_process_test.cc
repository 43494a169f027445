// Hours of operation across real processes (presence, routing, sessions; no
// bot). A supervisor closes the deposit queues in English with a schedule
// (open only on the day after tomorrow, UTC); then, while they are closed:
// a chat escalated to a human is told when the desk opens and continues by
// email; two callbacks are booked for the opening; an email gets its due
// time in business hours; no offer goes out and the queues read closed. The
// supervisor then opens the queues (a schedule open all week): the waiting
// work is offered, the callbacks in the order they were booked.
//
// A fake clock cannot cross processes: the schedule is relative to now, and
// "time passing" is the supervisor changing it, which routing applies at
// once (the passing of real time is covered by the unit tests of
// services/routing with a fake clock).
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "libs/auth/grpc_auth.h"
#include "libs/auth/verification_token.h"
#include "libs/protoutil/time.h"
#include "libs/storage/test_dir.h"
#include "libs/testing/process.h"
#include "libs/testing/reserved_port.h"
#include "libs/testing/test_tokens.h"
#include "switchboard/presence/v1/presence_service.grpc.pb.h"
#include "switchboard/routing/v1/routing_service.grpc.pb.h"
#include "switchboard/sessions/v1/sessions_service.grpc.pb.h"

namespace switchboard {
namespace {

using common::v1::CATEGORY_DEPOSIT;
using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;
using common::v1::CHANNEL_PHONE;

bool Eventually(const std::function<bool()>& done, absl::Duration limit = absl::Seconds(30)) {
  const absl::Time give_up = absl::Now() + limit;
  while (absl::Now() < give_up) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return done();
}

// Offers to one agent, as they arrive.
class Offers {
 public:
  Offers(routing::v1::RoutingService::Stub* stub, const std::string& token) {
    auth::AttachToken(context_, token);
    reader_ = stub->WatchOffers(&context_, {});
    thread_ = std::thread([this] {
      routing::v1::WatchOffersResponse response;
      while (reader_->Read(&response)) {
        if (!response.has_offer()) continue;
        absl::MutexLock lock(&mu_);
        sessions_.push_back(response.offer().entry().session_id());
      }
    });
  }
  ~Offers() {
    context_.TryCancel();
    thread_.join();
  }
  // Session ids offered so far, in order.
  std::vector<std::string> sessions() {
    absl::MutexLock lock(&mu_);
    return sessions_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<routing::v1::WatchOffersResponse>> reader_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<std::string> sessions_ ABSL_GUARDED_BY(mu_);
};

class HoursProcessTest : public ::testing::Test {
 protected:
  HoursProcessTest()
      : dir_(storage::MakeTempDir()),
        // One key folder for the platform, where each server looks first.
        tokens_(testing::TestTokens::InFolder(dir_ + "/keys", "hours")) {
    const auto flags = [&](int port, std::vector<std::string> more) {
      more.insert(more.end(), {"--data_dir=" + dir_, absl::StrCat("--port=", port),
                               "--metrics_port=0", "--bind_address=127.0.0.1",
                               "--drain_deadline=3s"});
      return more;
    };
    presence_ = std::make_unique<testing::ServerProcess>(
        "services/presence/presence_server", flags(0, {"--lease=60s"}), dir_ + "/presence.log");
    sessions_ = std::make_unique<testing::ServerProcess>(
        "services/sessions/sessions_server",
        flags(0, {"--routing_address=" + routing_port_.address(),
                  "--routing_retry_interval=200ms", "--sweep_interval=200ms",
                  "--business_hours_sla_categories=deposit",
                  "--email_sla_by_category=DEPOSIT=2h"}),
        dir_ + "/sessions.log");
    routing_ = std::make_unique<testing::ServerProcess>(
        "services/routing/routing_server",
        flags(routing_port_.port(), {"--presence_address=" + presence_->address(),
                                     "--sessions_address=" + sessions_->address(),
                                     "--offer_timeout=60s", "--dispatch_interval=100ms"}),
        dir_ + "/routing.log");
    for (auto* server : {presence_.get(), routing_.get(), sessions_.get()}) {
      EXPECT_GT(server->grpc_port(), 0) << server->log();
    }
    sessions_stub_ = sessions::v1::SessionsService::NewStub(Channel(sessions_->grpc_port()));
    routing_stub_ = routing::v1::RoutingService::NewStub(Channel(routing_->grpc_port()));
    presence_stub_ = presence::v1::PresenceService::NewStub(Channel(presence_->grpc_port()));
  }

  ~HoursProcessTest() override {
    for (auto* server : {sessions_.get(), routing_.get(), presence_.get()}) {
      EXPECT_EQ(server->Terminate(absl::Seconds(10)), 0) << server->log();
    }
  }

  static std::shared_ptr<grpc::Channel> Channel(int port) {
    return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                               grpc::InsecureChannelCredentials());
  }

  std::string Token(auth::Role role, const std::string& subject) {
    return tokens_.For(role, subject);
  }

  std::string VerificationToken(const std::string& customer) {
    auth::VerificationClaims claims;
    claims.customer_id = customer;
    claims.method = "sms_otp";
    claims.level = auth::kLevelBasic;
    claims.token_id = absl::StrCat("tid-", customer, "-", ++tokens_issued_);
    claims.issued_at = absl::Now();
    claims.expires_at = absl::Now() + absl::Minutes(15);
    return *auth::SignVerificationToken(tokens_.verification_signer(), claims);
  }

  std::unique_ptr<grpc::ClientContext> Context(const std::string& token) {
    auto context = std::make_unique<grpc::ClientContext>();
    auth::AttachToken(*context, token);
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return context;
  }

  // Deposit queues in English: open all of `days` (0 = today, UTC), closed
  // otherwise.
  void SetHours(const std::vector<int>& days) {
    routing::v1::SetScheduleRequest request;
    routing::v1::Schedule* schedule = request.mutable_schedule();
    schedule->set_schedule_id("deposit-en");
    schedule->set_time_zone("UTC");
    const absl::CivilDay today(absl::ToCivilDay(absl::Now(), absl::UTCTimeZone()));
    for (int offset : days) {
      routing::v1::WeeklyHours* hours = schedule->add_weekly_hours();
      // absl::Weekday counts from monday = 0, DayOfWeek from MONDAY = 1.
      hours->set_day(static_cast<routing::v1::DayOfWeek>(
          static_cast<int>(absl::GetWeekday(today + offset)) + 1));
      hours->set_start_time("00:00");
      hours->set_end_time("24:00");
    }
    routing::v1::QueueSelector* selector = schedule->add_applies_to();
    selector->set_category(CATEGORY_DEPOSIT);
    selector->set_language("en");
    routing::v1::SetScheduleResponse response;
    grpc::Status status = routing_stub_->SetSchedule(
        Context(Token(auth::Role::kSupervisor, "sup-1")).get(), request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  void GoOnline(const std::string& agent) {
    presence::v1::SetAgentProfileRequest grant;
    grant.set_agent_id(agent);
    presence::v1::AgentProfile* profile = grant.mutable_profile();
    profile->set_display_name(agent);
    profile->mutable_skills()->add_categories(CATEGORY_DEPOSIT);
    profile->mutable_skills()->add_languages("en");
    for (common::v1::Channel channel : {CHANNEL_CHAT, CHANNEL_EMAIL, CHANNEL_PHONE}) {
      presence::v1::ChannelCapacity* capacity = profile->add_capacities();
      capacity->set_channel(channel);
      capacity->set_capacity(5);
    }
    presence::v1::SetAgentProfileResponse granted;
    grpc::Status status = presence_stub_->SetAgentProfile(
        Context(Token(auth::Role::kSupervisor, "sup-1")).get(), grant, &granted);
    ASSERT_TRUE(status.ok()) << status.error_message();
    presence::v1::SetStatusRequest request;
    request.set_status(presence::v1::AGENT_STATUS_ONLINE);
    presence::v1::SetStatusResponse response;
    status = presence_stub_->SetStatus(Context(Token(auth::Role::kAgent, agent)).get(), request,
                                       &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  sessions::v1::Session Create(const std::string& customer, common::v1::Channel channel) {
    sessions::v1::CreateSessionRequest request;
    request.set_channel(channel);
    request.set_category(CATEGORY_DEPOSIT);
    request.set_language("en");
    if (channel == CHANNEL_EMAIL) {
      request.set_subject("Deposit missing");
      request.mutable_first_message()->set_text("My deposit has not arrived");
    }
    sessions::v1::CreateSessionResponse response;
    grpc::Status status = sessions_stub_->CreateSession(
        Context(Token(auth::Role::kCustomer, customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.session();
  }

  // The texts of the session's SYSTEM messages.
  std::vector<std::string> SystemTexts(const std::string& customer, const std::string& session) {
    sessions::v1::ListMessagesRequest request;
    request.set_session_id(session);
    sessions::v1::ListMessagesResponse response;
    std::vector<std::string> texts;
    if (!sessions_stub_
             ->ListMessages(Context(Token(auth::Role::kCustomer, customer)).get(), request,
                            &response)
             .ok()) {
      return texts;
    }
    for (const auto& message : response.messages()) {
      if (message.sender_role() == common::v1::SENDER_ROLE_SYSTEM) texts.push_back(message.text());
    }
    return texts;
  }

  sessions::v1::RequestCallbackResponse Callback(const std::string& customer,
                                                 const std::string& session) {
    sessions::v1::RequestCallbackRequest request;
    request.set_session_id(session);
    request.set_request_id("cb-" + session);
    request.mutable_callback()->set_phone_number("+441234567890");
    protoutil::ToTimestamp(absl::Now() + absl::Hours(24 * 7),
                           request.mutable_callback()->mutable_window_end());
    request.mutable_callback()->set_verification_token(VerificationToken(customer));
    sessions::v1::RequestCallbackResponse response;
    grpc::Status status = sessions_stub_->RequestCallback(
        Context(Token(auth::Role::kCustomer, customer)).get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message() << sessions_->log();
    return response;
  }

  const std::string dir_;
  testing::TestTokens tokens_;
  int tokens_issued_ = 0;
  testing::ReservedPort routing_port_;
  std::unique_ptr<testing::ServerProcess> presence_;
  std::unique_ptr<testing::ServerProcess> sessions_;
  std::unique_ptr<testing::ServerProcess> routing_;
  std::unique_ptr<sessions::v1::SessionsService::Stub> sessions_stub_;
  std::unique_ptr<routing::v1::RoutingService::Stub> routing_stub_;
  std::unique_ptr<presence::v1::PresenceService::Stub> presence_stub_;
};

TEST_F(HoursProcessTest, ClosedQueuesAnswerByChannelThenOfferCallbacksInBookingOrder) {
  // Open only the day after tomorrow (UTC): closed now.
  SetHours({2});
  const absl::Time opening = absl::FromCivil(
      absl::CivilDay(absl::ToCivilDay(absl::Now(), absl::UTCTimeZone())) + 2,
      absl::UTCTimeZone());
  GoOnline("agent-1");
  Offers offers(routing_stub_.get(), Token(auth::Role::kAgent, "agent-1"));

  // CHAT: escalated while closed, the customer is told when the desk opens,
  // and continues by email.
  const sessions::v1::Session chat = Create("cust-chat", CHANNEL_CHAT);
  sessions::v1::EscalateSessionRequest escalate;
  escalate.set_session_id(chat.session_id());
  sessions::v1::EscalateSessionResponse escalated;
  ASSERT_TRUE(sessions_stub_
                  ->EscalateSession(Context(Token(auth::Role::kCustomer, "cust-chat")).get(),
                                    escalate, &escalated)
                  .ok());
  std::vector<std::string> texts;
  ASSERT_TRUE(Eventually([&] {
    texts = SystemTexts("cust-chat", chat.session_id());
    return !texts.empty();
  })) << sessions_->log();
  const std::string opening_text =
      absl::StrCat(absl::FormatTime("%Y-%m-%d %H:%M", opening, absl::UTCTimeZone()), " UTC");
  EXPECT_TRUE(absl::StrContains(texts[0], "opens again at " + opening_text)) << texts[0];
  EXPECT_TRUE(absl::StrContains(texts[0], "continue by email")) << texts[0];
  sessions::v1::ContinueByEmailRequest by_email;
  by_email.set_session_id(chat.session_id());
  sessions::v1::ContinueByEmailResponse switched;
  grpc::Status status = sessions_stub_->ContinueByEmail(
      Context(Token(auth::Role::kCustomer, "cust-chat")).get(), by_email, &switched);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(switched.session().channel(), CHANNEL_EMAIL);
  EXPECT_EQ(switched.session().continued_from(), CHANNEL_CHAT);
  EXPECT_TRUE(switched.session().sla().business_hours());

  // PHONE: two callbacks, booked for the opening, in this order.
  const sessions::v1::Session first = Create("cust-a", CHANNEL_CHAT);
  const sessions::v1::Session second = Create("cust-b", CHANNEL_CHAT);
  const sessions::v1::RequestCallbackResponse cb_a = Callback("cust-a", first.session_id());
  absl::SleepFor(absl::Milliseconds(20));
  const sessions::v1::RequestCallbackResponse cb_b = Callback("cust-b", second.session_id());
  EXPECT_EQ(protoutil::FromTimestamp(cb_a.callback().scheduled_for()), opening);
  EXPECT_EQ(protoutil::FromTimestamp(cb_b.callback().scheduled_for()), opening);
  texts = SystemTexts("cust-a", first.session_id());
  ASSERT_FALSE(texts.empty());
  EXPECT_TRUE(absl::StrContains(texts.back(), "booked for " + opening_text)) << texts.back();

  // EMAIL: always accepted; 2 business hours from the opening.
  const sessions::v1::Session email = Create("cust-mail", CHANNEL_EMAIL);
  EXPECT_EQ(email.state(), sessions::v1::SESSION_STATE_QUEUED);
  EXPECT_TRUE(email.sla().business_hours());
  EXPECT_EQ(protoutil::FromTimestamp(email.sla().due_at()), opening + absl::Hours(2));
  texts = SystemTexts("cust-mail", email.session_id());
  ASSERT_FALSE(texts.empty());
  EXPECT_TRUE(absl::StrContains(
      texts[0], absl::StrCat("by ",
                             absl::FormatTime("%Y-%m-%d %H:%M", opening + absl::Hours(2),
                                              absl::UTCTimeZone()),
                             " UTC")))
      << texts[0];

  // Closed: the queues say so, and nothing is offered although the agent
  // is online with room.
  const std::string supervisor = Token(auth::Role::kSupervisor, "sup-1");
  ASSERT_TRUE(Eventually([&] {
    routing::v1::GetQueueStatsResponse stats;
    if (!routing_stub_->GetQueueStats(Context(supervisor).get(), {}, &stats).ok()) return false;
    int waiting = 0;
    for (const auto& queue : stats.queues()) {
      EXPECT_FALSE(queue.hours().open()) << queue.ShortDebugString();
      EXPECT_EQ(protoutil::FromTimestamp(queue.hours().next_opening_at()), opening);
      waiting += queue.depth();
    }
    return waiting == 4;  // the switched chat, two callbacks, the email
  })) << routing_->log();
  absl::SleepFor(absl::Seconds(1));  // ten dispatcher passes
  EXPECT_TRUE(offers.sessions().empty());

  // The supervisor opens the desk: everything waiting is offered, the
  // callbacks in booking order.
  SetHours({0, 1, 2, 3, 4, 5, 6});
  const std::string phone_a = cb_a.phone_session().session_id();
  const std::string phone_b = cb_b.phone_session().session_id();
  ASSERT_TRUE(Eventually([&] { return offers.sessions().size() >= 4; })) << routing_->log();
  const std::vector<std::string> offered = offers.sessions();
  const auto at = [&](const std::string& id) {
    return std::find(offered.begin(), offered.end(), id) - offered.begin();
  };
  EXPECT_LT(at(phone_a), at(phone_b));
  EXPECT_LT(at(phone_b), static_cast<long>(offered.size()));
  EXPECT_LT(at(email.session_id()), static_cast<long>(offered.size()));
  EXPECT_LT(at(chat.session_id()), static_cast<long>(offered.size()));
}

}  // namespace
}  // namespace switchboard
