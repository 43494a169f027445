#include "services/sessions/rules.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "libs/auth/verification_token.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"

namespace switchboard::sessions {
namespace {

using auth::Role;

constexpr size_t kMaxText = 4000;
constexpr size_t kMaxSubject = 200;
constexpr size_t kMaxTransferNote = 1000;
constexpr size_t kMaxNote = 500;
constexpr int kMaxListPage = 200;
constexpr char kSessionPageTokenPrefix[] = "sessions:";
constexpr char kMessagePageTokenPrefix[] = "messages:";

absl::Time Ts(const google::protobuf::Timestamp& t) { return protoutil::FromTimestamp(t); }


bool IsE164(absl::string_view number) {
  if (number.size() < 9 || number.size() > 16 || number[0] != '+') return false;
  for (char c : number.substr(1)) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return number[1] != '0';
}

}  // namespace

bool TransitionAllowed(v1::SessionState from, v1::SessionState to) {
  using S = v1::SessionState;
  switch (from) {
    case S::SESSION_STATE_BOT:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_RESOLVED ||
             to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_QUEUED:
      return to == S::SESSION_STATE_ASSIGNED || to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_ASSIGNED:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_BOT ||
             to == S::SESSION_STATE_RESOLVED || to == S::SESSION_STATE_CLOSED;
    case S::SESSION_STATE_RESOLVED:
      return to == S::SESSION_STATE_QUEUED || to == S::SESSION_STATE_CLOSED;
    default:
      return false;
  }
}

std::string StateName(v1::SessionState state) {
  return v1::SessionState_Name(state).substr(sizeof("SESSION_STATE_") - 1);
}

absl::Status WrongState(const v1::Session& session, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("session is ", StateName(session.state()), ": ", what));
}

absl::Status NotFound() { return absl::NotFoundError("session_id: no such session"); }

absl::Status ValidateKey(absl::string_view field, absl::string_view key, bool required) {
  if (key.empty()) {
    return required ? absl::InvalidArgumentError(absl::StrCat(field, ": must not be empty"))
                    : absl::OkStatus();
  }
  if (key.size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": at most 64 characters"));
  }
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": only letters, digits, '-' and '_' are allowed"));
    }
  }
  return absl::OkStatus();
}

bool IsLanguageTag(absl::string_view tag) {
  if (tag.size() < 2 || tag.size() > 35) return false;
  for (char c : tag) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return absl::ascii_isalpha(static_cast<unsigned char>(tag[0]));
}

absl::Status ValidateNewMessage(absl::string_view field, const v1::NewMessage& message) {
  if (absl::Status s = validation::ValidateText(absl::StrCat(field, ".text"), message.text(),
                                                kMaxText);
      !s.ok()) {
    return s;
  }
  if (absl::StrContains(message.text(), '\r')) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".text: control characters other than tab and newline"));
  }
  if (!message.attachments().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".attachments: no longer accepted; upload each file with UploadAttachment and "
               "list the ids it returns in attachment_ids"));
  }
  if (message.text().empty() && message.attachment_ids().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".text: must not be empty without attachment_ids"));
  }
  for (int i = 0; i < message.attachment_ids_size(); ++i) {
    const std::string& id = message.attachment_ids(i);
    const std::string f = absl::StrCat(field, ".attachment_ids[", i, "]");
    if (absl::Status s = ValidateKey(f, id, /*required=*/true); !s.ok()) return s;
    for (int j = 0; j < i; ++j) {
      if (message.attachment_ids(j) == id) {
        return absl::InvalidArgumentError(absl::StrCat(f, ": listed twice"));
      }
    }
  }
  if (!message.quick_reply_id().empty()) {
    if (absl::Status s = validation::ValidateId(absl::StrCat(field, ".quick_reply_id"),
                                                message.quick_reply_id(), 64);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateCallbackDetails(absl::string_view field, const v1::CallbackDetails& d,
                                     absl::Time now) {
  if (!IsE164(d.phone_number())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".phone_number: must be E.164, '+' and 8 to 15 digits"));
  }
  if (!d.has_window_end()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".window_end: required"));
  }
  const absl::Time start = d.has_window_start() ? Ts(d.window_start()) : now;
  const absl::Time end = Ts(d.window_end());
  if (end <= now) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".window_end: in the past"));
  }
  if (end > now + absl::Hours(24 * 14)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".window_end: at most 14 days ahead"));
  }
  if (end - start < absl::Minutes(15)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".window_end: the window must be at least 15 minutes long"));
  }
  return validation::ValidateText(absl::StrCat(field, ".note"), d.note(), kMaxNote);
}

