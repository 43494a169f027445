#include "tools/cli/hours.h"

#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tools/cli/command_line.h"

namespace switchboard::cli {
namespace {

constexpr absl::string_view kDays[] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

// "mon" -> 0 ... "sun" -> 6; -1 if none.
int DayIndex(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(absl::StripAsciiWhitespace(name));
  for (int i = 0; i < 7; ++i) {
    if (lower == kDays[i]) return i;
  }
  return -1;
}

absl::Status Bad(absl::string_view flag, absl::string_view item, absl::string_view form) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": \"", item, "\" is not ", form));
}

}  // namespace

absl::Status ParseWeekly(absl::string_view text, routing::v1::Schedule* schedule) {
  constexpr absl::string_view kForm = "DAYS=HH:MM-HH:MM, e.g. mon-fri=09:00-17:00";
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> days_hours =
        absl::StrSplit(item, absl::MaxSplits('=', 1));
    std::pair<absl::string_view, absl::string_view> days =
        absl::StrSplit(days_hours.first, absl::MaxSplits('-', 1));
    std::pair<absl::string_view, absl::string_view> hours =
        absl::StrSplit(days_hours.second, absl::MaxSplits('-', 1));
    const int first = DayIndex(days.first);
    const int last = days.second.empty() ? first : DayIndex(days.second);
    if (first < 0 || last < first || hours.first.empty() || hours.second.empty()) {
      return Bad("weekly", item, kForm);
    }
    for (int day = first; day <= last; ++day) {
      routing::v1::WeeklyHours* weekly = schedule->add_weekly_hours();
      weekly->set_day(static_cast<routing::v1::DayOfWeek>(day + 1));
      weekly->set_start_time(std::string(absl::StripAsciiWhitespace(hours.first)));
      weekly->set_end_time(std::string(absl::StripAsciiWhitespace(hours.second)));
    }
  }
  return absl::OkStatus();
}

absl::Status ParseSpecialDays(absl::string_view text, bool open, routing::v1::Schedule* schedule) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<absl::string_view, absl::string_view> span =
        absl::StrSplit(item, absl::MaxSplits('/', 1));
    if (span.first.empty()) {
      return Bad(open ? "open" : "closed", item, "a date or START/END, e.g. 2026-12-25");
    }
    routing::v1::SpecialDay* day = schedule->add_special_days();
    day->set_start(std::string(absl::StripAsciiWhitespace(span.first)));
    day->set_end(std::string(absl::StripAsciiWhitespace(span.second)));
    day->set_open(open);
  }
  return absl::OkStatus();
}

absl::Status ParseAppliesTo(absl::string_view text, routing::v1::Schedule* schedule) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, '/');
    if (parts.size() > 3) {
      return Bad("applies_to", item, "CHANNEL[/CATEGORY[/LANGUAGE]], e.g. phone/deposit/zh");
    }
    routing::v1::QueueSelector* selector = schedule->add_applies_to();
    auto any = [](absl::string_view part) { return part.empty() || part == "*"; };
    if (!any(parts[0])) {
      absl::StatusOr<int> channel =
          ParseEnum(common::v1::Channel_descriptor(), "applies_to", parts[0]);
      if (!channel.ok()) return channel.status();
      selector->set_channel(static_cast<common::v1::Channel>(*channel));
    }
    if (parts.size() > 1 && !any(parts[1])) {
      absl::StatusOr<int> category =
          ParseEnum(common::v1::Category_descriptor(), "applies_to", parts[1]);
      if (!category.ok()) return category.status();
      selector->set_category(static_cast<common::v1::Category>(*category));
    }
    if (parts.size() > 2 && !any(parts[2])) selector->set_language(std::string(parts[2]));
  }
  return absl::OkStatus();
}

std::string FormatSchedule(const routing::v1::Schedule& schedule) {
  std::vector<std::string> weekly;
  for (const routing::v1::WeeklyHours& hours : schedule.weekly_hours()) {
    const int day = static_cast<int>(hours.day()) - 1;
    weekly.push_back(absl::StrCat(day >= 0 && day < 7 ? kDays[day] : "?", " ",
                                  hours.start_time(), "-", hours.end_time()));
  }
  std::vector<std::string> special;
  for (const routing::v1::SpecialDay& day : schedule.special_days()) {
    special.push_back(absl::StrCat(day.open() ? "open " : "closed ", day.start(),
                                   day.end().empty() ? "" : absl::StrCat(" to ", day.end()),
                                   day.description().empty()
                                       ? ""
                                       : absl::StrCat(" (", day.description(), ")")));
  }
  std::vector<std::string> queues;
  for (const routing::v1::QueueSelector& s : schedule.applies_to()) {
    queues.push_back(absl::StrCat(
        s.channel() == common::v1::CHANNEL_UNSPECIFIED
            ? "*"
            : EnumLabel(common::v1::Channel_descriptor(), s.channel()),
        "/",
        s.category() == common::v1::CATEGORY_UNSPECIFIED
            ? "*"
            : EnumLabel(common::v1::Category_descriptor(), s.category()),
        "/",
        s.language().empty() ? "*" : s.language()));
  }
  return absl::StrCat(
      schedule.schedule_id(), " v", schedule.version(),
      schedule.display_name().empty() ? "" : absl::StrCat(" \"", schedule.display_name(), "\""),
      " in ", schedule.time_zone(), "\n  weekly: ",
      weekly.empty() ? "none (closed)" : absl::StrJoin(weekly, ", "),
      special.empty() ? "" : absl::StrCat("\n  special: ", absl::StrJoin(special, ", ")),
      "\n  queues: ", queues.empty() ? "none" : absl::StrJoin(queues, ", "));
}

}  // namespace switchboard::cli
