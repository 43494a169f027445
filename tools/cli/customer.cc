#include "tools/cli/customer.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "libs/blob/blob_store.h"
#include "libs/protoutil/time.h"
#include "tools/cli/attachment_files.h"
#include "tools/cli/chat.h"
#include "tools/cli/command_line.h"

namespace switchboard::cli {
namespace {

constexpr char kDefaultCustomer[] = "customer-1";
// The most bytes UploadAttachment takes per request.
constexpr size_t kChunkBytes = 1 << 20;

// Starts the command and mints the customer's token; -1 to go on.
int Begin(Command& command, const std::vector<std::string>& args,
          const std::set<std::string>& bools, size_t min_positional, size_t max_positional,
          std::string* token) {
  if (int code = command.Start(args, bools, min_positional, max_positional); code >= 0) {
    return code;
  }
  absl::StatusOr<std::string> minted = command.clients->Token(
      auth::Role::kCustomer, command.common.as.empty() ? kDefaultCustomer : command.common.as);
  if (!minted.ok()) return command.BadUsage(minted.status());
  *token = *std::move(minted);
  return -1;
}

int Open(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer open [--channel=chat] [--category=general] "
                  "[--language=en] [--text=FIRST MESSAGE] [--subject=S] [--network=N]");
  std::string channel = "chat", category, language, text, subject, network;
  command.flags.Add("channel", &channel, "chat, email or social");
  command.flags.Add("category", &category, "deposit, withdrawal, account_security, ...");
  command.flags.Add("language", &language, "BCP 47 tag, e.g. en, zh-CN");
  command.flags.Add("text", &text, "the first message");
  command.flags.Add("subject", &subject, "subject line (email)");
  command.flags.Add("network", &network, "social network (social), e.g. telegram");
  std::string token;
  if (int code = Begin(command, args, {}, 0, 0, &token); code >= 0) return code;
  sessions::v1::CreateSessionRequest request;
  absl::StatusOr<int> parsed = ParseEnum(common::v1::Channel_descriptor(), "channel", channel);
  if (!parsed.ok()) return command.BadUsage(parsed.status());
  request.set_channel(static_cast<common::v1::Channel>(*parsed));
  if (!category.empty()) {
    parsed = ParseEnum(common::v1::Category_descriptor(), "category", category);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_category(static_cast<common::v1::Category>(*parsed));
  }
  if (!network.empty()) {
    parsed = ParseEnum(sessions::v1::SocialNetwork_descriptor(), "network", network);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.mutable_social()->set_network(static_cast<sessions::v1::SocialNetwork>(*parsed));
  }
  request.set_language(language);
  request.set_subject(subject);
  if (!text.empty()) request.mutable_first_message()->set_text(text);
  request.set_request_id(NewRequestId());
  sessions::v1::CreateSessionResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->CreateSession(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  // The id alone on stdout, so that S=$(switchboard customer open ...) works.
  command.printer->Print(response, response.session().session_id());
  command.printer->Note(absl::StrCat(
      "state ", EnumLabel(sessions::v1::SessionState_descriptor(), response.session().state()),
      "; follow it with: switchboard customer chat ", response.session().session_id()));
  return kExitOk;
}

int Chat(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer chat SESSION [--linger=1s]");
  absl::Duration linger = absl::Seconds(1);
  command.flags.Add("linger", &linger, "after the input ends, keep showing events this long");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  return RunChat(command, token, command.positional[0], linger);
}

int Say(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer say SESSION TEXT");
  std::string token;
  if (int code = Begin(command, args, {}, 2, 2, &token); code >= 0) return code;
  return SendOne(command, token, command.positional[0], command.positional[1]);
}

int Show(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer show SESSION");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  sessions::v1::GetSessionRequest request;
  request.set_session_id(command.positional[0]);
  sessions::v1::GetSessionResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->GetSession(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatSession(response.session()));
  return kExitOk;
}

// `attach SESSION FILE`: UploadAttachment, then with --message a message
// carrying the file. Both idempotency keys derive from what is sent, so
// running the command again after a failure is a retry that the server
// answers with the first attachment and message, never a second one.
int Attach(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer attach SESSION FILE [--type=MIME] [--message=TEXT]");
  std::string type, text;
  command.flags.Add("type", &type,
                    "the file's type, e.g. image/png; empty guesses it from the extension (png "
                    "jpg jpeg gif webp heic mp4 mov pdf txt log)");
  command.flags.Add("message", &text, "then send a message with this text carrying the file");
  std::string token;
  if (int code = Begin(command, args, {}, 2, 2, &token); code >= 0) return code;
  const std::string& session = command.positional[0];
  const std::string& path = command.positional[1];
  if (type.empty()) {
    absl::StatusOr<std::string> guessed = GuessContentType(path);
    if (!guessed.ok()) return command.BadUsage(guessed.status());
    type = *std::move(guessed);
  }
  absl::StatusOr<std::string> bytes = ReadLocalFile(path);
  if (!bytes.ok()) return command.BadUsage(bytes.status());
  sessions::v1::UploadAttachmentRequest first;
  sessions::v1::UploadHeader* header = first.mutable_header();
  header->set_session_id(session);
  header->set_file_name(BaseName(path));
  header->set_content_type(type);
  header->set_size_bytes(static_cast<int64_t>(bytes->size()));
  header->set_sha256(blob::ContentAddress(*bytes));
  header->set_upload_id(UploadId(session, header->sha256(), header->file_name(), type));
  sessions::v1::UploadAttachmentResponse uploaded;
  std::unique_ptr<grpc::ClientContext> context = command.clients->Context(token);
  auto writer = command.clients->sessions->UploadAttachment(context.get(), &uploaded);
  // A refused header ends the call early: Write fails and Finish says why.
  bool open = writer->Write(first);
  for (size_t offset = 0; open && offset < bytes->size(); offset += kChunkBytes) {
    sessions::v1::UploadAttachmentRequest chunk;
    chunk.set_chunk(bytes->data() + offset, std::min(kChunkBytes, bytes->size() - offset));
    open = writer->Write(chunk);
  }
  if (open) writer->WritesDone();
  absl::Status status = FromGrpc(writer->Finish());
  if (!status.ok()) return command.printer->Fail(status);
  const sessions::v1::Attachment& attachment = uploaded.attachment();
  command.printer->Print(uploaded, FormatAttachment(attachment));
  if (uploaded.replayed()) command.printer->Note("(uploaded by an earlier run; not stored again)");
  if (attachment.state() == sessions::v1::ATTACHMENT_STATE_PENDING_SCAN) {
    command.printer->Note(absl::StrCat("the malware scan's verdict follows in the session: "
                                       "switchboard customer chat ",
                                       session));
  }
  if (text.empty()) return kExitOk;
  sessions::v1::SendMessageRequest request;
  request.set_session_id(session);
  request.set_client_message_id(AttachmentMessageId(attachment.attachment_id(), text));
  request.mutable_message()->set_text(text);
  request.mutable_message()->add_attachment_ids(attachment.attachment_id());
  sessions::v1::SendMessageResponse sent;
  status = FromGrpc(command.clients->sessions->SendMessage(command.clients->Context(token).get(),
                                                           request, &sent));
  if (!status.ok()) {
    command.printer->Fail(status);
    command.printer->Note("the file is uploaded; the same command again sends the message");
    return kExitFailure;
  }
  command.printer->Print(sent, absl::StrCat("sent #", sent.message().sequence(),
                                            sent.replayed() ? " (sent by an earlier run)" : ""));
  return kExitOk;
}

// `email SESSION`: a chat waiting outside hours continues by email.
int Email(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer email SESSION");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  sessions::v1::ContinueByEmailRequest request;
  request.set_session_id(command.positional[0]);
  sessions::v1::ContinueByEmailResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->ContinueByEmail(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatSession(response.session()));
  return kExitOk;
}

// StartVerification, then CompleteVerification with --code or a line read
// from the input. On success `*response` holds the token.
int Verify(Command& command, const std::string& token, const std::string& method_name,
           const std::string& session, std::string code,
           identity::v1::CompleteVerificationResponse* response) {
  absl::StatusOr<int> method =
      ParseEnum(common::v1::VerificationMethod_descriptor(), "method", method_name);
  if (!method.ok()) return command.BadUsage(method.status());
  identity::v1::StartVerificationRequest start;
  start.set_method(static_cast<common::v1::VerificationMethod>(*method));
  start.set_session_id(session);
  identity::v1::StartVerificationResponse started;
  absl::Status status = FromGrpc(command.clients->identity->StartVerification(
      command.clients->Context(token).get(), start, &started));
  if (!status.ok()) return command.printer->Fail(status);
  if (code.empty()) {
    command.printer->Note(absl::StrCat(
        "challenge ", started.challenge_id(), ": enter the 6-digit code ",
        *method == common::v1::VERIFICATION_METHOD_TOTP
            ? "from your authenticator app"
            : "sent to your registered contact (locally: DATA_DIR/"
              "DEVELOPMENT-ONLY-code-outbox.jsonl)",
        ":"));
    if (!std::getline(command.io.in, code)) {
      return command.BadUsage(absl::InvalidArgumentError("no code given (--code or a line on stdin)"));
    }
    absl::StripAsciiWhitespace(&code);
  }
  identity::v1::CompleteVerificationRequest complete;
  complete.set_challenge_id(started.challenge_id());
  complete.set_code(code);
  status = FromGrpc(command.clients->identity->CompleteVerification(
      command.clients->Context(token).get(), complete, response));
  if (!status.ok()) return command.printer->Fail(status);
  return -1;
}

int VerifyCommand(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer verify [--method=email_otp] [--session=S] [--code=123456]");
  std::string method = "email_otp", session, code;
  command.flags.Add("method", &method, "email_otp, sms_otp or totp");
  command.flags.Add("session", &session, "bind the verification to this session and record it there");
  command.flags.Add("code", &code, "the code; read from stdin when empty");
  std::string token;
  if (int exit = Begin(command, args, {}, 0, 0, &token); exit >= 0) return exit;
  identity::v1::CompleteVerificationResponse verified;
  if (int exit = Verify(command, token, method, session, code, &verified); exit >= 0) return exit;
  if (!session.empty()) {
    sessions::v1::AttachVerificationRequest attach;
    attach.set_session_id(session);
    attach.set_verification_token(verified.verification_token());
    sessions::v1::AttachVerificationResponse attached;
    absl::Status status = FromGrpc(command.clients->sessions->AttachVerification(
        command.clients->Context(token).get(), attach, &attached));
    if (!status.ok()) return command.printer->Fail(status);
    command.printer->Note(absl::StrCat("recorded on session ", session));
  }
  // The token alone on stdout, for `callback --verification_token=$(...)`.
  command.printer->Print(verified, verified.verification_token());
  command.printer->Note(absl::StrCat(
      "verified: ",
      EnumLabel(common::v1::VerificationLevel_descriptor(), verified.verification().level()),
      " level, token ", verified.token_id(), " valid until ",
      absl::FormatTime("%H:%M:%S",
                       protoutil::FromTimestamp(verified.verification().expires_at()),
                       absl::LocalTimeZone())));
  return kExitOk;
}

int Callback(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer callback SESSION --phone=+8613800138000 [--within=2h] "
                  "[--note=N] [--verification_token=T | --method=email_otp [--code=C]]");
  std::string phone, note, verification_token, method = "email_otp", code;
  absl::Duration within = absl::Hours(2);
  command.flags.Add("phone", &phone, "number to call, E.164");
  command.flags.Add("within", &within, "call within this long from now (at least 15m)");
  command.flags.Add("note", &note, "a note for the agent");
  command.flags.Add("verification_token", &verification_token,
                    "from `customer verify`; empty verifies now (--method, --code)");
  command.flags.Add("method", &method, "verification method when verifying now");
  command.flags.Add("code", &code, "verification code when verifying now; else read from stdin");
  std::string token;
  if (int exit = Begin(command, args, {}, 1, 1, &token); exit >= 0) return exit;
  const std::string& session = command.positional[0];
  if (phone.empty()) return command.BadUsage(absl::InvalidArgumentError("--phone is required"));
  if (verification_token.empty()) {
    identity::v1::CompleteVerificationResponse verified;
    if (int exit = Verify(command, token, method, session, code, &verified); exit >= 0) {
      return exit;
    }
    verification_token = verified.verification_token();
  }
  sessions::v1::RequestCallbackRequest request;
  request.set_session_id(session);
  request.set_request_id(NewRequestId());
  sessions::v1::CallbackDetails* details = request.mutable_callback();
  details->set_phone_number(phone);
  details->set_note(note);
  details->set_verification_token(verification_token);
  protoutil::ToTimestamp(absl::Now() + within, details->mutable_window_end());
  sessions::v1::RequestCallbackResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->RequestCallback(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(
      response,
      absl::StrCat("callback ", response.callback().callback_id(), " queued as phone session ",
                   response.phone_session().session_id(),
                   response.callback().has_scheduled_for()
                       ? absl::StrCat(", booked for ",
                                      absl::FormatTime(
                                          "%Y-%m-%d %H:%M UTC",
                                          protoutil::FromTimestamp(
                                              response.callback().scheduled_for()),
                                          absl::UTCTimeZone()),
                                      " (the phone desk is closed now)")
                       : ""));
  return kExitOk;
}

int Rate(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer rate SESSION [--csat=5] [--speed=5] "
                  "[--professionalism=5] [--resolution=5] [--comment=TEXT]");
  int csat = 5, speed = 5, professionalism = 5, resolution = 5;
  std::string comment;
  command.flags.Add("csat", &csat, "overall satisfaction, 1-5");
  command.flags.Add("speed", &speed, "response speed, 1-5");
  command.flags.Add("professionalism", &professionalism, "professionalism, 1-5");
  command.flags.Add("resolution", &resolution, "problem solved, 1-5");
  command.flags.Add("comment", &comment, "free text");
  std::string token;
  if (int exit = Begin(command, args, {}, 1, 1, &token); exit >= 0) return exit;
  feedback::v1::SubmitFeedbackRequest request;
  request.set_session_id(command.positional[0]);
  request.set_overall_satisfaction(csat);
  request.mutable_ratings()->set_response_speed(speed);
  request.mutable_ratings()->set_professionalism(professionalism);
  request.mutable_ratings()->set_problem_resolution(resolution);
  request.set_comment(comment);
  request.set_request_id(NewRequestId());
  feedback::v1::SubmitFeedbackResponse response;
  absl::Status status = FromGrpc(command.clients->feedback->SubmitFeedback(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, absl::StrCat("rated: feedback ",
                                                response.feedback().feedback_id(), " (csat ",
                                                response.feedback().overall_satisfaction(), ")"));
  return kExitOk;
}

int Complain(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer complain --text=TEXT [--reason=other] [--session=S] "
                  "[--category=general]");
  std::string text, reason = "other", session, category;
  command.flags.Add("text", &text, "what went wrong");
  command.flags.Add("reason", &reason,
                    "agent_conduct, slow_response, unresolved, bot, product or other");
  command.flags.Add("session", &session, "the session it is about; empty for the service");
  command.flags.Add("category", &category, "category of a general complaint");
  std::string token;
  if (int exit = Begin(command, args, {}, 0, 0, &token); exit >= 0) return exit;
  feedback::v1::FileComplaintRequest request;
  absl::StatusOr<int> parsed =
      ParseEnum(feedback::v1::ComplaintReason_descriptor(), "reason", reason);
  if (!parsed.ok()) return command.BadUsage(parsed.status());
  request.set_reason(static_cast<feedback::v1::ComplaintReason>(*parsed));
  if (!category.empty()) {
    parsed = ParseEnum(common::v1::Category_descriptor(), "category", category);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_category(static_cast<common::v1::Category>(*parsed));
  }
  request.set_session_id(session);
  request.set_description(text);
  request.set_request_id(NewRequestId());
  feedback::v1::FileComplaintResponse response;
  absl::Status status = FromGrpc(command.clients->feedback->FileComplaint(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, absl::StrCat("complaint ", response.complaint().complaint_id(),
                                                " filed (open)"));
  return kExitOk;
}

int Changes(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer changes");
  std::string token;
  if (int code = Begin(command, args, {}, 0, 0, &token); code >= 0) return code;
  identity::v1::ListAccountChangesResponse response;
  absl::Status status = FromGrpc(command.clients->identity->ListAccountChanges(
      command.clients->Context(token).get(), {}, &response));
  if (!status.ok()) return command.printer->Fail(status);
  for (const auto& change : response.changes()) {
    command.printer->Print(change, FormatAccountChange(change));
  }
  if (response.changes_size() == 0) command.printer->Text("no changes by the support desk");
  return kExitOk;
}

int ConfirmChange(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard customer confirm-change CHANGE [--code=123456] "
                  "[--verification_token=T]");
  std::string code, verification_token;
  command.flags.Add("code", &code, "the confirmation code from the notice");
  command.flags.Add("verification_token", &verification_token,
                    "a verification token of yours (from `customer verify`) instead of the code");
  std::string token;
  if (int exit = Begin(command, args, {}, 1, 1, &token); exit >= 0) return exit;
  identity::v1::ConfirmAccountChangeRequest request;
  request.set_change_id(command.positional[0]);
  request.set_code(code);
  request.set_verification_token(verification_token);
  identity::v1::ConfirmAccountChangeResponse response;
  absl::Status status = FromGrpc(command.clients->identity->ConfirmAccountChange(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatAccountChange(response.change()));
  return kExitOk;
}

int CancelChange(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard customer cancel-change CHANGE");
  std::string token;
  if (int exit = Begin(command, args, {}, 1, 1, &token); exit >= 0) return exit;
  identity::v1::CancelAccountChangeRequest request;
  request.set_change_id(command.positional[0]);
  identity::v1::CancelAccountChangeResponse response;
  absl::Status status = FromGrpc(command.clients->identity->CancelAccountChange(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatAccountChange(response.change()));
  return kExitOk;
}

}  // namespace

int RunCustomer(const std::vector<std::string>& args, Io& io) {
  const std::string name = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (name == "open") return Open(rest, io);
  if (name == "chat") return Chat(rest, io);
  if (name == "say") return Say(rest, io);
  if (name == "show") return Show(rest, io);
  if (name == "attach") return Attach(rest, io);
  if (name == "verify") return VerifyCommand(rest, io);
  if (name == "callback") return Callback(rest, io);
  if (name == "email") return Email(rest, io);
  if (name == "rate") return Rate(rest, io);
  if (name == "complain") return Complain(rest, io);
  if (name == "changes") return Changes(rest, io);
  if (name == "confirm-change") return ConfirmChange(rest, io);
  if (name == "cancel-change") return CancelChange(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown customer command \"" << name
         << "\"\nusage: switchboard customer open|chat|say|show|attach|verify|callback|email|"
            "rate|complain|changes|confirm-change|cancel-change ... (see switchboard help)\n";
  return kExitUsage;
}

}  // namespace switchboard::cli