absl::StatusOr<NewSession> ValidateCreate(const Caller& caller,
                                          const v1::CreateSessionRequest& request,
                                          absl::Time now) {
  NewSession out;
  out.customer_id = request.customer_id();
  if (caller.role == Role::kCustomer) {
    if (!out.customer_id.empty() && out.customer_id != caller.id) {
      return absl::PermissionDeniedError(
          "customer_id: a customer may open sessions for themselves only");
    }
    out.customer_id = caller.id;
  }
  // Customer ids travel to routing and into events: the id rules apply to
  // token subjects too.
  if (absl::Status s = validation::ValidateId("customer_id", out.customer_id); !s.ok()) {
    return s;
  }
  out.channel = request.channel();
  if (out.channel == common::v1::CHANNEL_UNSPECIFIED ||
      !common::v1::Channel_IsValid(out.channel)) {
    return absl::InvalidArgumentError("channel: must be CHAT, EMAIL, PHONE or SOCIAL");
  }
  out.category = request.category();
  if (!common::v1::Category_IsValid(out.category)) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (out.category == common::v1::CATEGORY_UNSPECIFIED) {
    if (out.channel == common::v1::CHANNEL_EMAIL || out.channel == common::v1::CHANNEL_PHONE) {
      return absl::InvalidArgumentError("category: required for EMAIL and PHONE sessions");
    }
    out.category = common::v1::CATEGORY_GENERAL;
  }
  out.language = request.language().empty() ? "en" : request.language();
  if (!IsLanguageTag(out.language)) {
    return absl::InvalidArgumentError(
        "language: must be a BCP 47 tag such as en or zh-CN");
  }
  if (absl::Status s = validation::ValidateText("subject", request.subject(), kMaxSubject,
                                                out.channel == common::v1::CHANNEL_EMAIL);
      !s.ok()) {
    return s;
  }
  out.has_first_message =
      request.has_first_message() && out.channel != common::v1::CHANNEL_PHONE;
  if (out.channel == common::v1::CHANNEL_EMAIL && !out.has_first_message) {
    return absl::InvalidArgumentError("first_message: required for EMAIL sessions");
  }
  if (out.has_first_message) {
    if (!request.first_message().attachment_ids().empty()) {
      return absl::InvalidArgumentError(
          "first_message.attachment_ids: upload files to the session once it exists");
    }
    if (absl::Status s = ValidateNewMessage("first_message", request.first_message());
        !s.ok()) {
      return s;
    }
    if (!request.first_message().quick_reply_id().empty()) {
      return absl::InvalidArgumentError(
          "first_message.quick_reply_id: no quick reply was offered yet");
    }
  }
  if (out.channel == common::v1::CHANNEL_SOCIAL) {
    const int network = request.social().network();
    if (network == v1::SOCIAL_NETWORK_UNSPECIFIED || !v1::SocialNetwork_IsValid(network)) {
      return absl::InvalidArgumentError("social.network: required for SOCIAL sessions");
    }
    if (absl::Status s = validation::ValidateText(
            "social.external_thread_id", request.social().external_thread_id(), 256);
        !s.ok()) {
      return s;
    }
  } else if (request.has_social()) {
    return absl::InvalidArgumentError("social: only for SOCIAL sessions");
  }
  if (out.channel != common::v1::CHANNEL_PHONE && request.has_callback()) {
    return absl::InvalidArgumentError("callback: only for PHONE sessions");
  }
  if (absl::Status s = ValidateKey("request_id", request.request_id(), false); !s.ok()) {
    return s;
  }
  if (absl::Status s =
          ValidateKey("first_client_message_id", request.first_client_message_id(), false);
      !s.ok()) {
    return s;
  }
  if (out.channel == common::v1::CHANNEL_PHONE) {
    if (!request.has_callback()) {
      return absl::InvalidArgumentError("callback: required for PHONE sessions");
    }
    if (absl::Status s = ValidateCallbackDetails("callback", request.callback(), now);
        !s.ok()) {
      return s;
    }
  }
  return out;
}

