#include "services/identity/identity.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "libs/events/envelope.h"
#include "libs/limits/retry_after.h"
#include "libs/log/log.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"
#include "services/identity/totp.h"

namespace switchboard::identity {
namespace {

using common::v1::VerificationMethod;
using events::v1::VerificationFailure;

constexpr char kProducer[] = "identity";
constexpr size_t kMaxChallengeId = 64;
constexpr size_t kMaxEmail = 254;
constexpr size_t kMaxLabel = 64;
constexpr size_t kTotpSecretBytes = 20;

bool IsOtp(VerificationMethod method) {
  return method == common::v1::VERIFICATION_METHOD_EMAIL_OTP ||
         method == common::v1::VERIFICATION_METHOD_SMS_OTP;
}

int64_t SecondsUntil(absl::Time then, absl::Time now) {
  // Whole seconds, rounded up, and at least 1: a client that waits this long
  // is past the limit.
  return std::max<int64_t>(1, absl::ToInt64Seconds(absl::Ceil(then - now, absl::Seconds(1))));
}

absl::Status Exhausted(absl::string_view what, absl::Time until, absl::Time now) {
  const int64_t seconds = SecondsUntil(until, now);
  return limits::Exhausted(absl::StrCat(what, "; retry after ", seconds, " s"),
                           absl::Seconds(seconds));
}

absl::Status WrongCode(int remaining, absl::string_view what = "challenge") {
  absl::Status status = absl::PermissionDeniedError(absl::StrCat(
      "code: wrong code; ", remaining, remaining == 1 ? " attempt" : " attempts",
      " left on this ", what));
  status.SetPayload(kAttemptsRemaining, absl::Cord(absl::StrCat(remaining)));
  return status;
}

void Prune(std::vector<absl::Time>& times, absl::Time since) {
  times.erase(std::remove_if(times.begin(), times.end(),
                             [since](absl::Time t) { return t <= since; }),
              times.end());
}

std::string PercentEncode(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::AsciiStrToUpper(absl::StrFormat("%02x", c)));
    }
  }
  return out;
}

absl::Status ValidateRequestId(const std::string& request_id) {
  return validation::ValidateRequestId("request_id", request_id);
}

absl::Status ValidateLanguage(const std::string& language) {
  if (!language.empty() && language != "en" && language != "zh-CN") {
    return absl::InvalidArgumentError("language: must be \"en\", \"zh-CN\" or empty");
  }
  return absl::OkStatus();
}

// The identity service itself, as the one who resolves a change when its
// cool-down passes or a newer change supersedes it.
constexpr char kSelf[] = "identity";

absl::Status ValidateMethod(VerificationMethod method, bool allow_totp) {
  if (IsOtp(method) || (allow_totp && method == common::v1::VERIFICATION_METHOD_TOTP)) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      allow_totp ? "method: must be EMAIL_OTP, SMS_OTP or TOTP"
                 : "method: must be EMAIL_OTP or SMS_OTP");
}

}  // namespace

std::string SourceOf(absl::string_view peer, absl::string_view forwarded) {
  absl::string_view address;
  if (!forwarded.empty()) {
    address = absl::StripAsciiWhitespace(forwarded.substr(0, forwarded.find(',')));
  } else if (absl::ConsumePrefix(&peer, "ipv4:")) {
    address = peer.substr(0, peer.rfind(':'));
  } else if (absl::ConsumePrefix(&peer, "ipv6:")) {
    // "[::1]:port", or with the brackets percent-encoded.
    std::string decoded = absl::StrReplaceAll(peer, {{"%5B", "["}, {"%5D", "]"}});
    const size_t close = decoded.find(']');
    if (decoded.empty() || decoded[0] != '[' || close == std::string::npos) return "";
    return SourceOf("", decoded.substr(1, close - 1));
  } else {
    return "";
  }
  const std::string text(address.substr(0, 64));
  in6_addr v6;
  if (inet_pton(AF_INET6, text.c_str(), &v6) == 1) {
    // Per /64: the last 64 bits are the subscriber's to pick.
    std::fill(v6.s6_addr + 8, v6.s6_addr + 16, 0);
    char out[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, &v6, out, sizeof(out)) == nullptr) return "";
    return absl::StrCat(out, "/64");
  }
  in_addr v4;
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) return text;
  return "";
}

common::v1::VerificationMethod MethodFromClaim(absl::string_view method) {
  if (method == "email_otp") return common::v1::VERIFICATION_METHOD_EMAIL_OTP;
  if (method == "sms_otp") return common::v1::VERIFICATION_METHOD_SMS_OTP;
  if (method == "totp") return common::v1::VERIFICATION_METHOD_TOTP;
  return common::v1::VERIFICATION_METHOD_UNSPECIFIED;
}

std::string MethodClaim(common::v1::VerificationMethod method) {
  switch (method) {
    case common::v1::VERIFICATION_METHOD_EMAIL_OTP:
      return "email_otp";
    case common::v1::VERIFICATION_METHOD_SMS_OTP:
      return "sms_otp";
    case common::v1::VERIFICATION_METHOD_TOTP:
      return "totp";
    default:
      return "";
  }
}

absl::Status ValidateCode(absl::string_view code) {
  if (code.size() != static_cast<size_t>(kCodeDigits) ||
      !std::all_of(code.begin(), code.end(),
                   [](char c) { return c >= '0' && c <= '9'; })) {
    return absl::InvalidArgumentError("code: must be exactly 6 ASCII digits");
  }
  return absl::OkStatus();
}

absl::Status ValidateEmail(absl::string_view address) {
  const size_t at = address.rfind('@');
  bool ok = address.size() <= kMaxEmail && at != absl::string_view::npos && at > 0 &&
            at + 1 < address.size() &&
            address.substr(at + 1).find('.') != absl::string_view::npos &&
            address.substr(at + 1).front() != '.' && address.back() != '.';
  for (unsigned char c : address) {
    if (c <= ' ' || c >= 0x7f || c == '<' || c == '>' || c == '"' || c == ',' ||
        c == ';' || c == '\\') {
      ok = false;
    }
  }
  if (!ok) {
    return absl::InvalidArgumentError(
        "address: not an email address (name@domain.tld, at most 254 ASCII characters)");
  }
  return absl::OkStatus();
}

absl::Status ValidatePhone(absl::string_view address) {
  const bool ok = address.size() >= 9 && address.size() <= 16 && address[0] == '+' &&
                  address[1] != '0' &&
                  std::all_of(address.begin() + 1, address.end(),
                              [](char c) { return c >= '0' && c <= '9'; });
  if (!ok) {
    return absl::InvalidArgumentError(
        "address: not an E.164 number ('+' and 8 to 15 digits, e.g. +8613800138000)");
  }
  return absl::OkStatus();
}

TokenCheck CheckVerificationToken(const auth::TokenVerifier& verifier, absl::string_view token,
                                  const std::string& customer_id,
                                  const std::string& session_id,
                                  common::v1::VerificationLevel min_level, absl::Time now) {
  TokenCheck check;
  absl::StatusOr<auth::VerificationClaims> claims =
      auth::VerifyVerificationToken(verifier, token, now);
  if (!claims.ok()) {
    const absl::string_view reason = claims.status().message();
    if (reason == "bad signature" || reason == "unsupported algorithm" ||
        reason == "unknown key" || reason == "wrong issuer") {
      check.reason = v1::INVALID_TOKEN_REASON_BAD_SIGNATURE;
    } else if (reason == "token expired") {
      check.reason = v1::INVALID_TOKEN_REASON_EXPIRED;
    } else if (reason == "wrong audience") {
      check.reason = v1::INVALID_TOKEN_REASON_WRONG_AUDIENCE;
    } else {
      check.reason = v1::INVALID_TOKEN_REASON_MALFORMED;
    }
    return check;
  }
  check.claims = *claims;
  if (!customer_id.empty() && claims->customer_id != customer_id) {
    check.reason = v1::INVALID_TOKEN_REASON_WRONG_CUSTOMER;
  } else if (!session_id.empty() && !claims->session_id.empty() &&
             claims->session_id != session_id) {
    check.reason = v1::INVALID_TOKEN_REASON_WRONG_SESSION;
  } else if (claims->level < static_cast<int>(min_level)) {
    check.reason = v1::INVALID_TOKEN_REASON_LEVEL_TOO_LOW;
  }
  return check;
}

