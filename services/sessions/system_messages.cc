#include "services/sessions/system_messages.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace switchboard::sessions {
namespace {

bool Chinese(absl::string_view language) {
  return absl::StartsWithIgnoreCase(language, "zh") &&
         (language.size() == 2 || language[2] == '-' || language[2] == '_');
}

// "48 hours" / "48小时"; "90 minutes" / "90分钟" when not whole hours.
std::string Span(bool chinese, absl::Duration d) {
  const int64_t minutes = absl::ToInt64Minutes(absl::Ceil(d, absl::Minutes(1)));
  if (minutes % 60 == 0) {
    const int64_t hours = minutes / 60;
    return chinese ? absl::StrCat(hours, "小时")
                   : absl::StrCat(hours, hours == 1 ? " hour" : " hours");
  }
  return chinese ? absl::StrCat(minutes, "分钟")
                 : absl::StrCat(minutes, minutes == 1 ? " minute" : " minutes");
}

}  // namespace

std::string EmailAcknowledgement(absl::string_view language, absl::Duration reply_target) {
  const bool chinese = Chinese(language);
  if (chinese) {
    return absl::StrCat("感谢您的来信。我们已收到您的邮件，将在", Span(true, reply_target),
                        "内回复您。");
  }
  return absl::StrCat(
      "Thank you for writing to us. We have received your email and will reply within ",
      Span(false, reply_target), ".");
}

std::string RatingInvitation(absl::string_view language) {
  if (Chinese(language)) {
    return "您的问题已标记为已解决。请为本次服务评分：响应速度、专业程度，以及问题是否得到解决。";
  }
  return "Your request has been marked as resolved. Please rate this conversation: "
         "response speed, professionalism, and whether your problem was resolved.";
}

v1::Message SystemMessage(std::string text) {
  v1::Message message;
  message.set_sender_role(common::v1::SENDER_ROLE_SYSTEM);
  message.set_sender_id("system");
  message.set_text(std::move(text));
  return message;
}

}  // namespace switchboard::sessions
