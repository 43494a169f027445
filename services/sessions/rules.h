#pragma once

// The rules of a session, as pure functions: what input is valid, which
// state transitions the state machine allows, who may see and write what,
// and the page tokens of lists. No state, no I/O; see
// proto/switchboard/sessions/v1/sessions_service.proto for the contract
// they implement.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "libs/auth/token.h"
#include "libs/auth/verification_token.h"
#include "libs/auth/verifier.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// Who is calling, as the access token names them.
struct Caller {
  std::string id;
  auth::Role role = auth::Role::kCustomer;
};

// Whether the state machine allows `from` -> `to` (see sessions_service.proto).
bool TransitionAllowed(v1::SessionState from, v1::SessionState to);

// The upper-case state name without its prefix ("BOT").
std::string StateName(v1::SessionState state);

// FAILED_PRECONDITION "session is BOT: <what>".
absl::Status WrongState(const v1::Session& session, absl::string_view what);

// The NOT_FOUND every caller gets for a session that is missing or that
// they may not see (the two are indistinguishable on purpose).
absl::Status NotFound();

// Checks a client's message: text (at most 4,000 code points, valid UTF-8,
// no control characters but tab and newline), attachment ids (well formed,
// none twice; the deprecated `attachments` is refused), quick reply id; not
// empty. How many files a message may carry is the caller's option.
absl::Status ValidateNewMessage(absl::string_view field, const v1::NewMessage& message);

// An idempotency key: 1 to 64 letters, digits, '-' or '_'.
absl::Status ValidateKey(absl::string_view field, absl::string_view key, bool required);

// A BCP 47 language tag as sessions accepts it: 2 to 35 letters, digits and
// '-', starting with a letter.
bool IsLanguageTag(absl::string_view tag);

// Checks a callback's number (E.164), window (ending after `now`, within 14
// days, at least 15 minutes long) and note.
absl::Status ValidateCallbackDetails(absl::string_view field, const v1::CallbackDetails& d,
                                     absl::Time now);

// A CreateSession request once checked, with its defaults applied.
struct NewSession {
  std::string customer_id;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  std::string language;
  // Whether the first message is kept (PHONE sessions ignore it).
  bool has_first_message = false;
};

// Checks every field of a CreateSession request but the verification token
// (see CheckVerification); a customer may only create for themselves
// (PERMISSION_DENIED).
absl::StatusOr<NewSession> ValidateCreate(const Caller& caller,
                                          const v1::CreateSessionRequest& request,
                                          absl::Time now);

// Checks a verification token offline and returns what the session records
// of it. INVALID_ARGUMENT (missing, too long, malformed); PERMISSION_DENIED
// (bad signature, expired, another customer's, bound to another session).
// `session_id` is the session it is presented for (empty for a PHONE
// session being created): a token bound to a session counts for that
// session only. On success `claims`, when given, receives the token's claims
// (its id is what sessions binds to the session it is used on).
absl::StatusOr<common::v1::VerificationState> CheckVerification(
    const auth::TokenVerifier& tokens, const std::string& token, const std::string& customer_id,
    const std::string& session_id, absl::Time now,
    auth::VerificationClaims* claims = nullptr);

// Checks a TransferSession request's key, note and target.
absl::Status ValidateTransfer(const v1::TransferSessionRequest& request);

// The reason a CloseSession is recorded with: `reason`, or the caller's
// default when unset. INVALID_ARGUMENT for unknown reasons and
// IDLE_TIMEOUT (sessions' own).
absl::StatusOr<v1::CloseReason> CloseReasonFor(const Caller& caller, v1::CloseReason reason);

// Whether `caller` may see `session` at `now`: customers their own, agents
// the one assigned to them or offered to them until the offer lapses (with
// `past_agents`, any they took part in), supervisors and services all.
bool MaySee(const Caller& caller, const v1::Session& session, absl::Time now,
            bool past_agents = false);

// The session as `caller` sees it: customers never see the handoff, the
// transfer note, the resolution summary or an offer (which agent, until
// when); a lapsed offer is shown to no one.
v1::Session ViewFor(const v1::Session& session, const Caller& caller, absl::Time now);

// Whether `caller` may write a message in `session` now: the customer in
// BOT, QUEUED or ASSIGNED; the assigned agent or a supervisor while
// ASSIGNED. FAILED_PRECONDITION otherwise.
absl::Status CheckMayWrite(const Caller& caller, const v1::Session& session);

// Whether `caller` still belongs on a stream of the session after `event`
// (an agent transferred away, or an offer that went to another agent, does
// not; nobody does after CLOSED).
bool StillParticipates(const Caller& caller, const v1::SessionEvent& event);

// The role a caller's messages carry: CUSTOMER, or AGENT for staff.
common::v1::SenderRole SenderFor(auth::Role role);

// ListSessions' filters.
struct ListFilter {
  std::string customer_id;
  std::string agent_id;
  std::vector<v1::SessionState> states;
  common::v1::Category category = common::v1::CATEGORY_UNSPECIFIED;
  common::v1::Channel channel = common::v1::CHANNEL_UNSPECIFIED;
  absl::Time created_after = absl::InfinitePast();
  absl::Time created_before = absl::InfiniteFuture();
};

// Narrows `filter` to what `caller` may list (customers their own sessions,
// agents those assigned to them; naming anyone else is PERMISSION_DENIED)
// and checks it and the page size (0 to 200). INVALID_ARGUMENT names the
// field.
absl::Status ScopeListFilter(const Caller& caller, ListFilter& filter, int page_size);

// Page tokens: opaque to clients, they carry the last item of a page.
std::string SessionPageToken(int64_t created_micros, const std::string& session_id);
// INVALID_ARGUMENT for anything SessionPageToken did not make.
absl::StatusOr<std::pair<int64_t, std::string>> ParseSessionPageToken(
    const std::string& token);
std::string MessagePageToken(int64_t sequence);
absl::StatusOr<int64_t> ParseMessagePageToken(const std::string& token);

}  // namespace switchboard::sessions