Identity::Identity(IdentityStore* store, Clock* clock, IdentityMetrics* metrics,
                   const CodeHasher* hasher, const SecretBox* box,
                   const auth::TokenSigner* tokens, CodeNotifier* notifier,
                   IdentityOptions options)
    : store_(store),
      clock_(clock),
      metrics_(metrics),
      hasher_(hasher),
      box_(box),
      tokens_(tokens),
      notifier_(notifier),
      options_(options),
      commits_("identity", storage::OrderedCommits::FailedWrite::kStoreError) {}

absl::StatusOr<KeyLocks::Hold> Identity::Turn(const std::string& customer_id) {
  std::optional<KeyLocks::Hold> hold =
      locks_.LockUnlessBusy(customer_id, std::max(1, options_.max_calls_per_customer));
  if (!hold.has_value()) {
    if (metrics_ != nullptr) metrics_->rate_limited_busy->Increment();
    return limits::Exhausted("too many calls for this customer at once; retry shortly",
                             absl::Seconds(1));
  }
  return *std::move(hold);
}

absl::Status Identity::Commit(IdentityWrite write) {
  // Account changes are counted by the steps their events record.
  std::array<int, 4> steps{};
  for (const events::v1::Event& event : write.events) {
    switch (event.payload_case()) {
      case events::v1::Event::kAccountChangeRequested:
        ++steps[0];
        break;
      case events::v1::Event::kAccountChangeConfirmed:
        ++steps[1];
        break;
      case events::v1::Event::kAccountChangeCancelled:
        ++steps[2];
        break;
      case events::v1::Event::kAccountChangeApplied:
        ++steps[3];
        break;
      default:
        break;
    }
  }
  // Every call waits for its own write: identity has no answers from
  // memory, so one failed commit does not stop the others.
  if (absl::Status s = commits_.Await(commits_.Commit(*store_, std::move(write))); !s.ok()) {
    return s;
  }
  if (metrics_ != nullptr) {
    metrics_->changes_requested->Increment(steps[0]);
    metrics_->changes_confirmed->Increment(steps[1]);
    metrics_->changes_cancelled->Increment(steps[2]);
    metrics_->changes_applied->Increment(steps[3]);
  }
  return absl::OkStatus();
}

absl::StatusOr<CustomerRecord> Identity::ReadCustomer(const std::string& customer_id) {
  absl::StatusOr<std::optional<CustomerRecord>> stored = store_->GetCustomer(customer_id);
  if (!stored.ok()) return stored.status();
  if (stored->has_value()) return **stored;
  CustomerRecord fresh;
  fresh.customer_id = customer_id;
  return fresh;
}

absl::StatusOr<Identity::Completed> Identity::CompletedFrom(
    const ChallengeRecord& challenge) const {
  Completed completed;
  auth::VerificationClaims& claims = completed.claims;
  claims.customer_id = challenge.customer_id;
  claims.method = MethodClaim(challenge.method);
  claims.level = challenge.method == common::v1::VERIFICATION_METHOD_TOTP ? auth::kLevelStrong
                                                                          : auth::kLevelBasic;
  claims.token_id = challenge.token_id;
  claims.session_id = challenge.session_id;
  claims.issued_at = challenge.token_issued_at;
  claims.expires_at = challenge.token_expires_at;
  // A retry signs the same claims again (ECDSA: a new signature, the same
  // token id and times).
  absl::StatusOr<std::string> token = auth::SignVerificationToken(*tokens_, claims);
  if (!token.ok()) return token.status();
  completed.token = std::move(*token);
  completed.verification.set_method(challenge.method);
  completed.verification.set_level(static_cast<common::v1::VerificationLevel>(claims.level));
  protoutil::ToTimestamp(claims.issued_at, completed.verification.mutable_verified_at());
  protoutil::ToTimestamp(claims.expires_at, completed.verification.mutable_expires_at());
  return completed;
}

absl::StatusOr<Identity::EnrollmentStarted> Identity::EnrollmentStartedFrom(
    const EnrollmentRecord& enrollment) const {
  absl::StatusOr<std::string> secret = box_->Open(enrollment.secret_sealed, enrollment.customer_id);
  if (!secret.ok()) return secret.status();
  EnrollmentStarted started;
  started.enrollment = enrollment;
  started.secret_base32 = Base32Encode(*secret);
  const std::string label =
      enrollment.account_label.empty() ? enrollment.customer_id : enrollment.account_label;
  started.otpauth_uri = absl::StrCat(
      "otpauth://totp/Switchboard:", PercentEncode(label), "?secret=", started.secret_base32,
      "&issuer=Switchboard&algorithm=SHA1&digits=6&period=30");
  return started;
}

events::v1::Event Identity::Failed(const ChallengeRecord& challenge,
                                   VerificationFailure failure, absl::Time now) {
  if (metrics_ != nullptr) {
    Outcome outcome = Outcome::kWrongCode;
    switch (failure) {
      case events::v1::VERIFICATION_FAILURE_EXPIRED:
        outcome = Outcome::kExpired;
        break;
      case events::v1::VERIFICATION_FAILURE_ATTEMPTS_EXHAUSTED:
        outcome = Outcome::kAttemptsExhausted;
        break;
      case events::v1::VERIFICATION_FAILURE_CHALLENGE_USED:
        outcome = Outcome::kChallengeUsed;
        break;
      case events::v1::VERIFICATION_FAILURE_CODE_REUSED:
        outcome = Outcome::kCodeReused;
        break;
      default:
        break;
    }
    metrics_->outcome(challenge.method, outcome).Increment();
  }
  events::v1::Event event;
  events::v1::VerificationFailed* failed = event.mutable_verification_failed();
  failed->set_customer_id(challenge.customer_id);
  failed->set_challenge_id(challenge.challenge_id);
  failed->set_method(challenge.method);
  failed->set_failure(failure);
  failed->set_attempts_used(challenge.attempts_used);
  failed->set_attempts_remaining(
      std::max(0, challenge.max_attempts - challenge.attempts_used));
  events::Seal(event, kProducer, challenge.customer_id, now).IgnoreError();
  return event;
}

absl::Duration Identity::LockoutAfter(int previous) const {
  absl::Duration lockout = options_.lockout;
  for (int i = 0; i < previous && lockout < options_.max_lockout; ++i) lockout *= 2;
  return std::min(lockout, options_.max_lockout);
}

std::optional<events::v1::Event> Identity::CountFailure(CustomerRecord& customer,
                                                        absl::Time now) {
  Prune(customer.recent_failures, now - options_.failure_window);
  customer.recent_failures.push_back(now);
  if (static_cast<int>(customer.recent_failures.size()) < options_.lockout_failures) {
    return std::nullopt;
  }
  const int failures = static_cast<int>(customer.recent_failures.size());
  // A quiet period after the last lockout ends the run.
  if (customer.locked_until + options_.lockout_reset <= now) customer.lockouts = 0;
  const absl::Duration lockout = LockoutAfter(customer.lockouts);
  ++customer.lockouts;
  customer.locked_until = now + lockout;
  // A new lockout needs a full count of new failures.
  customer.recent_failures.clear();
  if (metrics_ != nullptr) metrics_->lockouts->Increment();
  log::Warning("customer_locked_out", {{"customer_id", customer.customer_id},
                                       {"failed_attempts", failures},
                                       {"lockout_number", customer.lockouts},
                                       {"seconds", absl::ToInt64Seconds(lockout)}});
  events::v1::Event event;
  events::v1::CustomerLockedOut* locked = event.mutable_customer_locked_out();
  locked->set_customer_id(customer.customer_id);
  protoutil::ToTimestamp(customer.locked_until, locked->mutable_locked_until());
  locked->set_failed_attempts(failures);
  locked->set_lockout_number(customer.lockouts);
  protoutil::ToDuration(lockout, locked->mutable_duration());
  events::Seal(event, kProducer, customer.customer_id, now).IgnoreError();
  return event;
}

