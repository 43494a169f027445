#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace switchboard::routing {

// Opening hours on one weekday, in the schedule's local time. `end_minute`
// at or before `start_minute` crosses midnight: the interval ends on the
// next day (22:00-06:00 on Friday is open Friday 22:00 to Saturday 06:00).
struct WeeklyInterval {
  absl::Weekday day = absl::Weekday::monday;
  int start_minute = 0;  // 0..1439
  int end_minute = 0;    // 1..1440 (1440 is 24:00)
};

// A special period in local civil time, [start, end): a holiday (`open`
// false: closed whatever the weekly hours say) or special opening hours
// (`open` true: open whatever they say). May span midnight and several days.
struct SpecialPeriod {
  absl::CivilMinute start;
  absl::CivilMinute end;
  bool open = false;
};

// What a supervisor defines; Schedule::Create validates it.
struct ScheduleSpec {
  std::string time_zone;  // IANA name, e.g. "Asia/Shanghai"
  std::vector<WeeklyInterval> weekly;
  std::vector<SpecialPeriod> special;
};

// Bounds on a schedule, so that each query stays cheap.
inline constexpr int kMaxWeeklyIntervals = 70;
inline constexpr int kMaxSpecialPeriods = 400;
// A special period lasts at most this many days.
inline constexpr int kMaxSpecialDays = 366;
// Special periods lie within these years.
inline constexpr int kMinSpecialYear = 2000;
inline constexpr int kMaxSpecialYear = 2100;

// Parses "HH:MM" (00:00 to 24:00) into minutes since midnight.
// Errors: InvalidArgument naming `field`.
absl::StatusOr<int> ParseTimeOfDay(absl::string_view text, absl::string_view field);
// Formats minutes since midnight as "HH:MM".
std::string FormatTimeOfDay(int minute);
// Parses a local civil time "YYYY-MM-DDTHH:MM", or a date "YYYY-MM-DD"
// (its midnight). Errors: InvalidArgument naming `field`.
absl::StatusOr<absl::CivilMinute> ParseLocalTime(absl::string_view text,
                                                 absl::string_view field);
// Formats as "YYYY-MM-DDTHH:MM".
std::string FormatLocalTime(absl::CivilMinute t);

// Hours of operation: when a queue is open, in absolute time.
//
// A special period decides the state inside it; elsewhere the weekly hours
// do. Local times are mapped to instants through the zone's rules: a local
// time that a daylight-saving change skips is taken as the instant the same
// distance after the change (a shift opening at 02:30 on the spring-forward
// night opens at 03:30), and a repeated local time as its first occurrence.
//
// Immutable and thread-safe once built.
class Schedule {
 public:
  // Validates `spec`. Errors: InvalidArgument naming the field (API field
  // names: time_zone, weekly_hours[i].start_time/end_time,
  // special_days[i].start/end) for an unknown zone, an empty interval, a
  // minute out of range, overlapping weekly intervals or special periods,
  // too many of either, or a special period out of bounds.
  static absl::StatusOr<Schedule> Create(ScheduleSpec spec);

  // Always open: the schedule of a queue without one.
  static Schedule AlwaysOpen();

  const ScheduleSpec& spec() const { return spec_; }
  const absl::TimeZone& zone() const { return zone_; }

  bool IsOpen(absl::Time t) const;
  // The first instant after `t` at which IsOpen changes; nullopt if it
  // never changes again.
  std::optional<absl::Time> NextTransition(absl::Time t) const;
  // `t` if open at `t`, else the next instant it opens; nullopt if it never
  // opens again.
  std::optional<absl::Time> NextOpening(absl::Time t) const;
  // Open time within [from, to) (zero when `to` <= `from`).
  absl::Duration BusinessDuration(absl::Time from, absl::Time to) const;
  // The instant by which `d` of open time has passed since `from`; nullopt
  // if the schedule never accumulates that much. `d` <= 0 gives `from`.
  std::optional<absl::Time> AddBusinessTime(absl::Time from, absl::Duration d) const;

 private:
  Schedule(ScheduleSpec spec, absl::TimeZone zone, bool always_open)
      : spec_(std::move(spec)), zone_(zone), always_open_(always_open) {}

  absl::Time At(absl::CivilMinute m) const;
  // State of the weekly hours alone, and of special periods (nullopt
  // outside them).
  bool WeeklyOpen(absl::Time t) const;
  std::optional<bool> SpecialState(absl::Time t) const;
  // Candidate instants where the state may change, from local day `first`
  // through `last`, sorted.
  std::vector<absl::Time> Edges(absl::CivilDay first, absl::CivilDay last) const;

  // A special period in absolute time.
  struct Span {
    absl::Time start;
    absl::Time end;
    bool open;
  };

  ScheduleSpec spec_;
  absl::TimeZone zone_;
  bool always_open_ = false;
  // The special periods by start (they do not overlap), for binary search.
  std::vector<Span> spans_;
  // The last local day on which a special period ends (search horizon).
  absl::CivilDay last_special_day_;
};

}  // namespace switchboard::routing
