#pragma once

// The text forms `switchboard supervisor hours set` takes, into routing's
// Schedule, and the form `hours show` prints.
//
//   --weekly=mon-fri=09:00-17:00,sat=10:00-14:00,fri=22:00-06:00
//       day or day range (mon..sun), '=', opening-closing; a closing at or
//       before the opening is on the next day.
//   --closed=2026-12-25,2026-12-31T18:00/2027-01-02T09:00
//   --open=2026-03-08T10:00/2026-03-08T14:00
//       special days: a date (the whole day) or START/END in local time.
//   --applies_to=phone,chat/deposit,*/withdrawal/zh
//       CHANNEL[/CATEGORY[/LANGUAGE]], '*' (or nothing) for any.

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "switchboard/routing/v1/routing_service.pb.h"

namespace switchboard::cli {

// Each parser appends to `schedule`. Errors: InvalidArgument naming the flag.
absl::Status ParseWeekly(absl::string_view text, routing::v1::Schedule* schedule);
absl::Status ParseSpecialDays(absl::string_view text, bool open, routing::v1::Schedule* schedule);
absl::Status ParseAppliesTo(absl::string_view text, routing::v1::Schedule* schedule);

// Several lines: id, name, zone, version, weekly hours, special days,
// queues.
std::string FormatSchedule(const routing::v1::Schedule& schedule);

}  // namespace switchboard::cli
