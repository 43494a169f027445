#include "services/routing/schedule.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace switchboard::routing {
namespace {

constexpr int kMinutesPerDay = 24 * 60;
constexpr int kMinutesPerWeek = 7 * kMinutesPerDay;

int DayIndex(absl::Weekday day) {
  switch (day) {
    case absl::Weekday::monday:
      return 0;
    case absl::Weekday::tuesday:
      return 1;
    case absl::Weekday::wednesday:
      return 2;
    case absl::Weekday::thursday:
      return 3;
    case absl::Weekday::friday:
      return 4;
    case absl::Weekday::saturday:
      return 5;
    case absl::Weekday::sunday:
      return 6;
  }
  return 0;
}

// Minutes the interval lasts (crossing midnight when end <= start).
int Length(const WeeklyInterval& interval) {
  return interval.end_minute > interval.start_minute
             ? interval.end_minute - interval.start_minute
             : interval.end_minute + kMinutesPerDay - interval.start_minute;
}

absl::Status Invalid(absl::string_view field, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", why));
}

}  // namespace

absl::StatusOr<int> ParseTimeOfDay(absl::string_view text, absl::string_view field) {
  if (text.size() != 5 || text[2] != ':' || !absl::ascii_isdigit(text[0]) ||
      !absl::ascii_isdigit(text[1]) || !absl::ascii_isdigit(text[3]) ||
      !absl::ascii_isdigit(text[4])) {
    return Invalid(field, absl::StrCat("\"", text, "\" is not a time of day HH:MM"));
  }
  const int hours = (text[0] - '0') * 10 + (text[1] - '0');
  const int minutes = (text[3] - '0') * 10 + (text[4] - '0');
  if (minutes > 59 || hours > 24 || (hours == 24 && minutes != 0)) {
    return Invalid(field, absl::StrCat("\"", text, "\" is out of range 00:00 to 24:00"));
  }
  return hours * 60 + minutes;
}

std::string FormatTimeOfDay(int minute) {
  return absl::StrFormat("%02d:%02d", minute / 60, minute % 60);
}

absl::StatusOr<absl::CivilMinute> ParseLocalTime(absl::string_view text,
                                                 absl::string_view field) {
  // Parsing normalises (2026-02-30 would become March 2): require that the
  // value formats back to the text given.
  absl::CivilMinute minute;
  if (absl::ParseCivilTime(text, &minute) && absl::FormatCivilTime(minute) == text) {
    return minute;
  }
  absl::CivilDay day;
  if (absl::ParseCivilTime(text, &day) && absl::FormatCivilTime(day) == text) {
    return absl::CivilMinute(day);
  }
  return Invalid(field, absl::StrCat("\"", text,
                                     "\" is not a local time YYYY-MM-DDTHH:MM or a date "
                                     "YYYY-MM-DD"));
}

std::string FormatLocalTime(absl::CivilMinute t) { return absl::FormatCivilTime(t); }

