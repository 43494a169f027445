#pragma once

// What a new session looks like before its first event: the record
// CreateSession opens, and the PHONE session RequestCallback opens from
// another. Pure functions; ids and times come from the caller.

#include <optional>
#include <string>

#include "absl/time/time.h"
#include "services/sessions/model.h"
#include "services/sessions/rules.h"

namespace switchboard::sessions {

// CHAT and SOCIAL sessions start with the bot; EMAIL and PHONE ones go
// straight to the human queue.
bool StartsWithBot(common::v1::Channel channel);

// The session CreateSession opens (state not set yet: its creation event
// sets it): identity, channel, category, language, subject, social source,
// the customer as first participant, the verification (PHONE), the
// first-response SLA when `reply_target` is above zero (EMAIL), the callback
// (PHONE, with `callback_id`), and either the start of the bot stretch or
// the handoff of a channel without a bot.
SessionRecord NewSessionRecord(const std::string& session_id, const std::string& callback_id,
                               const NewSession& fields,
                               const v1::CreateSessionRequest& request,
                               const std::optional<common::v1::VerificationState>& verification,
                               absl::Duration reply_target, absl::Time now);

// The PHONE session RequestCallback opens from `origin` (same customer,
// category and language), with the callback `callback_id` for `details`.
SessionRecord CallbackSessionRecord(const std::string& phone_id, const std::string& callback_id,
                                    const v1::Session& origin,
                                    const v1::CallbackDetails& details,
                                    const common::v1::VerificationState& verification,
                                    absl::Time now);

}  // namespace switchboard::sessions
