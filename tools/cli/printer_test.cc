#include "tools/cli/printer.h"

#include <sstream>

#include "gtest/gtest.h"

namespace switchboard::cli {
namespace {

TEST(PrinterTest, TextModePrintsTheTextAndJsonModeTheMessage) {
  sessions::v1::Session session;
  session.set_session_id("s-1");
  session.set_state(sessions::v1::SESSION_STATE_QUEUED);
  std::ostringstream out, err;
  Printer text(out, err, false);
  text.Print(session, "s-1 is queued");
  text.JsonLine("{\"ignored\":true}");
  EXPECT_EQ(out.str(), "s-1 is queued\n");

  std::ostringstream json_out;
  Printer json(json_out, err, true);
  json.Print(session, "ignored");
  json.Text("ignored too");
  EXPECT_EQ(json_out.str(), "{\"session_id\":\"s-1\",\"state\":\"SESSION_STATE_QUEUED\"}\n");
  EXPECT_EQ(err.str(), "");
}

TEST(PrinterTest, ErrorsGoToStderrWithTheirCodeAndExitCodes) {
  std::ostringstream out, err;
  Printer printer(out, err, true);
  EXPECT_EQ(printer.Fail(absl::NotFoundError("session s-9 not found")), kExitFailure);
  EXPECT_EQ(printer.Usage(absl::InvalidArgumentError("missing argument"), "switchboard x"),
            kExitUsage);
  EXPECT_EQ(out.str(), "");
  EXPECT_EQ(err.str(),
            "error: NOT_FOUND: session s-9 not found\n"
            "error: INVALID_ARGUMENT: missing argument\nusage: switchboard x\n");
}

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("a \"b\" \\ c\n\x01"), "\"a \\\"b\\\" \\\\ c\\n\\u0001\"");
  EXPECT_EQ(JsonString("转人工"), "\"转人工\"");
}

TEST(FormatEventTest, MessagesStateChangesAndMarkers) {
  sessions::v1::StreamSessionEventsResponse response;
  sessions::v1::SessionEvent* event = response.mutable_event();
  event->set_sequence(7);
  sessions::v1::Message* message = event->mutable_message();
  message->set_sender_role(common::v1::SENDER_ROLE_BOT);
  message->set_text("Deposits take 1 to 30 minutes.");
  message->add_quick_replies()->set_label("Still missing");
  message->add_quick_replies()->set_label("Talk to a human");
  const std::string line = FormatEvent(response);
  EXPECT_NE(line.find("#7 --:--:-- bot: Deposits take 1 to 30 minutes."), std::string::npos)
      << line;
  EXPECT_NE(line.find("quick replies: Still missing | Talk to a human"), std::string::npos);

  sessions::v1::StreamSessionEventsResponse change;
  change.mutable_event()->set_sequence(8);
  sessions::v1::StateChange* state = change.mutable_event()->mutable_state_changed();
  state->set_previous_state(sessions::v1::SESSION_STATE_ASSIGNED);
  state->set_state(sessions::v1::SESSION_STATE_QUEUED);
  state->set_reason(sessions::v1::STATE_CHANGE_REASON_AGENT_UNAVAILABLE);
  EXPECT_EQ(FormatEvent(change), "#8 --:--:-- state assigned -> queued (agent_unavailable)");

  sessions::v1::StreamSessionEventsResponse caught_up;
  caught_up.mutable_caught_up()->set_last_sequence(8);
  EXPECT_EQ(FormatEvent(caught_up), "-- up to date (#8)");
}

TEST(FormatEventTest, AttachmentsOfMessagesAndTheirVerdicts) {
  sessions::v1::StreamSessionEventsResponse response;
  sessions::v1::SessionEvent* event = response.mutable_event();
  event->set_sequence(9);
  sessions::v1::Message* message = event->mutable_message();
  message->set_sender_role(common::v1::SENDER_ROLE_CUSTOMER);
  message->set_sender_id("cust-1");
  message->set_text("my receipt");
  sessions::v1::Attachment* file = message->add_attachments();
  file->set_file_name("receipt.png");
  file->set_state(sessions::v1::ATTACHMENT_STATE_PENDING_SCAN);
  EXPECT_EQ(FormatEvent(response),
            "#9 --:--:-- customer cust-1: my receipt [file receipt.png, PENDING_SCAN]");

  sessions::v1::StreamSessionEventsResponse updated;
  updated.mutable_event()->set_sequence(10);
  sessions::v1::Attachment* verdict = updated.mutable_event()->mutable_attachment_updated();
  verdict->set_attachment_id("att-1");
  verdict->set_file_name("receipt.png");
  verdict->set_state(sessions::v1::ATTACHMENT_STATE_CLEAN);
  EXPECT_EQ(FormatEvent(updated), "#10 --:--:-- file receipt.png (att-1) is CLEAN");
  verdict->set_state(sessions::v1::ATTACHMENT_STATE_REJECTED);
  verdict->set_rejection_reason("Eicar-Signature");
  EXPECT_EQ(FormatEvent(updated),
            "#10 --:--:-- file receipt.png (att-1) is REJECTED: Eicar-Signature");
}