absl::StatusOr<Schedule> Schedule::Create(ScheduleSpec spec) {
  absl::TimeZone zone;
  if (spec.time_zone.empty()) return Invalid("time_zone", "required (an IANA name)");
  if (!absl::LoadTimeZone(spec.time_zone, &zone)) {
    return Invalid("time_zone", absl::StrCat("unknown time zone \"", spec.time_zone,
                                             "\" (an IANA name such as Europe/Berlin)"));
  }
  if (spec.weekly.size() > kMaxWeeklyIntervals) {
    return Invalid("weekly_hours", absl::StrCat("at most ", kMaxWeeklyIntervals, " intervals"));
  }
  if (spec.special.size() > kMaxSpecialPeriods) {
    return Invalid("special_days", absl::StrCat("at most ", kMaxSpecialPeriods, " periods"));
  }

  // Weekly intervals as segments of the week [0, kMinutesPerWeek), an
  // interval wrapping past Sunday midnight split in two.
  struct Segment {
    int start;
    int end;
    size_t index;
  };
  std::vector<Segment> segments;
  for (size_t i = 0; i < spec.weekly.size(); ++i) {
    const WeeklyInterval& interval = spec.weekly[i];
    const std::string field = absl::StrCat("weekly_hours[", i, "]");
    if (interval.start_minute < 0 || interval.start_minute >= kMinutesPerDay) {
      return Invalid(absl::StrCat(field, ".start_time"), "must be 00:00 to 23:59");
    }
    if (interval.end_minute < 0 || interval.end_minute > kMinutesPerDay) {
      return Invalid(absl::StrCat(field, ".end_time"), "must be 00:00 to 24:00");
    }
    if (interval.end_minute == interval.start_minute) {
      return Invalid(absl::StrCat(field, ".end_time"),
                     "equals start_time (empty interval; 00:00 to 24:00 is a whole day)");
    }
    const int start = DayIndex(interval.day) * kMinutesPerDay + interval.start_minute;
    const int end = start + Length(interval);
    if (end <= kMinutesPerWeek) {
      segments.push_back({start, end, i});
    } else {
      segments.push_back({start, kMinutesPerWeek, i});
      segments.push_back({0, end - kMinutesPerWeek, i});
    }
  }
  std::sort(segments.begin(), segments.end(),
            [](const Segment& a, const Segment& b) { return a.start < b.start; });
  for (size_t i = 1; i < segments.size(); ++i) {
    if (segments[i].start < segments[i - 1].end) {
      const size_t a = std::min(segments[i].index, segments[i - 1].index);
      const size_t b = std::max(segments[i].index, segments[i - 1].index);
      return Invalid(absl::StrCat("weekly_hours[", b, "]"),
                     absl::StrCat("overlaps weekly_hours[", a, "]"));
    }
  }

  std::vector<size_t> order(spec.special.size());
  for (size_t i = 0; i < spec.special.size(); ++i) {
    const SpecialPeriod& period = spec.special[i];
    const std::string field = absl::StrCat("special_days[", i, "]");
    if (period.start.year() < kMinSpecialYear || period.start.year() > kMaxSpecialYear) {
      return Invalid(absl::StrCat(field, ".start"),
                     absl::StrCat("must lie in years ", kMinSpecialYear, " to ", kMaxSpecialYear));
    }
    if (period.end <= period.start) {
      return Invalid(absl::StrCat(field, ".end"), "must be after start");
    }
    if (period.end - period.start > kMaxSpecialDays * kMinutesPerDay) {
      return Invalid(absl::StrCat(field, ".end"),
                     absl::StrCat("a special period lasts at most ", kMaxSpecialDays, " days"));
    }
    order[i] = i;
  }
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return spec.special[a].start < spec.special[b].start;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    if (spec.special[order[i]].start < spec.special[order[i - 1]].end) {
      const size_t a = std::min(order[i], order[i - 1]);
      const size_t b = std::max(order[i], order[i - 1]);
      return Invalid(absl::StrCat("special_days[", b, "]"),
                     absl::StrCat("overlaps special_days[", a, "]"));
    }
  }

  Schedule schedule(std::move(spec), zone, /*always_open=*/false);
  schedule.last_special_day_ = absl::CivilDay(kMinSpecialYear, 1, 1);
  for (size_t i : order) {
    const SpecialPeriod& period = schedule.spec_.special[i];
    schedule.spans_.push_back({schedule.At(period.start), schedule.At(period.end), period.open});
    schedule.last_special_day_ =
        std::max(schedule.last_special_day_, absl::CivilDay(period.end));
  }
  return schedule;
}

Schedule Schedule::AlwaysOpen() {
  return Schedule(ScheduleSpec{"UTC", {}, {}}, absl::UTCTimeZone(), /*always_open=*/true);
}

absl::Time Schedule::At(absl::CivilMinute m) const {
  // TimeInfo::pre: a skipped local time lands the same distance after the
  // change, a repeated one on its first occurrence.
  return zone_.At(m).pre;
}

bool Schedule::WeeklyOpen(absl::Time t) const {
  const absl::CivilDay today(zone_.At(t).cs);
  for (absl::CivilDay day = today - 1; day <= today; ++day) {
    const absl::Weekday weekday = absl::GetWeekday(day);
    for (const WeeklyInterval& interval : spec_.weekly) {
      if (interval.day != weekday) continue;
      const absl::CivilMinute start = absl::CivilMinute(day) + interval.start_minute;
      if (At(start) <= t && t < At(start + Length(interval))) return true;
    }
  }
  return false;
}