absl::StatusOr<common::v1::VerificationState> CheckVerification(
    const auth::TokenVerifier& tokens, const std::string& token, const std::string& customer_id,
    const std::string& session_id, absl::Time now, auth::VerificationClaims* claims_out) {
  if (token.empty()) {
    return absl::InvalidArgumentError("verification_token: must not be empty");
  }
  if (token.size() > auth::kMaxTokenBytes) {
    return absl::InvalidArgumentError("verification_token: at most 8 KiB");
  }
  absl::StatusOr<auth::VerificationClaims> claims =
      auth::VerifyVerificationToken(tokens, token, now);
  if (!claims.ok()) {
    if (absl::StrContains(claims.status().message(), "malformed")) {
      return absl::InvalidArgumentError("verification_token: malformed token");
    }
    return absl::PermissionDeniedError(
        absl::StrCat("verification_token: ", claims.status().message()));
  }
  if (claims->customer_id != customer_id) {
    return absl::PermissionDeniedError(
        "verification_token: issued to another customer");
  }
  if (!claims->session_id.empty() && claims->session_id != session_id) {
    return absl::PermissionDeniedError(
        "verification_token: bound to another session");
  }
  common::v1::VerificationState state;
  if (claims->method == "email_otp") {
    state.set_method(common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  } else if (claims->method == "sms_otp") {
    state.set_method(common::v1::VERIFICATION_METHOD_SMS_OTP);
  } else {
    state.set_method(common::v1::VERIFICATION_METHOD_TOTP);
  }
  state.set_level(static_cast<common::v1::VerificationLevel>(claims->level));
  protoutil::ToTimestamp(claims->issued_at, state.mutable_verified_at());
  protoutil::ToTimestamp(claims->expires_at, state.mutable_expires_at());
  if (claims_out != nullptr) *claims_out = *std::move(claims);
  return state;
}

absl::Status ValidateTransfer(const v1::TransferSessionRequest& request) {
  if (absl::Status s = ValidateKey("request_id", request.request_id(), false); !s.ok()) {
    return s;
  }
  if (absl::Status s = validation::ValidateText("note", request.note(), kMaxTransferNote);
      !s.ok()) {
    return s;
  }
  switch (request.target_case()) {
    case v1::TransferSessionRequest::kQueue: {
      const int category = request.queue().category();
      if (category == common::v1::CATEGORY_UNSPECIFIED ||
          !common::v1::Category_IsValid(category)) {
        return absl::InvalidArgumentError("queue.category: required, a known category");
      }
      if (!request.queue().language().empty() && !IsLanguageTag(request.queue().language())) {
        return absl::InvalidArgumentError("queue.language: must be a BCP 47 tag");
      }
      return absl::OkStatus();
    }
    case v1::TransferSessionRequest::kAgentId:
      return validation::ValidateId("agent_id", request.agent_id());
    case v1::TransferSessionRequest::kToBot:
      if (!request.to_bot()) return absl::InvalidArgumentError("to_bot: must be true if set");
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError("target: one of queue, agent_id or to_bot is required");
  }
}

absl::StatusOr<v1::CloseReason> CloseReasonFor(const Caller& caller, v1::CloseReason reason) {
  if (!v1::CloseReason_IsValid(reason)) {
    return absl::InvalidArgumentError("reason: unknown close reason");
  }
  if (reason == v1::CLOSE_REASON_IDLE_TIMEOUT) {
    return absl::InvalidArgumentError("reason: IDLE_TIMEOUT is set by sessions only");
  }
  if (reason != v1::CLOSE_REASON_UNSPECIFIED) return reason;
  return caller.role == Role::kCustomer  ? v1::CLOSE_REASON_CUSTOMER_LEFT
         : caller.role == Role::kService ? v1::CLOSE_REASON_RATED
                                         : v1::CLOSE_REASON_STAFF;
}

bool MaySee(const Caller& caller, const v1::Session& s, absl::Time now, bool past_agents) {
  switch (caller.role) {
    case Role::kCustomer:
      return s.customer_id() == caller.id;
    case Role::kAgent:
      if (s.assigned_agent_id() == caller.id) return true;
      if (s.state() == v1::SESSION_STATE_QUEUED && s.offered_agent_id() == caller.id &&
          Ts(s.offer_expires_at()) > now) {
        return true;
      }
      return past_agents &&
             std::any_of(s.participants().begin(), s.participants().end(),
                         [&](const v1::Participant& p) {
                           return p.role() == common::v1::SENDER_ROLE_AGENT &&
                                  p.id() == caller.id;
                         });
    case Role::kSupervisor:
    case Role::kService:
      return true;
  }
  return false;
}

bool MayDownload(const Caller& caller, const v1::Session& s) {
  switch (caller.role) {
    case Role::kCustomer:
      return s.customer_id() == caller.id;
    case Role::kAgent:
      return s.assigned_agent_id() == caller.id ||
             std::any_of(s.participants().begin(), s.participants().end(),
                         [&](const v1::Participant& p) {
                           return p.role() == common::v1::SENDER_ROLE_AGENT &&
                                  p.id() == caller.id;
                         });
    case Role::kSupervisor:
      return true;
    case Role::kService:
      return false;
  }
  return false;
}

v1::Session ViewFor(const v1::Session& session, const Caller& caller, absl::Time now) {
  v1::Session view = session;
  if (caller.role == Role::kCustomer) {
    view.clear_handoff();
    view.clear_transfer_note();
    view.clear_resolution_summary();
  }
  // Customers never learn which agent an offer went to: an agent's identity
  // is theirs to give once they take the session, and an open offer may
  // still go to someone else.
  if (caller.role == Role::kCustomer || view.state() != v1::SESSION_STATE_QUEUED ||
      Ts(view.offer_expires_at()) <= now) {
    view.clear_offered_agent_id();
    view.clear_offer_expires_at();
  }
  return view;
}

absl::Status CheckMayWrite(const Caller& caller, const v1::Session& s) {
  const v1::SessionState state = s.state();
  if (caller.role == Role::kCustomer) {
    if (state == v1::SESSION_STATE_BOT || state == v1::SESSION_STATE_QUEUED ||
        state == v1::SESSION_STATE_ASSIGNED) {
      return absl::OkStatus();
    }
    return WrongState(s, state == v1::SESSION_STATE_RESOLVED
                             ? "call ReopenSession to write again"
                             : "it accepts no messages");
  }
  if (state != v1::SESSION_STATE_ASSIGNED ||
      (caller.role == Role::kAgent && s.assigned_agent_id() != caller.id)) {
    return WrongState(s, "only the assigned agent or a supervisor may write, while ASSIGNED");
  }
  return absl::OkStatus();
}

bool StillParticipates(const Caller& caller, const v1::SessionEvent& event) {
  if (!event.has_state_changed()) return true;
  if (event.state_changed().state() == v1::SESSION_STATE_CLOSED) return false;
  if (caller.role != Role::kAgent) return true;
  return event.state_changed().agent_id() == caller.id;
}

common::v1::SenderRole SenderFor(Role role) {
  return role == Role::kCustomer ? common::v1::SENDER_ROLE_CUSTOMER
                                 : common::v1::SENDER_ROLE_AGENT;
}

absl::Status ScopeListFilter(const Caller& caller, ListFilter& filter, int page_size) {
  if (caller.role == Role::kCustomer) {
    if (!filter.customer_id.empty() && filter.customer_id != caller.id) {
      return absl::PermissionDeniedError("customer_id: customers list their own sessions only");
    }
    filter.customer_id = caller.id;
  }
  if (caller.role == Role::kAgent) {
    if (!filter.agent_id.empty() && filter.agent_id != caller.id) {
      return absl::PermissionDeniedError("agent_id: agents list their own sessions only");
    }
    filter.agent_id = caller.id;
  }
  if (filter.states.size() > 5) return absl::InvalidArgumentError("states: at most 5");
  for (v1::SessionState state : filter.states) {
    if (state == v1::SESSION_STATE_UNSPECIFIED || !v1::SessionState_IsValid(state)) {
      return absl::InvalidArgumentError("states: unknown state");
    }
  }
  if (!common::v1::Category_IsValid(filter.category)) {
    return absl::InvalidArgumentError("category: unknown category");
  }
  if (!common::v1::Channel_IsValid(filter.channel)) {
    return absl::InvalidArgumentError("channel: unknown channel");
  }
  if (page_size < 0 || page_size > kMaxListPage) {
    return absl::InvalidArgumentError("page_size: must be 0 to 200");
  }
  return absl::OkStatus();
}

std::string SessionPageToken(int64_t created_micros, const std::string& session_id) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kSessionPageTokenPrefix, created_micros, " ", session_id));
}

