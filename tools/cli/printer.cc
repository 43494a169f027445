#include "tools/cli/printer.h"

#include <cstdio>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "libs/protoutil/time.h"
#include "tools/cli/command_line.h"

namespace switchboard::cli {
namespace {

std::string Clock(const google::protobuf::Timestamp& timestamp) {
  if (timestamp.seconds() == 0 && timestamp.nanos() == 0) return "--:--:--";
  return absl::FormatTime("%H:%M:%S", protoutil::FromTimestamp(timestamp),
                          absl::LocalTimeZone());
}

std::string Sender(const sessions::v1::Message& message) {
  switch (message.sender_role()) {
    case common::v1::SENDER_ROLE_BOT:
      return "bot";
    case common::v1::SENDER_ROLE_SYSTEM:
      return "system";
    case common::v1::SENDER_ROLE_AGENT:
      return absl::StrCat("agent ", message.sender_id());
    default:
      return absl::StrCat("customer ", message.sender_id());
  }
}

std::string State(sessions::v1::SessionState state) {
  return EnumLabel(sessions::v1::SessionState_descriptor(), state);
}

// PENDING_SCAN, CLEAN, ...: as the server's messages name them.
std::string AttachmentState(sessions::v1::AttachmentState state) {
  return absl::AsciiStrToUpper(EnumLabel(sessions::v1::AttachmentState_descriptor(), state));
}

std::string Fixed(double value, int digits) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

}  // namespace

void Printer::Print(const google::protobuf::Message& message, absl::string_view text) {
  absl::MutexLock lock(&mu_);
  if (json_) {
    out_ << ToJson(message) << "\n";
  } else if (!text.empty()) {
    out_ << text << "\n";
  }
  out_.flush();
}

void Printer::Text(absl::string_view text) {
  if (json_) return;
  absl::MutexLock lock(&mu_);
  out_ << text << "\n";
  out_.flush();
}

void Printer::JsonLine(absl::string_view json) {
  if (!json_) return;
  absl::MutexLock lock(&mu_);
  out_ << json << "\n";
  out_.flush();
}

void Printer::Note(absl::string_view text) {
  absl::MutexLock lock(&mu_);
  err_ << text << "\n";
  err_.flush();
}

int Printer::Fail(const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  err_ << ErrorLine(status) << "\n";
  err_.flush();
  return kExitFailure;
}

int Printer::Usage(const absl::Status& status, absl::string_view usage) {
  absl::MutexLock lock(&mu_);
  err_ << ErrorLine(status) << "\nusage: " << usage << "\n";
  err_.flush();
  return kExitUsage;
}

std::string ToJson(const google::protobuf::Message& message) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
    return "{}";
  }
  return json;
}

std::string JsonString(absl::string_view text) {
  std::string json = "\"";
  for (char c : text) {
    switch (c) {
      case '"': json += "\\\""; break;
      case '\\': json += "\\\\"; break;
      case '\n': json += "\\n"; break;
      case '\t': json += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", c);
          json += escaped;
        } else {
          json += c;
        }
    }
  }
  return json + "\"";
}

std::string ErrorLine(const absl::Status& status) {
  return absl::StrCat("error: ", absl::StatusCodeToString(status.code()), ": ",
                      status.message());
}

