#pragma once

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "google/protobuf/message.h"
#include "switchboard/feedback/v1/feedback_service.pb.h"
#include "switchboard/identity/v1/identity_service.pb.h"
#include "switchboard/presence/v1/presence_service.pb.h"
#include "switchboard/routing/v1/routing_service.pb.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::cli {

// Exit codes of every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a call failed
inline constexpr int kExitUsage = 2;    // bad arguments

// Where a command's output goes. Human-readable lines by default; with
// `json`, one JSON object per line (messages as protobuf's JSON mapping) so
// scripts can parse it. Errors always go to `err` as
// "error: <CODE>: <message>". Thread-safe: a chat's reader thread and its
// input loop print through one Printer.
class Printer {
 public:
  Printer(std::ostream& out, std::ostream& err, bool json)
      : out_(out), err_(err), json_(json) {}

  bool json() const { return json_; }

  // JSON mode: `message` as one JSON line. Human mode: `text` as a line
  // (nothing if empty).
  void Print(const google::protobuf::Message& message, absl::string_view text);
  // Human mode only: a line of text (JSON mode prints nothing).
  void Text(absl::string_view text);
  // JSON mode only: a line that is already JSON.
  void JsonLine(absl::string_view json);
  // A note for the person at the terminal, on `err` in both modes, so that
  // JSON on stdout stays parseable.
  void Note(absl::string_view text);

  // Prints "error: <CODE>: <message>" and returns kExitFailure.
  int Fail(const absl::Status& status);
  // Prints "error: <CODE>: <message>" and "usage: <usage>"; returns
  // kExitUsage.
  int Usage(const absl::Status& status, absl::string_view usage);

 private:
  absl::Mutex mu_;
  std::ostream& out_;
  std::ostream& err_;
  const bool json_;
};

// `message` as single-line JSON, enum values by name, fields that are set.
std::string ToJson(const google::protobuf::Message& message);

// `text` as a JSON string literal, quotes included.
std::string JsonString(absl::string_view text);

// "error: NOT_FOUND: session s-1 not found".
std::string ErrorLine(const absl::Status& status);

// One line per item, for human mode. Times are local wall-clock HH:MM:SS.
std::string FormatEvent(const sessions::v1::StreamSessionEventsResponse& response);
std::string FormatSession(const sessions::v1::Session& session);
// "att-1  shot.png  image/png  12.3 KiB  PENDING_SCAN", and the rejection
// reason or why metadata was kept when there is one.
std::string FormatAttachment(const sessions::v1::Attachment& attachment);
std::string FormatOffer(const routing::v1::Offer& offer, bool closed);
std::string FormatQueue(const routing::v1::QueueStats& queue);
std::string FormatAgent(const presence::v1::Agent& agent);
std::string FormatComplaint(const feedback::v1::Complaint& complaint);
// "chg_1  pending  email_otp change  applies 2026-12-02 09:00 UTC  (notified: email_otp)"
std::string FormatAccountChange(const identity::v1::AccountChange& change);
// Several lines: counts, means and the CSAT share.
std::string FormatSummary(const feedback::v1::FeedbackSummary& summary);

}  // namespace switchboard::cli