absl::StatusOr<std::pair<int64_t, std::string>> ParseSessionPageToken(
    const std::string& token) {
  std::string decoded;
  std::vector<std::string> parts;
  int64_t micros = 0;
  if (absl::WebSafeBase64Unescape(token, &decoded) &&
      absl::StartsWith(decoded, kSessionPageTokenPrefix)) {
    parts = absl::StrSplit(decoded.substr(sizeof(kSessionPageTokenPrefix) - 1),
                           absl::MaxSplits(' ', 1));
  }
  if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &micros)) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous ListSessions response");
  }
  return std::make_pair(micros, parts[1]);
}

std::string MessagePageToken(int64_t sequence) {
  return absl::WebSafeBase64Escape(absl::StrCat(kMessagePageTokenPrefix, sequence));
}

absl::StatusOr<int64_t> ParseMessagePageToken(const std::string& token) {
  std::string decoded;
  int64_t last = 0;
  if (!absl::WebSafeBase64Unescape(token, &decoded) ||
      !absl::StartsWith(decoded, kMessagePageTokenPrefix) ||
      !absl::SimpleAtoi(decoded.substr(sizeof(kMessagePageTokenPrefix) - 1), &last) ||
      last < 0) {
    return absl::InvalidArgumentError(
        "page_token: not a token from a previous ListMessages response");
  }
  return last;
}

}  // namespace switchboard::sessions
