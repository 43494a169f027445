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

// "2026-03-09 10:00 (Europe/Berlin), 2026-03-09 09:00 UTC": the schedule's
// zone, which sessions knows, and UTC, which everyone can convert (the
// customer's own zone is not known).
std::string When(bool chinese, absl::Time t, absl::string_view time_zone) {
  absl::TimeZone zone = absl::UTCTimeZone();
  const bool known = absl::LoadTimeZone(std::string(time_zone), &zone);
  const std::string utc = absl::FormatTime("%Y-%m-%d %H:%M", t, absl::UTCTimeZone());
  if (!known || time_zone.empty() || time_zone == "UTC") {
    return absl::StrCat(utc, " UTC");
  }
  const std::string local = absl::FormatTime("%Y-%m-%d %H:%M", t, zone);
  return chinese ? absl::StrCat(local, "（", time_zone, "时间），即 UTC ", utc)
                 : absl::StrCat(local, " (", time_zone, "), ", utc, " UTC");
}

}  // namespace

std::string EmailAcknowledgementBy(absl::string_view language, absl::Duration reply_target,
                                   absl::Time due, absl::string_view time_zone) {
  if (Chinese(language)) {
    return absl::StrCat("感谢您的来信。我们已收到您的邮件，将在", Span(true, reply_target),
                        "工作时间内回复您，最迟于", When(true, due, time_zone), "。");
  }
  return absl::StrCat(
      "Thank you for writing to us. We have received your email and will reply within ",
      Span(false, reply_target), " of business hours, by ", When(false, due, time_zone), ".");
}

std::string DeskClosedNotice(absl::string_view language, absl::Time next_opening,
                             absl::string_view time_zone, absl::Duration email_target,
                             bool business_hours) {
  const bool chinese = Chinese(language);
  if (chinese) {
    const std::string opening =
        next_opening == absl::InfiniteFuture()
            ? "目前没有安排人工客服的服务时间。"
            : absl::StrCat("人工客服将于", When(true, next_opening, time_zone), "恢复服务。");
    return absl::StrCat("现在是人工客服的非工作时间。", opening,
                        "您可以继续排队等待，客服上班后会回复您；也可以改为邮件沟通，我们将在",
                        Span(true, email_target), business_hours ? "工作时间内" : "内",
                        "回复您。");
  }
  const std::string opening =
      next_opening == absl::InfiniteFuture()
          ? "No opening hours are scheduled at the moment."
          : absl::StrCat("The desk opens again at ", When(false, next_opening, time_zone), ".");
  return absl::StrCat("Our agents are not available right now. ", opening,
                      " You can stay in the queue and an agent will answer once we open, or "
                      "continue by email and we will reply within ",
                      Span(false, email_target), business_hours ? " of business hours." : ".");
}

std::string CallbackBooked(absl::string_view language, absl::Time when,
                           absl::string_view time_zone) {
  if (Chinese(language)) {
    return absl::StrCat("电话客服现在不在服务时间内。您的回电已预约在", When(true, when, time_zone),
                        "，届时我们将按预约顺序给您回电。");
  }
  return absl::StrCat("Our phone desk is closed now. Your callback is booked for ",
                      When(false, when, time_zone),
                      "; we will call you back then, in the order callbacks were booked.");
}

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
