#pragma once

// The notices sessions itself writes into a conversation (sender_role
// SYSTEM, sender_id "system"): the acknowledgement of an EMAIL session,
// stating when the customer can expect a reply, and the invitation to rate
// a resolved session. They are in the customer's language: Simplified
// Chinese for any "zh" tag, English for every other tag. System messages
// never count as a first response.

#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "switchboard/sessions/v1/sessions_service.pb.h"

namespace switchboard::sessions {

// "Thank you for writing to us. We have received your email and will reply
// within 48 hours." (or the target in minutes when it is not whole hours).
std::string EmailAcknowledgement(absl::string_view language, absl::Duration reply_target);

// The invitation to rate: response speed, professionalism, resolution.
std::string RatingInvitation(absl::string_view language);

// A SYSTEM message with `text`, ready for AddMessage.
v1::Message SystemMessage(std::string text);

}  // namespace switchboard::sessions