std::optional<events::v1::Event> Identity::CountSourceFailure(SourceRecord& source,
                                                              const std::string& customer_id,
                                                              absl::Time now) {
  Prune(source.recent_failures, now - options_.failure_window);
  source.recent_failures.push_back(now);
  std::optional<events::v1::Event> event;
  if (static_cast<int>(source.recent_failures.size()) >= options_.source_lockout_failures) {
    const int failures = static_cast<int>(source.recent_failures.size());
    if (source.locked_until + options_.lockout_reset <= now) source.lockouts = 0;
    const absl::Duration lockout = LockoutAfter(source.lockouts);
    ++source.lockouts;
    source.locked_until = now + lockout;
    source.recent_failures.clear();
    if (metrics_ != nullptr) metrics_->source_lockouts->Increment();
    log::Warning("source_locked_out", {{"source_key", source.source_key.substr(0, 16)},
                                       {"customer_id", customer_id},
                                       {"failed_attempts", failures},
                                       {"lockout_number", source.lockouts},
                                       {"seconds", absl::ToInt64Seconds(lockout)}});
    event.emplace();
    events::v1::SourceLockedOut* locked = event->mutable_source_locked_out();
    locked->set_source_key(source.source_key);
    protoutil::ToTimestamp(source.locked_until, locked->mutable_locked_until());
    locked->set_failed_attempts(failures);
    locked->set_lockout_number(source.lockouts);
    protoutil::ToDuration(lockout, locked->mutable_duration());
    locked->set_customer_id(customer_id);
    events::Seal(*event, kProducer, absl::StrCat("source-", source.source_key.substr(0, 16)),
                 now)
        .IgnoreError();
  }
  // Nothing left to remember once the window, the lockout and its run are
  // over.
  source.forget_after = std::max(
      source.recent_failures.empty() ? absl::InfinitePast()
                                     : source.recent_failures.back() + options_.failure_window,
      source.locked_until + options_.lockout_reset);
  return event;
}

std::string Identity::SourceKey(const std::string& source) const {
  if (source.empty()) return "";
  return absl::BytesToHexString(hasher_->Hash("source", source));
}

absl::Status Identity::CheckSource(const std::string& key, absl::Time now) {
  if (key.empty()) return absl::OkStatus();
  absl::StatusOr<std::optional<SourceRecord>> source = store_->GetSource(key);
  if (!source.ok()) return source.status();
  if (source->has_value() && (*source)->locked_until > now) {
    return Exhausted("verification from this address is locked after too many failed attempts",
                     (*source)->locked_until, now);
  }
  return absl::OkStatus();
}

