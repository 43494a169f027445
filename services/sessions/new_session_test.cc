#include "services/sessions/new_session.h"

#include "gtest/gtest.h"
#include "libs/protoutil/time.h"

namespace switchboard::sessions {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TEST(NewSessionTest, AChatStartsWithTheBot) {
  NewSession fields{"cust-1", common::v1::CHANNEL_CHAT, common::v1::CATEGORY_GENERAL, "en",
                    false};
  v1::CreateSessionRequest request;
  request.set_request_id("req-1");
  request.set_subject("hello");
  SessionRecord r = NewSessionRecord("s-1", "cb-unused", fields, request, std::nullopt,
                                     absl::ZeroDuration(), kNow);
  EXPECT_EQ(r.create_request_id, "req-1");
  EXPECT_EQ(r.session.customer_id(), "cust-1");
  EXPECT_EQ(r.session.subject(), "hello");
  EXPECT_EQ(r.session.state(), v1::SESSION_STATE_UNSPECIFIED);
  EXPECT_EQ(r.bot_since, kNow);
  EXPECT_FALSE(r.session.has_handoff());
  EXPECT_FALSE(r.session.has_sla());
  EXPECT_FALSE(r.session.has_callback());
  ASSERT_EQ(r.session.participants_size(), 1);
  EXPECT_EQ(r.session.participants(0).role(), common::v1::SENDER_ROLE_CUSTOMER);
}

TEST(NewSessionTest, AnEmailHasItsReplyTargetAndNoBot) {
  NewSession fields{"cust-1", common::v1::CHANNEL_EMAIL, common::v1::CATEGORY_DEPOSIT,
                    "zh-CN", true};
  SessionRecord r = NewSessionRecord("s-1", "cb-unused", fields, {}, std::nullopt,
                                     absl::Hours(24), kNow);
  EXPECT_EQ(protoutil::FromTimestamp(r.session.sla().due_at()), kNow + absl::Hours(24));
  EXPECT_EQ(protoutil::FromDuration(r.session.sla().target()), absl::Hours(24));
  EXPECT_EQ(r.bot_since, absl::InfinitePast());
  EXPECT_EQ(r.session.handoff().reason(), common::v1::ESCALATION_REASON_CHANNEL_WITHOUT_BOT);
  EXPECT_EQ(r.session.handoff().language(), "zh-CN");
  EXPECT_FALSE(StartsWithBot(common::v1::CHANNEL_EMAIL));
  EXPECT_TRUE(StartsWithBot(common::v1::CHANNEL_SOCIAL));
}

TEST(NewSessionTest, APhoneSessionCarriesItsCallbackAndVerification) {
  NewSession fields{"cust-1", common::v1::CHANNEL_PHONE, common::v1::CATEGORY_ACCOUNT_SECURITY,
                    "en", false};
  v1::CreateSessionRequest request;
  request.mutable_callback()->set_phone_number("+8613800138000");
  request.mutable_callback()->set_note("after 6 pm");
  protoutil::ToTimestamp(kNow + absl::Hours(2),
                         request.mutable_callback()->mutable_window_end());
  common::v1::VerificationState verified;
  verified.set_level(common::v1::VERIFICATION_LEVEL_STRONG);
  SessionRecord r = NewSessionRecord("s-9", "cb-9", fields, request, verified,
                                     absl::ZeroDuration(), kNow);
  EXPECT_EQ(r.session.callback().callback_id(), "cb-9");
  EXPECT_EQ(r.session.callback().phone_session_id(), "s-9");
  EXPECT_EQ(r.session.callback().note(), "after 6 pm");
  EXPECT_EQ(r.session.verification().level(), common::v1::VERIFICATION_LEVEL_STRONG);
  EXPECT_EQ(r.session.handoff().verification().level(), common::v1::VERIFICATION_LEVEL_STRONG);
}

TEST(NewSessionTest, ACallbackFromAChatTakesTheChatsCustomerCategoryAndLanguage) {
  v1::Session origin;
  origin.set_session_id("s-1");
  origin.set_customer_id("cust-1");
  origin.set_category(common::v1::CATEGORY_WITHDRAWAL);
  origin.set_language("zh-CN");
  v1::CallbackDetails details;
  details.set_phone_number("+441234567890");
  common::v1::VerificationState verified;
  verified.set_level(common::v1::VERIFICATION_LEVEL_BASIC);
  SessionRecord r = CallbackSessionRecord("s-2", "cb-2", origin, details, verified, kNow);
  EXPECT_EQ(r.session.channel(), common::v1::CHANNEL_PHONE);
  EXPECT_EQ(r.session.parent_session_id(), "s-1");
  EXPECT_EQ(r.session.customer_id(), "cust-1");
  EXPECT_EQ(r.session.category(), common::v1::CATEGORY_WITHDRAWAL);
  EXPECT_EQ(r.session.callback().origin_session_id(), "s-1");
  EXPECT_EQ(r.session.callback().phone_session_id(), "s-2");
  EXPECT_EQ(r.session.handoff().category(), common::v1::CATEGORY_WITHDRAWAL);
  EXPECT_EQ(r.session.handoff().verification().level(), common::v1::VERIFICATION_LEVEL_BASIC);
}

}  // namespace
}  // namespace switchboard::sessions
