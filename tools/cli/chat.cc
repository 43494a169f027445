#include "tools/cli/chat.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "tools/cli/streams.h"

namespace switchboard::cli {

std::string NewRequestId() {
  static thread_local std::mt19937_64 random(std::random_device{}());
  return absl::StrFormat("cli-%016x%08x", random(), static_cast<uint32_t>(random()));
}

int SendOne(Command& command, const std::string& token, const std::string& session,
            const std::string& text) {
  sessions::v1::SendMessageRequest request;
  request.set_session_id(session);
  request.set_client_message_id(NewRequestId());
  request.mutable_message()->set_text(text);
  sessions::v1::SendMessageResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->SendMessage(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, absl::StrCat("sent #", response.message().sequence()));
  return kExitOk;
}

int RunChat(Command& command, const std::string& token, const std::string& session,
            absl::Duration linger) {
  Printer& printer = *command.printer;
  printer.Note(absl::StrCat("chat in ", session,
                            ": type a line and press Enter to send; Ctrl-D to leave"));
  SessionFollower follower(
      *command.clients, token, session, 0,
      [&printer](const sessions::v1::StreamSessionEventsResponse& response) {
        printer.Print(response, FormatEvent(response));
      },
      [&printer](const std::string& notice) { printer.Note(notice); });
  std::string line;
  while (!follower.ended() && std::getline(command.io.in, line)) {
    if (line.empty()) continue;
    sessions::v1::SendMessageRequest request;
    request.set_session_id(session);
    request.set_client_message_id(NewRequestId());
    request.mutable_message()->set_text(line);
    sessions::v1::SendMessageResponse response;
    // A retry with the same client_message_id never duplicates the message.
    absl::Status status;
    for (int attempt = 0; attempt < 3; ++attempt) {
      status = FromGrpc(command.clients->sessions->SendMessage(
          command.clients->Context(token).get(), request, &response));
      if (!absl::IsUnavailable(status)) break;
      absl::SleepFor(absl::Milliseconds(500));
    }
    if (!status.ok()) printer.Fail(status);
  }
  if (!follower.ended()) absl::SleepFor(linger);
  follower.Stop();
  absl::Status ended = follower.status();
  if (follower.ended() && !ended.ok()) return printer.Fail(ended);
  if (follower.ended()) printer.Note("the session's stream ended (closed, or you left it)");
  return kExitOk;
}

}  // namespace switchboard::cli