absl::StatusOr<Identity::Started> Identity::StartVerificationOnce(
    const StartCommand& command) {
  if (absl::Status s = validation::ValidateId("customer_id", command.customer_id); !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateMethod(command.method, /*allow_totp=*/true); !s.ok()) {
    return s;
  }
  if (!command.session_id.empty()) {
    if (absl::Status s = validation::ValidateId("session_id", command.session_id); !s.ok()) {
      return s;
    }
  }
  if (absl::Status s = ValidateLanguage(command.language); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(command.request_id); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  absl::StatusOr<KeyLocks::Hold> turn = Turn(command.customer_id);
  if (!turn.ok()) return turn.status();
  if (!command.request_id.empty()) {
    absl::StatusOr<std::optional<ChallengeRecord>> first =
        store_->FindChallengeByRequest(command.customer_id, command.request_id);
    if (!first.ok()) return first.status();
    if (first->has_value()) {
      const ChallengeRecord& challenge = **first;
      if (challenge.method != command.method || challenge.session_id != command.session_id) {
        return absl::InvalidArgumentError(
            "request_id: already used for a verification with another method or session");
      }
      Started started;
      started.challenge = challenge;
      started.resend_available_at = challenge.created_at + options_.resend_interval;
      started.replayed = true;
      return started;
    }
  }
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(command.customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerRecord& customer = *loaded;
  const absl::Time now = clock_->Now();
  if (customer.locked_until > now) {
    if (metrics_ != nullptr) metrics_->rate_limited_start->Increment();
    return Exhausted("verification is locked after too many failed attempts",
                     customer.locked_until, now);
  }
  if (absl::Status s = CheckSource(SourceKey(command.source), now); !s.ok()) {
    if (metrics_ != nullptr && absl::IsResourceExhausted(s)) {
      metrics_->rate_limited_start->Increment();
    }
    return s;
  }
  Prune(customer.recent_starts, now - absl::Hours(1));
  if (!customer.recent_starts.empty() &&
      customer.recent_starts.back() + options_.resend_interval > now) {
    if (metrics_ != nullptr) metrics_->rate_limited_start->Increment();
    return Exhausted("a verification was started moments ago",
                     customer.recent_starts.back() + options_.resend_interval, now);
  }
  if (static_cast<int>(customer.recent_starts.size()) >= options_.max_starts_per_hour) {
    if (metrics_ != nullptr) metrics_->rate_limited_start->Increment();
    return Exhausted("too many verifications started in the last hour",
                     customer.recent_starts.front() + absl::Hours(1), now);
  }
  customer.recent_starts.push_back(now);

  IdentityWrite write;
  Started started;
  ChallengeRecord& challenge = started.challenge;
  challenge.challenge_id = RandomId("chl_");
  challenge.customer_id = command.customer_id;
  challenge.method = command.method;
  challenge.session_id = command.session_id;
  challenge.created_at = now;
  challenge.expires_at = now + std::min(options_.code_ttl, kMaxCodeTtl);
  challenge.max_attempts = options_.max_attempts;
  challenge.start_request_id = command.request_id;
  std::optional<v1::CodeDeliveryRequest> delivery;
  if (IsOtp(command.method)) {
    std::string code = RandomDigits(kCodeDigits);
    challenge.code_hash = hasher_->Hash(challenge.challenge_id, code);
    const std::string& address =
        command.method == common::v1::VERIFICATION_METHOD_EMAIL_OTP ? customer.email
                                                                     : customer.phone;
    // Without a contact the challenge is created alike, and never completes.
    if (!address.empty()) {
      delivery.emplace();
      delivery->set_delivery_id(RandomId("dlv_"));
      delivery->set_customer_id(command.customer_id);
      delivery->set_method(command.method);
      delivery->set_address(address);
      delivery->set_code(std::move(code));
      delivery->set_language(command.language.empty() ? "en" : command.language);
      protoutil::ToTimestamp(challenge.expires_at, delivery->mutable_expires_at());
      delivery->set_challenge_id(challenge.challenge_id);
      delivery->set_purpose(v1::DELIVERY_PURPOSE_VERIFICATION_CODE);
    }
  }

  std::string replaced;
  if (!customer.current_challenge_id.empty()) {
    absl::StatusOr<std::optional<ChallengeRecord>> previous =
        store_->GetChallenge(customer.current_challenge_id);
    if (!previous.ok()) return previous.status();
    if (previous->has_value() && (*previous)->state == ChallengeState::kOpen) {
      (*previous)->state = ChallengeState::kReplaced;
      replaced = (*previous)->challenge_id;
      write.challenges.push_back(**previous);
    }
  }
  customer.current_challenge_id = challenge.challenge_id;
  write.challenges.push_back(challenge);
  write.customers.push_back(customer);

  events::v1::Event event;
  events::v1::VerificationStarted* payload = event.mutable_verification_started();
  payload->set_customer_id(challenge.customer_id);
  payload->set_challenge_id(challenge.challenge_id);
  payload->set_method(challenge.method);
  payload->set_session_id(challenge.session_id);
  protoutil::ToTimestamp(challenge.expires_at, payload->mutable_expires_at());
  payload->set_max_attempts(challenge.max_attempts);
  payload->set_replaced_challenge_id(replaced);
  if (absl::Status s = events::Seal(event, kProducer, challenge.customer_id, now); !s.ok()) {
    return s;
  }
  write.events.push_back(std::move(event));
  started.resend_available_at = now + options_.resend_interval;

  // The code is handed over before the challenge is committed, so that a
  // committed challenge (which a retry would answer with) always had its code
  // sent; a code for a challenge whose commit then fails is merely useless.
  if (delivery.has_value()) {
    if (absl::Status sent = notifier_->Deliver(*delivery); !sent.ok()) {
      if (metrics_ != nullptr) metrics_->delivery_failures->Increment();
      log::Error("code_delivery_failed", {{"customer_id", delivery->customer_id()},
                                          {"challenge_id", delivery->challenge_id()},
                                          {"detail", sent.message()}});
      return absl::UnavailableError(
          "the code could not be sent and nothing was started; try again shortly");
    }
  }
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  if (metrics_ != nullptr) metrics_->started(challenge.method).Increment();
  return started;
}

absl::StatusOr<Identity::Completed> Identity::CompleteVerificationOnce(
    const std::string& caller_customer, const std::string& challenge_id,
    const std::string& code, const std::string& request_id, const std::string& source) {
  if (challenge_id.empty()) {
    return absl::InvalidArgumentError("challenge_id: must not be empty");
  }
  if (absl::Status s = validation::ValidateId("challenge_id", challenge_id, kMaxChallengeId);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateCode(code); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request_id); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  const auto not_found = [] { return absl::NotFoundError("challenge_id: no such challenge"); };
  absl::StatusOr<std::optional<ChallengeRecord>> found = store_->GetChallenge(challenge_id);
  if (!found.ok()) return found.status();
  if (!found->has_value() ||
      (!caller_customer.empty() && (*found)->customer_id != caller_customer)) {
    return not_found();
  }
  absl::StatusOr<KeyLocks::Hold> turn = Turn((*found)->customer_id);
  if (!turn.ok()) return turn.status();
  // Read again under the customer's lock: a call that held it may have
  // changed (or the sweep deleted) the challenge meanwhile.
  found = store_->GetChallenge(challenge_id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return not_found();
  ChallengeRecord& challenge = **found;
  if (challenge.state == ChallengeState::kUsed && !request_id.empty() &&
      request_id == challenge.complete_request_id &&
      hasher_->Matches(challenge.completed_code_hash, challenge.challenge_id, code)) {
    absl::StatusOr<Completed> replay = CompletedFrom(challenge);
    if (replay.ok()) replay->replayed = true;
    return replay;
  }
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(challenge.customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerRecord& customer = *loaded;
  const absl::Time now = clock_->Now();
  if (customer.locked_until > now) {
    if (metrics_ != nullptr) metrics_->rate_limited_complete->Increment();
    return Exhausted("verification is locked after too many failed attempts",
                     customer.locked_until, now);
  }
  const std::string source_key = SourceKey(source);
  if (absl::Status s = CheckSource(source_key, now); !s.ok()) {
    if (metrics_ != nullptr && absl::IsResourceExhausted(s)) {
      metrics_->rate_limited_complete->Increment();
    }
    return s;
  }

  absl::Status answer;
  // Held from reading the source's record to the commit of its new count.
  std::optional<KeyLocks::Hold> source_turn;
  Completed completed;
  IdentityWrite write;
  if (challenge.state != ChallengeState::kOpen) {
    write.events.push_back(
        Failed(challenge, events::v1::VERIFICATION_FAILURE_CHALLENGE_USED, now));
    answer = absl::FailedPreconditionError(
        challenge.state == ChallengeState::kUsed
            ? "challenge_id: this challenge was already used; start a new one"
            : "challenge_id: this challenge was replaced by a newer one; use the "
              "newest code or start again");
  } else if (now >= challenge.expires_at) {
    write.events.push_back(Failed(challenge, events::v1::VERIFICATION_FAILURE_EXPIRED, now));
    answer = absl::FailedPreconditionError(
        "challenge_id: the challenge expired; start a new one");
  } else if (challenge.attempts_used >= challenge.max_attempts) {
    write.events.push_back(
        Failed(challenge, events::v1::VERIFICATION_FAILURE_ATTEMPTS_EXHAUSTED, now));
    answer = absl::FailedPreconditionError(
        "challenge_id: the challenge has no attempts left; start a new one");
  } else {
    bool matched = false;
    bool reused = false;
    int64_t step = -1;
    if (IsOtp(challenge.method)) {
      matched = hasher_->Matches(challenge.code_hash, challenge.challenge_id, code);
    } else if (!customer.totp_secret_sealed.empty()) {
      absl::StatusOr<std::string> secret =
          box_->Open(customer.totp_secret_sealed, customer.customer_id);
      if (!secret.ok()) return secret.status();
      step = MatchTotp(*secret, code, now);
      matched = step >= 0 && step > customer.last_totp_step;
      reused = step >= 0 && !matched;
    }
    if (!matched) {
      ++challenge.attempts_used;
      write.challenges.push_back(challenge);
      write.events.push_back(
          Failed(challenge,
                 reused ? events::v1::VERIFICATION_FAILURE_CODE_REUSED
                        : events::v1::VERIFICATION_FAILURE_WRONG_CODE,
                 now));
      std::optional<events::v1::Event> locked = CountFailure(customer, now);
      std::optional<events::v1::Event> source_locked;
      SourceRecord counted;
      if (!source_key.empty()) {
        source_turn.emplace(source_locks_.Lock(source_key));
        absl::StatusOr<std::optional<SourceRecord>> stored = store_->GetSource(source_key);
        if (!stored.ok()) return stored.status();
        if (stored->has_value()) counted = **stored;
        counted.source_key = source_key;
        source_locked = CountSourceFailure(counted, customer.customer_id, now);
        write.sources.push_back(counted);
      }
      if (locked.has_value()) {
        write.events.push_back(std::move(*locked));
        answer = Exhausted("wrong code; verification is now locked after too many "
                           "failed attempts",
                           customer.locked_until, now);
      } else if (source_locked.has_value()) {
        answer = Exhausted("wrong code; verification from this address is now locked after "
                           "too many failed attempts",
                           counted.locked_until, now);
      } else {
        answer = WrongCode(challenge.max_attempts - challenge.attempts_used);
      }
      if (source_locked.has_value()) write.events.push_back(std::move(*source_locked));
      write.customers.push_back(customer);
    } else {
      challenge.state = ChallengeState::kUsed;
      if (step >= 0) customer.last_totp_step = step;
      customer.recent_failures.clear();
      challenge.complete_request_id = request_id;
      challenge.completed_code_hash = hasher_->Hash(challenge.challenge_id, code);
      challenge.token_id = RandomId("vt_");
      // Tokens carry whole seconds.
      challenge.token_issued_at = absl::FromUnixSeconds(absl::ToUnixSeconds(now));
      challenge.token_expires_at =
          challenge.token_issued_at + std::min(options_.token_ttl, kMaxTokenTtl);
      absl::StatusOr<Completed> issued = CompletedFrom(challenge);
      if (!issued.ok()) return issued.status();
      completed = *std::move(issued);

      write.challenges.push_back(challenge);
      write.customers.push_back(customer);
      events::v1::Event event;
      events::v1::VerificationSucceeded* payload = event.mutable_verification_succeeded();
      payload->set_customer_id(challenge.customer_id);
      payload->set_challenge_id(challenge.challenge_id);
      payload->set_session_id(challenge.session_id);
      *payload->mutable_verification() = completed.verification;
      payload->set_token_id(challenge.token_id);
      payload->set_failed_attempts(challenge.attempts_used);
      if (absl::Status s = events::Seal(event, kProducer, challenge.customer_id, now); !s.ok()) {
        return s;
      }
      write.events.push_back(std::move(event));
    }
  }
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  if (!answer.ok()) return answer;
  if (metrics_ != nullptr) {
    metrics_->outcome(challenge.method, Outcome::kSucceeded).Increment();
  }
  return completed;
}

absl::StatusOr<bool> Identity::RegisterContactOnce(const std::string& customer_id,
                                               common::v1::VerificationMethod method,
                                               const std::string& address,
                                               const std::string& actor_id) {
  if (absl::Status s = validation::ValidateId("customer_id", customer_id); !s.ok()) return s;
  if (absl::Status s = ValidateMethod(method, /*allow_totp=*/false); !s.ok()) return s;
  if (!address.empty()) {
    absl::Status s = method == common::v1::VERIFICATION_METHOD_EMAIL_OTP
                         ? ValidateEmail(address)
                         : ValidatePhone(address);
    if (!s.ok()) return s;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::StatusOr<KeyLocks::Hold> turn = Turn(customer_id);
  if (!turn.ok()) return turn.status();
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerRecord& customer = *loaded;
  std::string& slot =
      method == common::v1::VERIFICATION_METHOD_EMAIL_OTP ? customer.email : customer.phone;
  const bool replaced = !slot.empty();
  // A retry, or no change: what was read is durable.
  if (slot == address) return replaced;
  slot = address;
  IdentityWrite write;
  // This change is newer than any a supervisor left pending.
  if (absl::StatusOr<std::string> superseded =
          SupersedePending(customer_id, method, clock_->Now(), write);
      !superseded.ok()) {
    return superseded.status();
  }
  write.customers.push_back(customer);
  events::v1::Event event;
  events::v1::ContactChanged* payload = event.mutable_contact_changed();
  payload->set_customer_id(customer_id);
  payload->set_method(method);
  payload->set_removed(address.empty());
  payload->set_actor_id(actor_id);
  if (absl::Status s = events::Seal(event, kProducer, customer_id, clock_->Now()); !s.ok()) {
    return s;
  }
  write.events.push_back(std::move(event));
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  return replaced;
}

absl::StatusOr<Identity::EnrollmentStarted> Identity::StartTotpEnrollmentOnce(
    const std::string& customer_id, const std::string& account_label,
    const std::string& actor_id, std::optional<int> proof_level,
    const std::string& request_id, bool by_supervisor) {
  if (absl::Status s = validation::ValidateId("customer_id", customer_id); !s.ok()) return s;
  if (absl::Status s = validation::ValidateText("account_label", account_label, kMaxLabel);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateRequestId(request_id); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::StatusOr<KeyLocks::Hold> turn = Turn(customer_id);
  if (!turn.ok()) return turn.status();
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerRecord& customer = *loaded;
  if (!request_id.empty()) {
    absl::StatusOr<std::optional<EnrollmentRecord>> first =
        store_->FindEnrollmentByRequest(customer_id, request_id);
    if (!first.ok()) return first.status();
    if (first->has_value()) {
      if ((*first)->account_label != account_label) {
        return absl::InvalidArgumentError(
            "request_id: already used for an enrollment with another account label");
      }
      absl::StatusOr<EnrollmentStarted> replay = EnrollmentStartedFrom(**first);
      if (replay.ok()) replay->replayed = true;
      return replay;
    }
  }
  const absl::Time now = clock_->Now();
  if (proof_level.has_value()) {
    const bool has_authenticator = !customer.totp_secret_sealed.empty();
    const int needed = has_authenticator ? auth::kLevelStrong : auth::kLevelBasic;
    if (*proof_level < needed) {
      return absl::PermissionDeniedError(
          has_authenticator
              ? "verification_token: replacing an authenticator needs a STRONG (TOTP) "
                "verification"
              : "verification_token: a verification is needed first");
    }
  }
  Prune(customer.recent_enrollments, now - absl::Hours(1));
  if (static_cast<int>(customer.recent_enrollments.size()) >=
      options_.max_enrollments_per_hour) {
    if (metrics_ != nullptr) metrics_->rate_limited_enrollment->Increment();
    return Exhausted("too many authenticator enrollments started in the last hour",
                     customer.recent_enrollments.front() + absl::Hours(1), now);
  }
  customer.recent_enrollments.push_back(now);

  EnrollmentRecord enrollment;
  enrollment.enrollment_id = RandomId("enr_");
  enrollment.customer_id = customer_id;
  enrollment.secret_sealed = box_->Seal(RandomBytes(kTotpSecretBytes), customer_id);
  enrollment.actor_id = actor_id;
  enrollment.created_at = now;
  enrollment.expires_at = now + kEnrollmentTtl;
  enrollment.start_request_id = request_id;
  enrollment.account_label = account_label;
  enrollment.by_supervisor = by_supervisor;
  absl::StatusOr<EnrollmentStarted> started = EnrollmentStartedFrom(enrollment);
  if (!started.ok()) return started.status();

  IdentityWrite write;
  write.customers.push_back(customer);
  write.enrollments.push_back(enrollment);
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  return started;
}

absl::StatusOr<Identity::EnrollmentConfirmed> Identity::ConfirmTotpEnrollmentOnce(
    const std::string& caller_customer, const std::string& enrollment_id,
    const std::string& code, const std::string& request_id, const std::string& language) {
  if (enrollment_id.empty()) {
    return absl::InvalidArgumentError("enrollment_id: must not be empty");
  }
  if (absl::Status s =
          validation::ValidateId("enrollment_id", enrollment_id, kMaxChallengeId);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ValidateCode(code); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request_id); !s.ok()) return s;
  if (absl::Status s = ValidateLanguage(language); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  const auto not_found = [] { return absl::NotFoundError("enrollment_id: no such enrollment"); };
  absl::StatusOr<std::optional<EnrollmentRecord>> found = store_->GetEnrollment(enrollment_id);
  if (!found.ok()) return found.status();
  if (!found->has_value() ||
      (!caller_customer.empty() && (*found)->customer_id != caller_customer)) {
    return not_found();
  }
  absl::StatusOr<KeyLocks::Hold> turn = Turn((*found)->customer_id);
  if (!turn.ok()) return turn.status();
  found = store_->GetEnrollment(enrollment_id);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return not_found();
  EnrollmentRecord& enrollment = **found;
  if (enrollment.used) {
    if (!request_id.empty() && request_id == enrollment.confirm_request_id) {
      EnrollmentConfirmed replay;
      replay.replaced = enrollment.replaced;
      replay.replayed = true;
      if (enrollment.change_id.empty()) {
        replay.enrolled_at = enrollment.confirmed_at;
      } else {
        absl::StatusOr<std::optional<AccountChangeRecord>> change =
            store_->GetChange(enrollment.change_id);
        if (!change.ok()) return change.status();
        if (!change->has_value()) {
          return absl::FailedPreconditionError(
              "enrollment_id: the change this enrollment asked for is no longer kept");
        }
        replay.pending = **change;
      }
      return replay;
    }
    return absl::FailedPreconditionError(
        "enrollment_id: this enrollment was already confirmed");
  }
  const absl::Time now = clock_->Now();
  if (now >= enrollment.expires_at) {
    return absl::FailedPreconditionError(
        "enrollment_id: the enrollment expired; start a new one");
  }
  if (enrollment.attempts_used >= kEnrollmentAttempts) {
    return absl::FailedPreconditionError(
        "enrollment_id: the enrollment has no attempts left; start a new one");
  }
  absl::StatusOr<std::string> secret = box_->Open(enrollment.secret_sealed, enrollment.customer_id);
  if (!secret.ok()) return secret.status();
  const int64_t step = MatchTotp(*secret, code, now);
  IdentityWrite write;
  absl::Status answer;
  EnrollmentConfirmed confirmed;
  if (step < 0) {
    ++enrollment.attempts_used;
    answer = WrongCode(kEnrollmentAttempts - enrollment.attempts_used);
    write.enrollments.push_back(enrollment);
  } else {
    absl::StatusOr<CustomerRecord> loaded = ReadCustomer(enrollment.customer_id);
    if (!loaded.ok()) return loaded.status();
    CustomerRecord& customer = *loaded;
    confirmed.replaced = !customer.totp_secret_sealed.empty();
    enrollment.used = true;
    enrollment.confirm_request_id = request_id;
    enrollment.confirmed_at = now;
    enrollment.replaced = confirmed.replaced;
    if (enrollment.by_supervisor) {
      // A supervisor's enrollment: the new authenticator waits.
      absl::StatusOr<NewChangeWrite> change =
          NewChange(customer, common::v1::VERIFICATION_METHOD_TOTP, "", enrollment.secret_sealed,
                    step, enrollment.actor_id, language, now, write);
      if (!change.ok()) return change.status();
      enrollment.change_id = change->change.change_id;
      write.enrollments.push_back(enrollment);
      if (absl::Status s = DeliverAll(change->notices); !s.ok()) return s;
      if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
      confirmed.pending = change->change;
      return confirmed;
    }
    // The customer's own enrollment (or a service's) applies at once, and is
    // newer than any change a supervisor left pending.
    absl::StatusOr<std::string> superseded =
        SupersedePending(customer.customer_id, common::v1::VERIFICATION_METHOD_TOTP, now, write);
    if (!superseded.ok()) return superseded.status();
    confirmed.enrolled_at = now;
    customer.totp_secret_sealed = enrollment.secret_sealed;
    customer.totp_enrolled_at = now;
    // The confirming code must not also verify.
    customer.last_totp_step = step;
    write.enrollments.push_back(enrollment);
    write.customers.push_back(customer);
    events::v1::Event event;
    events::v1::TotpEnrolled* payload = event.mutable_totp_enrolled();
    payload->set_customer_id(enrollment.customer_id);
    payload->set_enrollment_id(enrollment.enrollment_id);
    payload->set_replaced(confirmed.replaced);
    payload->set_actor_id(enrollment.actor_id);
    if (absl::Status s = events::Seal(event, kProducer, enrollment.customer_id, now); !s.ok()) {
      return s;
    }
    write.events.push_back(std::move(event));
  }
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  if (!answer.ok()) return answer;
  if (metrics_ != nullptr) metrics_->totp_enrollments->Increment();
  return confirmed;
}

absl::Status Identity::DeliverAll(const std::vector<v1::CodeDeliveryRequest>& notices) {
  for (const v1::CodeDeliveryRequest& notice : notices) {
    if (absl::Status sent = notifier_->Deliver(notice); !sent.ok()) {
      if (metrics_ != nullptr) metrics_->delivery_failures->Increment();
      log::Error("change_notice_failed", {{"customer_id", notice.customer_id()},
                                          {"change_id", notice.account_change().change_id()},
                                          {"detail", sent.message()}});
      return absl::UnavailableError(
          "the customer could not be notified, so nothing was changed; try again shortly");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Identity::SupersedePending(const std::string& customer_id,
                                                       VerificationMethod method, absl::Time now,
                                                       IdentityWrite& write) {
  absl::StatusOr<std::vector<AccountChangeRecord>> pending = store_->PendingChanges(customer_id);
  if (!pending.ok()) return pending.status();
  std::string superseded;
  for (AccountChangeRecord& change : *pending) {
    if (change.method != method) continue;
    CancelChange(change, v1::ACCOUNT_CHANGE_RESOLUTION_SUPERSEDED, kSelf, now, write);
    superseded = change.change_id;
  }
  return superseded;
}

absl::StatusOr<Identity::NewChangeWrite> Identity::NewChange(
    const CustomerRecord& customer, VerificationMethod method, const std::string& address,
    const std::string& secret_sealed, int64_t totp_step, const std::string& supervisor_id,
    const std::string& language, absl::Time now, IdentityWrite& write) {
  absl::StatusOr<std::string> superseded =
      SupersedePending(customer.customer_id, method, now, write);
  if (!superseded.ok()) return superseded.status();
  NewChangeWrite out;
  AccountChangeRecord& change = out.change;
  change.change_id = RandomId("chg_");
  change.customer_id = customer.customer_id;
  change.method = method;
  change.new_address = address;
  change.new_secret_sealed = secret_sealed;
  change.totp_step = totp_step;
  change.requested_by = supervisor_id;
  change.requested_at = now;
  change.effective_at = now + options_.account_change_cooldown;
  const std::string code = RandomDigits(kCodeDigits);
  change.code_hash = hasher_->Hash(change.change_id, code);
  // The notices go to the contacts the customer has now: the ones the
  // change must not be able to silence.
  for (const auto& [contact_method, contact] :
       {std::pair{common::v1::VERIFICATION_METHOD_EMAIL_OTP, customer.email},
        std::pair{common::v1::VERIFICATION_METHOD_SMS_OTP, customer.phone}}) {
    if (contact.empty()) continue;
    change.notified.push_back(contact_method);
    v1::CodeDeliveryRequest& notice = out.notices.emplace_back();
    notice.set_delivery_id(RandomId("dlv_"));
    notice.set_customer_id(customer.customer_id);
    notice.set_method(contact_method);
    notice.set_address(contact);
    notice.set_code(code);
    notice.set_language(language.empty() ? "en" : language);
    protoutil::ToTimestamp(change.effective_at, notice.mutable_expires_at());
    notice.set_purpose(v1::DELIVERY_PURPOSE_ACCOUNT_CHANGE_NOTICE);
    v1::AccountChangeNotice* about = notice.mutable_account_change();
    about->set_change_id(change.change_id);
    about->set_changed(method);
    about->set_removed(method != common::v1::VERIFICATION_METHOD_TOTP && address.empty());
    protoutil::ToTimestamp(change.effective_at, about->mutable_effective_at());
  }
  write.changes.push_back(change);

  events::v1::Event event;
  events::v1::AccountChangeRequested* payload = event.mutable_account_change_requested();
  payload->set_customer_id(change.customer_id);
  payload->set_change_id(change.change_id);
  payload->set_method(method);
  payload->set_removed(method != common::v1::VERIFICATION_METHOD_TOTP && address.empty());
  payload->set_requested_by(supervisor_id);
  protoutil::ToTimestamp(change.effective_at, payload->mutable_effective_at());
  for (VerificationMethod notified : change.notified) payload->add_notified(notified);
  payload->set_superseded_change_id(*superseded);
  if (absl::Status s = events::Seal(event, kProducer, change.customer_id, now); !s.ok()) return s;
  write.events.push_back(std::move(event));
  log::Warning("account_change_requested",
               {{"customer_id", change.customer_id},
                {"change_id", change.change_id},
                {"method", common::v1::VerificationMethod_Name(method)},
                {"requested_by", supervisor_id},
                {"notified", static_cast<int>(change.notified.size())}});
  return out;
}

void Identity::ApplyChange(CustomerRecord& customer, AccountChangeRecord& change,
                           v1::AccountChangeResolution resolution,
                           const std::string& resolved_by, absl::Time now,
                           IdentityWrite& write) {
  const bool removed =
      change.method != common::v1::VERIFICATION_METHOD_TOTP && change.new_address.empty();
  events::v1::Event effect;
  if (change.method == common::v1::VERIFICATION_METHOD_TOTP) {
    events::v1::TotpEnrolled* enrolled = effect.mutable_totp_enrolled();
    enrolled->set_customer_id(customer.customer_id);
    enrolled->set_replaced(!customer.totp_secret_sealed.empty());
    enrolled->set_actor_id(change.requested_by);
    customer.totp_secret_sealed = change.new_secret_sealed;
    customer.totp_enrolled_at = now;
    customer.last_totp_step = std::max(customer.last_totp_step, change.totp_step);
  } else {
    (change.method == common::v1::VERIFICATION_METHOD_EMAIL_OTP ? customer.email
                                                                 : customer.phone) =
        change.new_address;
    events::v1::ContactChanged* changed = effect.mutable_contact_changed();
    changed->set_customer_id(customer.customer_id);
    changed->set_method(change.method);
    changed->set_removed(removed);
    changed->set_actor_id(change.requested_by);
  }
  change.state = ChangeState::kApplied;
  change.resolution = resolution;
  change.resolved_by = resolved_by;
  change.resolved_at = now;
  change.forget_after = now + kChangeHistory;
  write.customers.push_back(customer);
  write.changes.push_back(change);

  events::v1::Event applied;
  events::v1::AccountChangeApplied* payload = applied.mutable_account_change_applied();
  payload->set_customer_id(change.customer_id);
  payload->set_change_id(change.change_id);
  payload->set_method(change.method);
  payload->set_removed(removed);
  payload->set_requested_by(change.requested_by);
  payload->set_confirmed_early(resolution != v1::ACCOUNT_CHANGE_RESOLUTION_COOLDOWN_PASSED);
  events::Seal(applied, kProducer, change.customer_id, now).IgnoreError();
  write.events.push_back(std::move(applied));
  events::Seal(effect, kProducer, change.customer_id, now).IgnoreError();
  write.events.push_back(std::move(effect));
  log::Warning("account_change_applied",
               {{"customer_id", change.customer_id},
                {"change_id", change.change_id},
                {"method", common::v1::VerificationMethod_Name(change.method)},
                {"requested_by", change.requested_by},
                {"resolution", v1::AccountChangeResolution_Name(resolution)}});
}

void Identity::CancelChange(AccountChangeRecord& change, v1::AccountChangeResolution resolution,
                            const std::string& resolved_by, absl::Time now,
                            IdentityWrite& write) {
  change.state = ChangeState::kCancelled;
  change.resolution = resolution;
  change.resolved_by = resolved_by;
  change.resolved_at = now;
  change.forget_after = now + kChangeHistory;
  write.changes.push_back(change);
  events::v1::Event event;
  events::v1::AccountChangeCancelled* payload = event.mutable_account_change_cancelled();
  payload->set_customer_id(change.customer_id);
  payload->set_change_id(change.change_id);
  payload->set_cancelled_by(resolved_by);
  payload->set_resolution(resolution);
  payload->set_requested_by(change.requested_by);
  events::Seal(event, kProducer, change.customer_id, now).IgnoreError();
  write.events.push_back(std::move(event));
  log::Info("account_change_cancelled",
            {{"customer_id", change.customer_id},
             {"change_id", change.change_id},
             {"cancelled_by", resolved_by},
             {"resolution", v1::AccountChangeResolution_Name(resolution)}});
}

absl::StatusOr<Identity::ContactChange> Identity::RequestContactChangeOnce(
    const std::string& customer_id, VerificationMethod method, const std::string& address,
    const std::string& supervisor_id, const std::string& language) {
  if (absl::Status s = validation::ValidateId("customer_id", customer_id); !s.ok()) return s;
  if (absl::Status s = ValidateMethod(method, /*allow_totp=*/false); !s.ok()) return s;
  if (!address.empty()) {
    absl::Status s = method == common::v1::VERIFICATION_METHOD_EMAIL_OTP
                         ? ValidateEmail(address)
                         : ValidatePhone(address);
    if (!s.ok()) return s;
  }
  if (absl::Status s = ValidateLanguage(language); !s.ok()) return s;
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::StatusOr<KeyLocks::Hold> turn = Turn(customer_id);
  if (!turn.ok()) return turn.status();
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(customer_id);
  if (!loaded.ok()) return loaded.status();
  const CustomerRecord& customer = *loaded;
  const std::string& slot =
      method == common::v1::VERIFICATION_METHOD_EMAIL_OTP ? customer.email : customer.phone;
  ContactChange result;
  result.replaced = !slot.empty();
  absl::StatusOr<std::vector<AccountChangeRecord>> pending = store_->PendingChanges(customer_id);
  if (!pending.ok()) return pending.status();
  for (const AccountChangeRecord& change : *pending) {
    // A retry: what was read is durable; no second notice.
    if (change.method == method && change.new_address == address) {
      result.pending = change;
      result.replayed = true;
      return result;
    }
  }
  const absl::Time now = clock_->Now();
  IdentityWrite write;
  if (slot == address) {
    // Back to what the customer has: only a pending change goes.
    absl::StatusOr<std::string> superseded = SupersedePending(customer_id, method, now, write);
    if (!superseded.ok()) return superseded.status();
    if (!write.changes.empty()) {
      if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
    }
    return result;
  }
  absl::StatusOr<NewChangeWrite> change =
      NewChange(customer, method, address, "", -1, supervisor_id, language, now, write);
  if (!change.ok()) return change.status();
  // As for codes: the notices are handed over before the change is
  // committed, so a recorded change always had its notices sent.
  if (absl::Status s = DeliverAll(change->notices); !s.ok()) return s;
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  result.pending = change->change;
  return result;
}

absl::StatusOr<std::vector<AccountChangeRecord>> Identity::ListAccountChanges(
    const std::string& customer_id) {
  if (absl::Status s = validation::ValidateId("customer_id", customer_id); !s.ok()) return s;
  return store_->ListChanges(customer_id, kMaxListedChanges);
}

absl::StatusOr<AccountChangeRecord> Identity::FindChange(const std::string& caller_customer,
                                                         const std::string& change_id) {
  absl::StatusOr<std::optional<AccountChangeRecord>> found = store_->GetChange(change_id);
  if (!found.ok()) return found.status();
  if (!found->has_value() ||
      (!caller_customer.empty() && (*found)->customer_id != caller_customer)) {
    return absl::NotFoundError("change_id: no such change");
  }
  return **found;
}

absl::StatusOr<Identity::LockedChange> Identity::LockChange(const std::string& caller_customer,
                                                           const std::string& change_id) {
  absl::StatusOr<AccountChangeRecord> first = FindChange(caller_customer, change_id);
  if (!first.ok()) return first.status();
  absl::StatusOr<KeyLocks::Hold> turn = Turn(first->customer_id);
  if (!turn.ok()) return turn.status();
  // Read again under the customer's lock: a call that held it may have
  // confirmed, cancelled or applied the change meanwhile.
  absl::StatusOr<AccountChangeRecord> found = FindChange(caller_customer, change_id);
  if (!found.ok()) return found.status();
  return LockedChange{*std::move(turn), *std::move(found)};
}

absl::StatusOr<AccountChangeRecord> Identity::ConfirmAccountChangeOnce(
    const std::string& caller_customer, const std::string& change_id, const std::string& code,
    std::optional<int> verification_level, const std::string& actor_id) {
  if (change_id.empty()) return absl::InvalidArgumentError("change_id: must not be empty");
  if (absl::Status s = validation::ValidateId("change_id", change_id, kMaxChallengeId); !s.ok()) {
    return s;
  }
  if (!code.empty()) {
    if (absl::Status s = ValidateCode(code); !s.ok()) return s;
  } else if (caller_customer.empty()) {
    return absl::InvalidArgumentError(
        "code: required when staff confirm a change (the code the customer received)");
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::StatusOr<LockedChange> locked = LockChange(caller_customer, change_id);
  if (!locked.ok()) return locked.status();
  AccountChangeRecord& change = locked->change;
  // A retry, or the cool-down came first: the change is in effect.
  if (change.state == ChangeState::kApplied) return change;
  if (change.state == ChangeState::kCancelled) {
    return absl::FailedPreconditionError("change_id: the change was cancelled");
  }
  absl::StatusOr<CustomerRecord> loaded = ReadCustomer(change.customer_id);
  if (!loaded.ok()) return loaded.status();
  CustomerRecord& customer = *loaded;
  const absl::Time now = clock_->Now();
  IdentityWrite write;
  if (!code.empty()) {
    if (change.code_attempts >= kChangeCodeAttempts) {
      return absl::FailedPreconditionError(
          "code: no attempts left on this change's code; confirm with a verification, or "
          "let the cool-down pass");
    }
    if (!hasher_->Matches(change.code_hash, change.change_id, code)) {
      ++change.code_attempts;
      write.changes.push_back(change);
      if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
      return WrongCode(kChangeCodeAttempts - change.code_attempts, "change");
    }
  } else if (!verification_level.has_value() || *verification_level < auth::kLevelBasic) {
    const bool has_factor =
        !customer.email.empty() || !customer.phone.empty() || !customer.totp_secret_sealed.empty();
    if (has_factor) {
      return absl::PermissionDeniedError(
          "code: confirming needs the code sent to your contact, or a verification_token");
    }
  }
  events::v1::Event event;
  events::v1::AccountChangeConfirmed* payload = event.mutable_account_change_confirmed();
  payload->set_customer_id(change.customer_id);
  payload->set_change_id(change.change_id);
  payload->set_confirmed_by(actor_id);
  payload->set_with_code(!code.empty());
  payload->set_requested_by(change.requested_by);
  if (absl::Status s = events::Seal(event, kProducer, change.customer_id, now); !s.ok()) return s;
  write.events.push_back(std::move(event));
  ApplyChange(customer, change,
              caller_customer.empty() ? v1::ACCOUNT_CHANGE_RESOLUTION_CONFIRMED_WITH_CODE
                                      : v1::ACCOUNT_CHANGE_RESOLUTION_CONFIRMED_BY_CUSTOMER,
              actor_id, now, write);
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  return change;
}

absl::StatusOr<AccountChangeRecord> Identity::CancelAccountChangeOnce(
    const std::string& caller_customer, const std::string& change_id,
    const std::string& actor_id) {
  if (change_id.empty()) return absl::InvalidArgumentError("change_id: must not be empty");
  if (absl::Status s = validation::ValidateId("change_id", change_id, kMaxChallengeId); !s.ok()) {
    return s;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::StatusOr<LockedChange> locked = LockChange(caller_customer, change_id);
  if (!locked.ok()) return locked.status();
  AccountChangeRecord& change = locked->change;
  if (change.state == ChangeState::kCancelled) return change;
  if (change.state == ChangeState::kApplied) {
    return absl::FailedPreconditionError(
        "change_id: the change already applied; changing it back is a new change");
  }
  IdentityWrite write;
  CancelChange(change,
               caller_customer.empty() ? v1::ACCOUNT_CHANGE_RESOLUTION_CANCELLED_BY_STAFF
                                       : v1::ACCOUNT_CHANGE_RESOLUTION_CANCELLED_BY_CUSTOMER,
               actor_id, clock_->Now(), write);
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  return change;
}

absl::StatusOr<int> Identity::ApplyDueChanges() {
  const int batch = std::max(1, options_.sweep_batch);
  int applied = 0;
  while (true) {
    const absl::Time now = clock_->Now();
    absl::StatusOr<std::vector<AccountChangeRecord>> due = store_->DueChanges(now, batch);
    if (!due.ok()) return due.status();
    for (const AccountChangeRecord& listed : *due) {
      // Waits its turn: the periodic task must not be refused.
      KeyLocks::Hold hold = locks_.Lock(listed.customer_id);
      absl::StatusOr<AccountChangeRecord> change = FindChange("", listed.change_id);
      if (!change.ok()) return change.status();
      if (change->state != ChangeState::kPending || change->effective_at > now) continue;
      absl::StatusOr<CustomerRecord> customer = ReadCustomer(change->customer_id);
      if (!customer.ok()) return customer.status();
      IdentityWrite write;
      ApplyChange(*customer, *change, v1::ACCOUNT_CHANGE_RESOLUTION_COOLDOWN_PASSED, kSelf, now,
                  write);
      absl::Status s = Commit(std::move(write));
      // Another replica wrote the change or its customer since they were
      // read (e.g. applied it first): a later pass sees what it did.
      if (absl::IsAborted(s)) continue;
      if (!s.ok()) return s;
      ++applied;
    }
    if (static_cast<int>(due->size()) < batch) return applied;
  }
}

absl::StatusOr<int> Identity::Sweep() {
  const absl::Time cutoff = clock_->Now() - options_.retention;
  const int batch = std::max(1, options_.sweep_batch);
  int deleted = 0;
  while (true) {
    absl::StatusOr<int> swept = store_->DeleteExpired(cutoff, batch);
    if (!swept.ok()) return swept.status();
    deleted += *swept;
    // Each table gives at most `batch` rows per pass; fewer means done.
    if (*swept < batch) return deleted;
  }
}

absl::StatusOr<Identity::Started> Identity::StartVerification(const StartCommand& command) {
  return Decided([&] { return StartVerificationOnce(command); });
}

absl::StatusOr<Identity::Completed> Identity::CompleteVerification(
    const std::string& caller_customer, const std::string& challenge_id,
    const std::string& code, const std::string& request_id, const std::string& source) {
  return Decided([&] {
    return CompleteVerificationOnce(caller_customer, challenge_id, code, request_id, source);
  });
}

absl::StatusOr<bool> Identity::RegisterContact(const std::string& customer_id,
                                               VerificationMethod method,
                                               const std::string& address,
                                               const std::string& actor_id) {
  return Decided([&] { return RegisterContactOnce(customer_id, method, address, actor_id); });
}

absl::StatusOr<Identity::ContactChange> Identity::RequestContactChange(
    const std::string& customer_id, VerificationMethod method, const std::string& address,
    const std::string& supervisor_id, const std::string& language) {
  return Decided([&] {
    return RequestContactChangeOnce(customer_id, method, address, supervisor_id, language);
  });
}

absl::StatusOr<Identity::EnrollmentStarted> Identity::StartTotpEnrollment(
    const std::string& customer_id, const std::string& account_label,
    const std::string& actor_id, std::optional<int> proof_level,
    const std::string& request_id, bool by_supervisor) {
  return Decided([&] {
    return StartTotpEnrollmentOnce(customer_id, account_label, actor_id, proof_level,
                                   request_id, by_supervisor);
  });
}

absl::StatusOr<Identity::EnrollmentConfirmed> Identity::ConfirmTotpEnrollment(
    const std::string& caller_customer, const std::string& enrollment_id,
    const std::string& code, const std::string& request_id, const std::string& language) {
  return Decided([&] {
    return ConfirmTotpEnrollmentOnce(caller_customer, enrollment_id, code, request_id,
                                     language);
  });
}

absl::StatusOr<AccountChangeRecord> Identity::ConfirmAccountChange(
    const std::string& caller_customer, const std::string& change_id, const std::string& code,
    std::optional<int> verification_level, const std::string& actor_id) {
  return Decided([&] {
    return ConfirmAccountChangeOnce(caller_customer, change_id, code, verification_level,
                                    actor_id);
  });
}

absl::StatusOr<AccountChangeRecord> Identity::CancelAccountChange(
    const std::string& caller_customer, const std::string& change_id,
    const std::string& actor_id) {
  return Decided([&] { return CancelAccountChangeOnce(caller_customer, change_id, actor_id); });
}


}  // namespace switchboard::identity