std::optional<bool> Schedule::SpecialState(absl::Time t) const {
  // The last span starting at or before `t` is the only one that may hold it.
  auto it = std::upper_bound(spans_.begin(), spans_.end(), t,
                             [](absl::Time t, const Span& span) { return t < span.start; });
  if (it == spans_.begin()) return std::nullopt;
  --it;
  if (t < it->end) return it->open;
  return std::nullopt;
}

bool Schedule::IsOpen(absl::Time t) const {
  if (always_open_) return true;
  const std::optional<bool> special = SpecialState(t);
  return special.has_value() ? *special : WeeklyOpen(t);
}

std::vector<absl::Time> Schedule::Edges(absl::CivilDay first, absl::CivilDay last) const {
  const absl::Time from = At(absl::CivilMinute(first));
  const absl::Time to = At(absl::CivilMinute(last + 1));
  std::vector<absl::Time> edges;
  auto add = [&](absl::Time edge) {
    if (from <= edge && edge < to) edges.push_back(edge);
  };
  // Intervals that start the day before `first` may end inside the window.
  for (absl::CivilDay day = first - 1; day <= last; ++day) {
    const absl::Weekday weekday = absl::GetWeekday(day);
    for (const WeeklyInterval& interval : spec_.weekly) {
      if (interval.day != weekday) continue;
      const absl::CivilMinute start = absl::CivilMinute(day) + interval.start_minute;
      add(At(start));
      add(At(start + Length(interval)));
    }
  }
  // Spans ending before the window add nothing; those starting after it
  // neither.
  auto it = std::lower_bound(spans_.begin(), spans_.end(), from,
                             [](const Span& span, absl::Time t) { return span.end < t; });
  for (; it != spans_.end() && it->start < to; ++it) {
    add(it->start);
    add(it->end);
  }
  std::sort(edges.begin(), edges.end());
  edges.erase(std::unique(edges.begin(), edges.end()), edges.end());
  return edges;
}

std::optional<absl::Time> Schedule::NextTransition(absl::Time t) const {
  if (always_open_) return std::nullopt;
  const bool state = IsOpen(t);
  const absl::CivilDay today(zone_.At(t).cs);
  // Past the last special period the weekly hours repeat every week, so a
  // change, if there is one, shows within a week of it.
  const absl::CivilDay horizon = std::max(today, last_special_day_) + 8;
  for (absl::CivilDay first = today - 1; first <= horizon; first += 7) {
    for (absl::Time edge : Edges(first, first + 6)) {
      if (edge > t && IsOpen(edge) != state) return edge;
    }
  }
  return std::nullopt;
}

std::optional<absl::Time> Schedule::NextOpening(absl::Time t) const {
  if (IsOpen(t)) return t;
  return NextTransition(t);
}

absl::Duration Schedule::BusinessDuration(absl::Time from, absl::Time to) const {
  if (to <= from) return absl::ZeroDuration();
  if (always_open_) return to - from;
  absl::Duration total = absl::ZeroDuration();
  absl::Time t = from;
  while (t < to) {
    const bool open = IsOpen(t);
    const std::optional<absl::Time> next = NextTransition(t);
    const absl::Time end = next.has_value() ? std::min(*next, to) : to;
    if (open) total += end - t;
    t = end;
  }
  return total;
}

std::optional<absl::Time> Schedule::AddBusinessTime(absl::Time from, absl::Duration d) const {
  if (d <= absl::ZeroDuration()) return from;
  if (always_open_) return from + d;
  absl::Time t = from;
  absl::Duration remaining = d;
  while (true) {
    if (!IsOpen(t)) {
      const std::optional<absl::Time> opening = NextTransition(t);
      if (!opening.has_value()) return std::nullopt;
      t = *opening;
    }
    const std::optional<absl::Time> closing = NextTransition(t);
    if (!closing.has_value() || *closing - t >= remaining) return t + remaining;
    remaining -= *closing - t;
    t = *closing;
  }
}

}  // namespace switchboard::routing
