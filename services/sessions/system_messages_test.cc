#include "services/sessions/system_messages.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace switchboard::sessions {
namespace {

TEST(SystemMessagesTest, TheEmailAcknowledgementStatesTheReplyTarget) {
  EXPECT_EQ(EmailAcknowledgement("en", absl::Hours(48)),
            "Thank you for writing to us. We have received your email and will reply within "
            "48 hours.");
  EXPECT_EQ(EmailAcknowledgement("zh-CN", absl::Hours(4)),
            "感谢您的来信。我们已收到您的邮件，将在4小时内回复您。");
  EXPECT_TRUE(absl::StrContains(EmailAcknowledgement("en", absl::Hours(1)), "within 1 hour."));
  EXPECT_TRUE(
      absl::StrContains(EmailAcknowledgement("en-GB", absl::Minutes(90)), "90 minutes"));
  EXPECT_TRUE(absl::StrContains(EmailAcknowledgement("zh", absl::Minutes(30)), "30分钟"));
}

TEST(SystemMessagesTest, TheRatingInvitationNamesTheThreeDimensions) {
  const std::string en = RatingInvitation("en");
  EXPECT_TRUE(absl::StrContains(en, "response speed"));
  EXPECT_TRUE(absl::StrContains(en, "professionalism"));
  EXPECT_TRUE(absl::StrContains(en, "resolved"));
  const std::string zh = RatingInvitation("zh-CN");
  EXPECT_TRUE(absl::StrContains(zh, "响应速度"));
  EXPECT_TRUE(absl::StrContains(zh, "专业程度"));
  EXPECT_TRUE(absl::StrContains(zh, "问题是否得到解决"));
  EXPECT_EQ(RatingInvitation("zh-TW"), zh);
  // Other languages fall back to English; "zhx" is not Chinese.
  EXPECT_EQ(RatingInvitation("fr"), en);
  EXPECT_EQ(RatingInvitation("zhx"), en);
}

TEST(SystemMessagesTest, OutOfHoursNoticesStateTheTimeInTheDesksZoneAndUtc) {
  // Monday 2026-03-09 09:00 in Shanghai is 01:00 UTC.
  const absl::Time opening =
      absl::FromCivil(absl::CivilMinute(2026, 3, 9, 1, 0), absl::UTCTimeZone());
  EXPECT_EQ(DeskClosedNotice("en-US", opening, "Asia/Shanghai", absl::Hours(48)),
            "Our agents are not available right now. The desk opens again at 2026-03-09 09:00 "
            "(Asia/Shanghai), 2026-03-09 01:00 UTC. You can stay in the queue and an agent will "
            "answer once we open, or continue by email and we will reply within 48 hours.");
  const std::string zh = DeskClosedNotice("zh-CN", opening, "Asia/Shanghai", absl::Hours(24));
  EXPECT_TRUE(absl::StrContains(zh, "2026-03-09 09:00（Asia/Shanghai时间），即 UTC 2026-03-09 01:00"))
      << zh;
  EXPECT_TRUE(absl::StrContains(zh, "邮件")) << zh;
  EXPECT_TRUE(absl::StrContains(zh, "24小时内")) << zh;
  EXPECT_TRUE(absl::StrContains(
      DeskClosedNotice("en", opening, "Asia/Shanghai", absl::Hours(48), /*business_hours=*/true),
      "we will reply within 48 hours of business hours."));
  EXPECT_TRUE(absl::StrContains(
      DeskClosedNotice("zh", opening, "Asia/Shanghai", absl::Hours(48), /*business_hours=*/true),
      "48小时工作时间内"));
  EXPECT_TRUE(absl::StrContains(
      DeskClosedNotice("en", absl::InfiniteFuture(), "Asia/Shanghai", absl::Hours(48)),
      "No opening hours are scheduled"));
  EXPECT_TRUE(absl::StrContains(CallbackBooked("en", opening, "UTC"),
                                "booked for 2026-03-09 01:00 UTC;"));
  EXPECT_TRUE(absl::StrContains(CallbackBooked("zh", opening, "Asia/Shanghai"), "回电已预约在"));
  EXPECT_EQ(EmailAcknowledgementBy("en", absl::Hours(2), opening, "Asia/Shanghai"),
            "Thank you for writing to us. We have received your email and will reply within "
            "2 hours of business hours, by 2026-03-09 09:00 (Asia/Shanghai), 2026-03-09 01:00 "
            "UTC.");
  EXPECT_TRUE(absl::StrContains(
      EmailAcknowledgementBy("zh-CN", absl::Hours(2), opening, "Asia/Shanghai"), "2小时工作时间内"));
}

TEST(SystemMessagesTest, SystemMessagesAreFromTheSystem) {
  const v1::Message m = SystemMessage("notice");
  EXPECT_EQ(m.sender_role(), common::v1::SENDER_ROLE_SYSTEM);
  EXPECT_EQ(m.sender_id(), "system");
  EXPECT_EQ(m.text(), "notice");
}

}  // namespace
}  // namespace switchboard::sessions
