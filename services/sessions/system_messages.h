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

// The acknowledgement of an EMAIL session whose target counts business
// hours only: "... will reply within 48 business hours, by 2026-03-09 10:00
// (Europe/Berlin), 2026-03-09 09:00 UTC." `time_zone` is the schedule's.
std::string EmailAcknowledgementBy(absl::string_view language, absl::Duration reply_target,
                                   absl::Time due, absl::string_view time_zone);

// Told to a customer whose chat was escalated while the desk is closed:
// when it next opens (in the schedule's zone and in UTC; "no opening hours
// scheduled" when `next_opening` is InfiniteFuture), that they may stay
// queued, or continue by email with a reply within `email_target` (of
// business hours when `business_hours`).
std::string DeskClosedNotice(absl::string_view language, absl::Time next_opening,
                             absl::string_view time_zone, absl::Duration email_target,
                             bool business_hours = false);

// Told to a customer who asked for a callback while the phone desk is
// closed: the callback is booked for `when` (the next opening).
std::string CallbackBooked(absl::string_view language, absl::Time when,
                           absl::string_view time_zone);

// The invitation to rate: response speed, professionalism, resolution.
std::string RatingInvitation(absl::string_view language);

// A SYSTEM message with `text`, ready for AddMessage.
v1::Message SystemMessage(std::string text);

}  // namespace switchboard::sessions
