#include "services/sessions/rules.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "libs/auth/verification_token.h"
#include "libs/protoutil/time.h"
#include "libs/testing/test_tokens.h"

namespace switchboard::sessions {
namespace {

using auth::Role;
using S = v1::SessionState;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TEST(RulesTest, OnlyTheDocumentedTransitions) {
  const std::vector<std::pair<S, S>> allowed = {
      {S::SESSION_STATE_BOT, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_BOT, S::SESSION_STATE_RESOLVED},
      {S::SESSION_STATE_BOT, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_QUEUED, S::SESSION_STATE_ASSIGNED},
      {S::SESSION_STATE_QUEUED, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_BOT},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_RESOLVED},
      {S::SESSION_STATE_ASSIGNED, S::SESSION_STATE_CLOSED},
      {S::SESSION_STATE_RESOLVED, S::SESSION_STATE_QUEUED},
      {S::SESSION_STATE_RESOLVED, S::SESSION_STATE_CLOSED},
  };
  for (int from = 0; from <= 5; ++from) {
    for (int to = 0; to <= 5; ++to) {
      const bool expected =
          std::find(allowed.begin(), allowed.end(),
                    std::make_pair(static_cast<S>(from), static_cast<S>(to))) != allowed.end();
      EXPECT_EQ(TransitionAllowed(static_cast<S>(from), static_cast<S>(to)), expected)
          << from << " -> " << to;
    }
  }
}

TEST(RulesTest, KeysAndLanguageTags) {
  EXPECT_TRUE(ValidateKey("k", "", false).ok());
  EXPECT_EQ(ValidateKey("k", "", true).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(ValidateKey("k", "a-b_C9", true).ok());
  EXPECT_EQ(ValidateKey("k", std::string(65, 'a'), true).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(ValidateKey("client_message_id", "a b", true).message(),
                               "client_message_id:"));
  EXPECT_TRUE(IsLanguageTag("zh-CN"));
  EXPECT_TRUE(IsLanguageTag("en"));
  EXPECT_FALSE(IsLanguageTag("e"));
  EXPECT_FALSE(IsLanguageTag("1en"));
  EXPECT_FALSE(IsLanguageTag("en_US"));
}

TEST(RulesTest, MessagesAreChecked) {
  v1::NewMessage m;
  EXPECT_EQ(ValidateNewMessage("message", m).code(), absl::StatusCode::kInvalidArgument);
  m.set_text("hello\tworld\n");
  EXPECT_TRUE(ValidateNewMessage("message", m).ok());
  m.set_text("line\r\n");
  EXPECT_TRUE(absl::StrContains(ValidateNewMessage("message", m).message(), "message.text"));
  m.clear_text();
  m.add_attachment_ids("att_1");
  m.add_attachment_ids("att_2");
  EXPECT_TRUE(ValidateNewMessage("message", m).ok());
  m.add_attachment_ids("att_1");
  EXPECT_TRUE(absl::StrContains(ValidateNewMessage("message", m).message(),
                                "message.attachment_ids[2]: listed twice"));
  m.set_attachment_ids(2, "../etc");
  EXPECT_TRUE(absl::StrContains(ValidateNewMessage("message", m).message(),
                                "message.attachment_ids[2]"));
  m.clear_attachment_ids();
  m.set_text("yes");
  m.set_quick_reply_id(std::string(65, 'q'));
  EXPECT_TRUE(absl::StrContains(ValidateNewMessage("message", m).message(),
                                "message.quick_reply_id")) << ValidateNewMessage("message", m);
  m.set_quick_reply_id("qr-yes");
  EXPECT_TRUE(ValidateNewMessage("message", m).ok());
  m.clear_text();
  m.clear_quick_reply_id();
  // Metadata pointing at files stored elsewhere is never taken on trust.
  m.clear_attachment_ids();
  m.add_attachments()->set_file_name("receipt.png");
  EXPECT_TRUE(absl::StrContains(ValidateNewMessage("message", m).message(),
                                "message.attachments: no longer accepted"));
}

TEST(RulesTest, CreateRequestsGetDefaultsAndNameTheBadField) {
  const Caller customer{"cust-1", Role::kCustomer};
  v1::CreateSessionRequest request;
  request.set_channel(common::v1::CHANNEL_CHAT);
  auto chat = ValidateCreate(customer, request, kNow);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ(chat->customer_id, "cust-1");
  EXPECT_EQ(chat->category, common::v1::CATEGORY_GENERAL);
  EXPECT_EQ(chat->language, "en");
  EXPECT_FALSE(chat->has_first_message);
  request.set_customer_id("cust-2");
  EXPECT_EQ(ValidateCreate(customer, request, kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
  auto for_them = ValidateCreate({"ingest", Role::kService}, request, kNow);
  ASSERT_TRUE(for_them.ok());
  EXPECT_EQ(for_them->customer_id, "cust-2");
  request.clear_customer_id();
  request.set_channel(common::v1::CHANNEL_EMAIL);
  request.set_category(common::v1::CATEGORY_DEPOSIT);
  request.set_subject("Deposit");
  EXPECT_TRUE(absl::StartsWith(ValidateCreate(customer, request, kNow).status().message(),
                               "first_message:"));
  request.mutable_first_message()->set_text("Where is it?");
  auto email = ValidateCreate(customer, request, kNow);
  ASSERT_TRUE(email.ok());
  EXPECT_TRUE(email->has_first_message);
  request.set_language("not a tag");
  EXPECT_TRUE(absl::StartsWith(ValidateCreate(customer, request, kNow).status().message(),
                               "language:"));
  request.set_language("zh-CN");
  request.set_request_id("bad key");
  EXPECT_TRUE(absl::StartsWith(ValidateCreate(customer, request, kNow).status().message(),
                               "request_id:"));
  request.clear_request_id();
  request.set_channel(common::v1::CHANNEL_PHONE);
  EXPECT_TRUE(absl::StartsWith(ValidateCreate(customer, request, kNow).status().message(),
                               "callback:"));
}

TEST(RulesTest, CallbackWindows) {
  v1::CallbackDetails d;
  d.set_phone_number("+8613800138000");
  protoutil::ToTimestamp(kNow + absl::Hours(1), d.mutable_window_end());
  EXPECT_TRUE(ValidateCallbackDetails("callback", d, kNow).ok());
  d.set_phone_number("+0123456789");
  EXPECT_FALSE(ValidateCallbackDetails("callback", d, kNow).ok());
  d.set_phone_number("+8613800138000");
  protoutil::ToTimestamp(kNow + absl::Minutes(10), d.mutable_window_end());
  EXPECT_TRUE(absl::StrContains(ValidateCallbackDetails("callback", d, kNow).message(),
                                "at least 15 minutes"));
  protoutil::ToTimestamp(kNow + absl::Hours(24 * 15), d.mutable_window_end());
  EXPECT_TRUE(absl::StrContains(ValidateCallbackDetails("callback", d, kNow).message(),
                                "14 days"));
}

TEST(RulesTest, VerificationTokensAreCheckedOffline) {
  testing::TestTokens keys("sessions");
  const auth::TokenVerifier& tokens = keys.verifier();
  auth::VerificationClaims claims;
  claims.customer_id = "cust-1";
  claims.method = "totp";
  claims.level = auth::kLevelStrong;
  claims.token_id = "t";
  claims.issued_at = kNow;
  claims.expires_at = kNow + absl::Minutes(5);
  claims.session_id = "s-1";
  const std::string token = *auth::SignVerificationToken(keys.verification_signer(), claims);
  auto state = CheckVerification(tokens, token, "cust-1", "s-1", kNow);
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->method(), common::v1::VERIFICATION_METHOD_TOTP);
  EXPECT_EQ(state->level(), common::v1::VERIFICATION_LEVEL_STRONG);
  EXPECT_EQ(CheckVerification(tokens, token, "cust-1", "s-2", kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckVerification(tokens, token, "cust-2", "s-1", kNow).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckVerification(tokens, token, "cust-1", "s-1", kNow + absl::Minutes(6))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(CheckVerification(tokens, "abc.def.ghi", "cust-1", "s-1", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckVerification(tokens, "", "cust-1", "s-1", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Only identity's key makes them: not an access token, not a service's key.
  EXPECT_EQ(CheckVerification(tokens, keys.For(auth::Role::kCustomer, "cust-1"), "cust-1", "s-1",
                              absl::Now())
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  const auth::TokenSigner bot_key(keys.keys().services.at("bot"),
                                  std::string(auth::kVerificationIssuer));
  EXPECT_EQ(CheckVerification(tokens, *auth::SignVerificationToken(bot_key, claims), "cust-1",
                              "s-1", kNow)
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(RulesTest, WhoSeesAndWritesWhat) {
  v1::Session s;
  s.set_customer_id("cust-1");
  s.set_state(v1::SESSION_STATE_QUEUED);
  s.set_offered_agent_id("agent-2");
  protoutil::ToTimestamp(kNow + absl::Seconds(30), s.mutable_offer_expires_at());
  s.mutable_handoff()->set_summary("internal");
  v1::Participant* past = s.add_participants();
  past->set_role(common::v1::SENDER_ROLE_AGENT);
  past->set_id("agent-1");
  EXPECT_TRUE(MaySee({"cust-1", Role::kCustomer}, s, kNow));
  EXPECT_FALSE(MaySee({"cust-2", Role::kCustomer}, s, kNow));
  EXPECT_TRUE(MaySee({"agent-2", Role::kAgent}, s, kNow));
  EXPECT_FALSE(MaySee({"agent-2", Role::kAgent}, s, kNow + absl::Seconds(31)));
  EXPECT_FALSE(MaySee({"agent-1", Role::kAgent}, s, kNow));
  EXPECT_TRUE(MaySee({"agent-1", Role::kAgent}, s, kNow, /*past_agents=*/true));
  EXPECT_TRUE(MaySee({"sup", Role::kSupervisor}, s, kNow));
  const v1::Session customer_view = ViewFor(s, {"cust-1", Role::kCustomer}, kNow);
  EXPECT_FALSE(customer_view.has_handoff());
  EXPECT_TRUE(customer_view.offered_agent_id().empty());
  EXPECT_FALSE(customer_view.has_offer_expires_at());
  EXPECT_EQ(ViewFor(s, {"agent-2", Role::kAgent}, kNow).offered_agent_id(), "agent-2");
  EXPECT_EQ(ViewFor(s, {"sup", Role::kSupervisor}, kNow).offered_agent_id(), "agent-2");
  EXPECT_TRUE(ViewFor(s, {"sup", Role::kSupervisor}, kNow).has_handoff());
  EXPECT_TRUE(
      ViewFor(s, {"sup", Role::kSupervisor}, kNow + absl::Minutes(1)).offered_agent_id().empty());

  EXPECT_TRUE(CheckMayWrite({"cust-1", Role::kCustomer}, s).ok());
  EXPECT_EQ(CheckMayWrite({"sup", Role::kSupervisor}, s).code(),
            absl::StatusCode::kFailedPrecondition);
  s.set_state(v1::SESSION_STATE_ASSIGNED);
  s.set_assigned_agent_id("agent-1");
  EXPECT_TRUE(CheckMayWrite({"agent-1", Role::kAgent}, s).ok());
  EXPECT_FALSE(CheckMayWrite({"agent-2", Role::kAgent}, s).ok());
  s.set_state(v1::SESSION_STATE_RESOLVED);
  EXPECT_TRUE(absl::StrContains(CheckMayWrite({"cust-1", Role::kCustomer}, s).message(),
                                "ReopenSession"));
}

TEST(RulesTest, StreamsEndWhenTheCallerLeaves) {
  v1::SessionEvent message;
  message.mutable_message()->set_text("hi");
  const Caller agent{"agent-1", Role::kAgent};
  EXPECT_TRUE(StillParticipates(agent, message));
  v1::SessionEvent moved;
  moved.mutable_state_changed()->set_state(v1::SESSION_STATE_QUEUED);
  EXPECT_FALSE(StillParticipates(agent, moved));
  EXPECT_TRUE(StillParticipates({"cust-1", Role::kCustomer}, moved));
  v1::SessionEvent closed;
  closed.mutable_state_changed()->set_state(v1::SESSION_STATE_CLOSED);
  EXPECT_FALSE(StillParticipates({"cust-1", Role::kCustomer}, closed));
}

TEST(RulesTest, ListFiltersAreScopedToTheCaller) {
  ListFilter filter;
  ASSERT_TRUE(ScopeListFilter({"cust-1", Role::kCustomer}, filter, 0).ok());
  EXPECT_EQ(filter.customer_id, "cust-1");
  ListFilter agent;
  ASSERT_TRUE(ScopeListFilter({"agent-1", Role::kAgent}, agent, 10).ok());
  EXPECT_EQ(agent.agent_id, "agent-1");
  ListFilter other;
  other.agent_id = "agent-2";
  EXPECT_EQ(ScopeListFilter({"agent-1", Role::kAgent}, other, 10).code(),
            absl::StatusCode::kPermissionDenied);
  ListFilter states;
  states.states = {v1::SESSION_STATE_UNSPECIFIED};
  EXPECT_TRUE(absl::StartsWith(
      ScopeListFilter({"sup", Role::kSupervisor}, states, 10).message(), "states:"));
  EXPECT_TRUE(absl::StartsWith(ScopeListFilter({"sup", Role::kSupervisor}, filter, 201).message(),
                               "page_size:"));
}

TEST(RulesTest, PageTokensRoundTripAndRejectForgeries) {
  auto session = ParseSessionPageToken(SessionPageToken(123456, "s-1 with space"));
  ASSERT_TRUE(session.ok());
  EXPECT_EQ(session->first, 123456);
  EXPECT_EQ(session->second, "s-1 with space");
  EXPECT_EQ(ParseSessionPageToken("garbage").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseSessionPageToken(MessagePageToken(5)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseMessagePageToken(MessagePageToken(42)), 42);
  EXPECT_EQ(ParseMessagePageToken(SessionPageToken(1, "s")).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace switchboard::sessions