TEST(FormatTest, Attachments) {
  sessions::v1::Attachment attachment;
  attachment.set_attachment_id("att-1");
  attachment.set_file_name("clip.mov");
  attachment.set_content_type("video/quicktime");
  attachment.set_size_bytes(3 << 20);
  attachment.set_state(sessions::v1::ATTACHMENT_STATE_PENDING_SCAN);
  EXPECT_EQ(FormatAttachment(attachment),
            "att-1  clip.mov  video/quicktime  3.0 MiB  PENDING_SCAN");
  attachment.set_metadata_kept_reason("MOV location boxes are kept");
  EXPECT_EQ(FormatAttachment(attachment),
            "att-1  clip.mov  video/quicktime  3.0 MiB  PENDING_SCAN\n"
            "      metadata kept: MOV location boxes are kept");
}

TEST(FormatTest, QueuesAgentsAndSummaries) {
  routing::v1::QueueStats queue;
  queue.mutable_queue()->set_kind(routing::v1::ENTRY_KIND_SESSION);
  queue.mutable_queue()->set_channel(common::v1::CHANNEL_CHAT);
  queue.mutable_queue()->set_category(common::v1::CATEGORY_DEPOSIT);
  queue.mutable_queue()->set_language("en");
  queue.set_depth(3);
  queue.set_offered(1);
  queue.mutable_oldest_wait()->set_seconds(75);
  queue.set_eligible_agents(2);
  queue.set_available_agents(1);
  EXPECT_EQ(FormatQueue(queue),
            "chat/deposit/en: depth 3 (1 offered), oldest 1 min 15 s, agents 1 free of 2 eligible");
  queue.mutable_hours()->set_open(false);
  queue.mutable_hours()->set_schedule_id("chat-hours");
  queue.mutable_hours()->mutable_next_opening_at()->set_seconds(1'773'043'200);
  EXPECT_EQ(FormatQueue(queue),
            "chat/deposit/en: depth 3 (1 offered), oldest 1 min 15 s, agents 1 free of 2 "
            "eligible, CLOSED (chat-hours) until 2026-03-09 08:00 UTC");

  presence::v1::Agent agent;
  agent.set_agent_id("ana");
  agent.set_status(presence::v1::AGENT_STATUS_ONLINE);
  agent.mutable_profile()->mutable_skills()->add_categories(common::v1::CATEGORY_DEPOSIT);
  agent.mutable_profile()->mutable_skills()->add_languages("en");
  presence::v1::ChannelCapacity* chat = agent.mutable_profile()->add_capacities();
  chat->set_channel(common::v1::CHANNEL_CHAT);
  chat->set_capacity(3);
  chat->set_load(1);
  chat->set_max_capacity(3);
  EXPECT_EQ(FormatAgent(agent), "ana  online  [deposit] [en]  load chat 1/3");
  chat->set_max_capacity(5);
  EXPECT_EQ(FormatAgent(agent), "ana  online  [deposit] [en]  load chat 1/3 (up to 5)");

  identity::v1::AccountChange change;
  change.set_change_id("chg_1");
  change.set_state(identity::v1::ACCOUNT_CHANGE_STATE_PENDING);
  change.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  change.set_requested_by("sup-1");
  change.mutable_effective_at()->set_seconds(1'800'000'000);
  change.add_notified(common::v1::VERIFICATION_METHOD_SMS_OTP);
  EXPECT_EQ(FormatAccountChange(change),
            "chg_1  pending  email_otp change  applies 2027-01-15 08:00 UTC  by sup-1  "
            "(notified: sms_otp)");
  change.set_state(identity::v1::ACCOUNT_CHANGE_STATE_CANCELLED);
  change.set_resolution(identity::v1::ACCOUNT_CHANGE_RESOLUTION_CANCELLED_BY_CUSTOMER);
  change.clear_requested_by();
  change.clear_notified();
  EXPECT_EQ(FormatAccountChange(change),
            "chg_1  cancelled  email_otp change  cancelled_by_customer  (notified: nobody)");

  feedback::v1::FeedbackSummary summary;
  summary.set_feedback_count(4);
  summary.set_csat_share(0.75);
  summary.mutable_overall_satisfaction()->set_mean(4.25);
  for (int count : {0, 0, 1, 1, 2}) summary.mutable_overall_satisfaction()->add_distribution(count);
  const std::string text = FormatSummary(summary);
  EXPECT_NE(text.find("ratings 4, CSAT (4-5) 75.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("overall         mean 4.25  [0 0 1 1 2]"), std::string::npos) << text;
}

}  // namespace
}  // namespace switchboard::cli