std::string FormatEvent(const sessions::v1::StreamSessionEventsResponse& response) {
  if (response.has_caught_up()) {
    return absl::StrCat("-- up to date (#", response.caught_up().last_sequence(), ")");
  }
  if (response.has_typing()) {
    const auto& typing = response.typing();
    return absl::StrCat("   ", typing.participant_id(),
                        typing.typing() ? " is typing..." : " stopped typing");
  }
  const sessions::v1::SessionEvent& event = response.event();
  std::string line = absl::StrCat("#", event.sequence(), " ", Clock(event.occurred_at()), " ");
  switch (event.kind_case()) {
    case sessions::v1::SessionEvent::kMessage: {
      const sessions::v1::Message& message = event.message();
      absl::StrAppend(&line, Sender(message), ": ", message.text());
      for (const auto& attachment : message.attachments()) {
        absl::StrAppend(&line, " [file ", attachment.file_name(), ", ",
                        AttachmentState(attachment.state()), "]");
      }
      if (message.quick_replies_size() > 0) {
        std::vector<std::string> labels;
        for (const auto& reply : message.quick_replies()) labels.push_back(reply.label());
        absl::StrAppend(&line, "\n      quick replies: ", absl::StrJoin(labels, " | "));
      }
      break;
    }
    case sessions::v1::SessionEvent::kStateChanged: {
      const sessions::v1::StateChange& change = event.state_changed();
      absl::StrAppend(&line, "state ", State(change.previous_state()), " -> ",
                      State(change.state()), " (",
                      EnumLabel(sessions::v1::StateChangeReason_descriptor(), change.reason()));
      if (!change.agent_id().empty()) absl::StrAppend(&line, ", agent ", change.agent_id());
      if (change.close_reason() != sessions::v1::CLOSE_REASON_UNSPECIFIED) {
        absl::StrAppend(&line, ", ",
                        EnumLabel(sessions::v1::CloseReason_descriptor(), change.close_reason()));
      }
      absl::StrAppend(&line, ")");
      break;
    }
    case sessions::v1::SessionEvent::kVerificationAttached:
      absl::StrAppend(&line, "verified (",
                      EnumLabel(common::v1::VerificationMethod_descriptor(),
                                event.verification_attached().method()),
                      ", ",
                      EnumLabel(common::v1::VerificationLevel_descriptor(),
                                event.verification_attached().level()),
                      ")");
      break;
    case sessions::v1::SessionEvent::kCallbackRequested:
      absl::StrAppend(&line, "callback requested (phone session ",
                      event.callback_requested().phone_session_id(), ")");
      break;
    case sessions::v1::SessionEvent::kAttachmentUpdated: {
      const sessions::v1::Attachment& attachment = event.attachment_updated();
      absl::StrAppend(&line, "file ", attachment.file_name(), " (", attachment.attachment_id(),
                      ") is ", AttachmentState(attachment.state()));
      if (!attachment.rejection_reason().empty()) {
        absl::StrAppend(&line, ": ", attachment.rejection_reason());
      }
      break;
    }
    default:
      absl::StrAppend(&line, "event");
  }
  return line;
}

std::string FormatAttachment(const sessions::v1::Attachment& attachment) {
  std::string line = absl::StrCat(attachment.attachment_id(), "  ", attachment.file_name(), "  ",
                                  attachment.content_type(), "  ",
                                  HumanBytes(attachment.size_bytes()), "  ",
                                  AttachmentState(attachment.state()));
  if (!attachment.rejection_reason().empty()) {
    absl::StrAppend(&line, " (", attachment.rejection_reason(), ")");
  }
  if (!attachment.metadata_kept_reason().empty()) {
    absl::StrAppend(&line, "\n      metadata kept: ", attachment.metadata_kept_reason());
  }
  return line;
}

std::string FormatSession(const sessions::v1::Session& session) {
  std::string line = absl::StrCat(
      session.session_id(), "  ", State(session.state()), "  ",
      EnumLabel(common::v1::Channel_descriptor(), session.channel()), "/",
      EnumLabel(common::v1::Category_descriptor(), session.category()), "/",
      session.language());
  if (!session.assigned_agent_id().empty()) {
    absl::StrAppend(&line, "  agent ", session.assigned_agent_id());
  }
  absl::StrAppend(&line, "  ", session.message_count(), " messages");
  return line;
}

std::string FormatOffer(const routing::v1::Offer& offer, bool closed) {
  const routing::v1::QueueEntry& entry = offer.entry();
  const std::string what = entry.kind() == routing::v1::ENTRY_KIND_COMPLAINT
                               ? absl::StrCat("complaint ", entry.complaint_id())
                               : absl::StrCat("session ", entry.session_id());
  if (closed) {
    return absl::StrCat("offer ", offer.offer_id(), " closed: ",
                        EnumLabel(routing::v1::OfferOutcome_descriptor(), offer.outcome()),
                        " (", what, ")");
  }
  std::string line = absl::StrCat(
      "offer ", offer.offer_id(), ": ", what, " (",
      EnumLabel(common::v1::Category_descriptor(), entry.queue().category()), ", ",
      entry.queue().language().empty() ? "-" : entry.queue().language(), ", ",
      EnumLabel(routing::v1::Priority_descriptor(), entry.priority()), ") until ",
      Clock(offer.expires_at()));
  if (offer.auto_accepted()) absl::StrAppend(&line, " [auto-accepted]");
  if (!entry.handoff().summary().empty()) {
    absl::StrAppend(&line, "\n      ", entry.handoff().summary());
  }
  if (!entry.transfer_note().empty()) {
    absl::StrAppend(&line, "\n      note: ", entry.transfer_note());
  }
  return line;
}

