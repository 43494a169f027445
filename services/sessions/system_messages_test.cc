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

TEST(SystemMessagesTest, SystemMessagesAreFromTheSystem) {
  const v1::Message m = SystemMessage("notice");
  EXPECT_EQ(m.sender_role(), common::v1::SENDER_ROLE_SYSTEM);
  EXPECT_EQ(m.sender_id(), "system");
  EXPECT_EQ(m.text(), "notice");
}

}  // namespace
}  // namespace switchboard::sessions