std::string FormatQueue(const routing::v1::QueueStats& queue) {
  const routing::v1::QueueKey& key = queue.queue();
  std::string name =
      key.kind() == routing::v1::ENTRY_KIND_COMPLAINT
          ? absl::StrCat("complaints/", EnumLabel(common::v1::Category_descriptor(), key.category()))
          : absl::StrCat(EnumLabel(common::v1::Channel_descriptor(), key.channel()), "/",
                         EnumLabel(common::v1::Category_descriptor(), key.category()), "/",
                         key.language());
  return absl::StrCat(name, ": depth ", queue.depth(), " (", queue.offered(), " offered), oldest ",
                      HumanDuration(protoutil::FromDuration(queue.oldest_wait())),
                      ", agents ", queue.available_agents(), " free of ",
                      queue.eligible_agents(), " eligible",
                      queue.sla_breached() > 0 ? absl::StrCat(", ", queue.sla_breached(),
                                                              " past SLA")
                                               : "",
                      !queue.has_hours() || queue.hours().open()
                          ? ""
                          : absl::StrCat(", CLOSED (", queue.hours().schedule_id(), ")",
                                         queue.hours().has_next_opening_at()
                                             ? absl::StrCat(" until ",
                                                            absl::FormatTime(
                                                                "%Y-%m-%d %H:%M UTC",
                                                                protoutil::FromTimestamp(
                                                                    queue.hours()
                                                                        .next_opening_at()),
                                                                absl::UTCTimeZone()))
                                             : ""));
}

std::string FormatAgent(const presence::v1::Agent& agent) {
  std::vector<std::string> capacities;
  for (const auto& capacity : agent.profile().capacities()) {
    capacities.push_back(absl::StrCat(
        EnumLabel(common::v1::Channel_descriptor(), capacity.channel()), " ", capacity.load(),
        "/", capacity.capacity(),
        capacity.capacity() < capacity.max_capacity()
            ? absl::StrCat(" (up to ", capacity.max_capacity(), ")")
            : ""));
  }
  std::vector<std::string> categories;
  for (int category : agent.profile().skills().categories()) {
    categories.push_back(EnumLabel(common::v1::Category_descriptor(), category));
  }
  return absl::StrCat(agent.agent_id(), "  ",
                      EnumLabel(presence::v1::AgentStatus_descriptor(), agent.status()), "  [",
                      absl::StrJoin(categories, ","), "] [",
                      absl::StrJoin(agent.profile().skills().languages(), ","), "]  load ",
                      absl::StrJoin(capacities, ", "));
}

std::string FormatAccountChange(const identity::v1::AccountChange& change) {
  std::string line = absl::StrCat(
      change.change_id(), "  ",
      EnumLabel(identity::v1::AccountChangeState_descriptor(), change.state()), "  ",
      EnumLabel(common::v1::VerificationMethod_descriptor(), change.method()),
      change.removed() ? " removal" : " change");
  if (change.state() == identity::v1::ACCOUNT_CHANGE_STATE_PENDING) {
    absl::StrAppend(&line, "  applies ",
                    absl::FormatTime("%Y-%m-%d %H:%M UTC",
                                     protoutil::FromTimestamp(change.effective_at()),
                                     absl::UTCTimeZone()));
  } else {
    absl::StrAppend(&line, "  ",
                    EnumLabel(identity::v1::AccountChangeResolution_descriptor(),
                              change.resolution()));
  }
  if (!change.requested_by().empty()) absl::StrAppend(&line, "  by ", change.requested_by());
  std::vector<std::string> notified;
  for (int method : change.notified()) {
    notified.push_back(EnumLabel(common::v1::VerificationMethod_descriptor(), method));
  }
  absl::StrAppend(&line, "  (notified: ",
                  notified.empty() ? "nobody" : absl::StrJoin(notified, ", "), ")");
  return line;
}

std::string FormatComplaint(const feedback::v1::Complaint& complaint) {
  std::string line = absl::StrCat(
      complaint.complaint_id(), "  ",
      EnumLabel(feedback::v1::ComplaintState_descriptor(), complaint.state()), "  ",
      EnumLabel(feedback::v1::ComplaintReason_descriptor(), complaint.reason()), "  customer ",
      complaint.customer_id());
  if (!complaint.session_id().empty()) absl::StrAppend(&line, "  session ", complaint.session_id());
  if (!complaint.assignee_id().empty()) {
    absl::StrAppend(&line, "  assignee ", complaint.assignee_id());
  }
  absl::StrAppend(&line, "\n      ", complaint.description());
  return line;
}

std::string FormatSummary(const feedback::v1::FeedbackSummary& summary) {
  const auto score = [](absl::string_view name, const feedback::v1::ScoreSummary& s) {
    return absl::StrCat("  ", name, " mean ", Fixed(s.mean(), 2), "  [",
                        absl::StrJoin(s.distribution(), " "), "]\n");
  };
  return absl::StrCat("ratings ", summary.feedback_count(), ", CSAT (4-5) ",
                      Fixed(summary.csat_share() * 100, 1), "%, with comment ",
                      summary.comment_count(), ", complaints filed ",
                      summary.complaints_filed(), "\n",
                      score("overall        ", summary.overall_satisfaction()),
                      score("response speed ", summary.response_speed()),
                      score("professionalism", summary.professionalism()),
                      score("resolution     ", summary.problem_resolution()));
}

}  // namespace switchboard::cli
