#include "services/routing/schedule.h"

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace switchboard::routing {
namespace {

using ::testing::HasSubstr;

// An instant given in UTC, "YYYY-MM-DDTHH:MM".
absl::Time Utc(const std::string& text) {
  absl::CivilMinute minute;
  EXPECT_TRUE(absl::ParseCivilTime(text, &minute)) << text;
  return absl::FromCivil(minute, absl::UTCTimeZone());
}

absl::CivilMinute Local(const std::string& text) {
  absl::CivilMinute minute;
  EXPECT_TRUE(absl::ParseCivilTime(text, &minute)) << text;
  return minute;
}

WeeklyInterval Hours(absl::Weekday day, const std::string& start, const std::string& end) {
  return {day, *ParseTimeOfDay(start, "start"), *ParseTimeOfDay(end, "end")};
}

std::vector<WeeklyInterval> Weekdays(const std::string& start, const std::string& end) {
  std::vector<WeeklyInterval> weekly;
  for (absl::Weekday day : {absl::Weekday::monday, absl::Weekday::tuesday,
                            absl::Weekday::wednesday, absl::Weekday::thursday,
                            absl::Weekday::friday}) {
    weekly.push_back(Hours(day, start, end));
  }
  return weekly;
}

Schedule Make(ScheduleSpec spec) {
  absl::StatusOr<Schedule> schedule = Schedule::Create(std::move(spec));
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  return *schedule;
}

absl::Status CreateError(ScheduleSpec spec) { return Schedule::Create(std::move(spec)).status(); }

TEST(TimeOfDayTest, ParsesAndFormats) {
  EXPECT_EQ(*ParseTimeOfDay("00:00", "f"), 0);
  EXPECT_EQ(*ParseTimeOfDay("09:30", "f"), 570);
  EXPECT_EQ(*ParseTimeOfDay("24:00", "f"), 1440);
  EXPECT_EQ(FormatTimeOfDay(570), "09:30");
  EXPECT_EQ(FormatTimeOfDay(1440), "24:00");
  for (const char* bad : {"", "9:30", "09:60", "24:01", "25:00", "0930", "ab:cd", "09:30:00"}) {
    absl::StatusOr<int> parsed = ParseTimeOfDay(bad, "weekly_hours[3].end_time");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("weekly_hours[3].end_time")) << bad;
  }
}

TEST(LocalTimeTest, ParsesMinutesAndDates) {
  EXPECT_EQ(*ParseLocalTime("2026-12-24T18:30", "f"), absl::CivilMinute(2026, 12, 24, 18, 30));
  EXPECT_EQ(*ParseLocalTime("2026-12-25", "f"), absl::CivilMinute(2026, 12, 25, 0, 0));
  EXPECT_EQ(FormatLocalTime(absl::CivilMinute(2026, 1, 2, 3, 4)), "2026-01-02T03:04");
  for (const char* bad :
       {"", "2026-02-30", "2026-12-24 18:30", "2026-12-24T18:30:00", "tomorrow"}) {
    absl::StatusOr<absl::CivilMinute> parsed = ParseLocalTime(bad, "special_days[0].start");
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(parsed.status().message(), HasSubstr("special_days[0].start")) << bad;
  }
}

TEST(ScheduleValidationTest, NamesTheField) {
  struct Case {
    ScheduleSpec spec;
    std::string field;
  };
  std::vector<WeeklyInterval> too_many;
  for (int i = 0; i <= kMaxWeeklyIntervals; ++i) {
    too_many.push_back({absl::Weekday::monday, i, i + 1});
  }
  std::vector<SpecialPeriod> too_many_special;
  for (int i = 0; i <= kMaxSpecialPeriods; ++i) {
    const absl::CivilMinute start(2030, 1, 1, 0, 0);
    too_many_special.push_back({start + i * 10, start + i * 10 + 5, false});
  }
  const std::vector<Case> cases = {
      {{"", {}, {}}, "time_zone"},
      {{"Mars/Olympus_Mons", {}, {}}, "time_zone"},
      {{"UTC", {Hours(absl::Weekday::monday, "09:00", "09:00")}, {}}, "weekly_hours[0].end_time"},
      {{"UTC", {{absl::Weekday::monday, 1440, 60}}, {}}, "weekly_hours[0].start_time"},
      {{"UTC", {{absl::Weekday::monday, 60, 1441}}, {}}, "weekly_hours[0].end_time"},
      // Overlap on one day.
      {{"UTC",
        {Hours(absl::Weekday::tuesday, "09:00", "12:00"),
         Hours(absl::Weekday::tuesday, "11:00", "13:00")},
        {}},
       "weekly_hours[1]"},
      // A night shift overlapping the next morning's hours.
      {{"UTC",
        {Hours(absl::Weekday::wednesday, "07:00", "12:00"),
         Hours(absl::Weekday::tuesday, "22:00", "08:00")},
        {}},
       "weekly_hours[1]"},
      // Sunday night wraps into Monday morning.
      {{"UTC",
        {Hours(absl::Weekday::monday, "00:00", "09:00"),
         Hours(absl::Weekday::sunday, "20:00", "01:00")},
        {}},
       "weekly_hours[1]"},
      {{"UTC", too_many, {}}, "weekly_hours"},
      {{"UTC", {}, {{Local("2026-12-25T00:00"), Local("2026-12-25T00:00"), false}}},
       "special_days[0].end"},
      {{"UTC", {}, {{Local("1999-12-25T00:00"), Local("1999-12-26T00:00"), false}}},
       "special_days[0].start"},
      {{"UTC", {}, {{Local("2026-01-01T00:00"), Local("2027-06-01T00:00"), false}}},
       "special_days[0].end"},
      {{"UTC",
        {},
        {{Local("2026-12-24T00:00"), Local("2026-12-26T00:00"), false},
         {Local("2026-12-25T10:00"), Local("2026-12-25T12:00"), true}}},
       "special_days[1]"},
      {{"UTC", {}, too_many_special}, "special_days"},
  };
  for (const Case& c : cases) {
    const absl::Status status = CreateError(c.spec);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field)) << status;
  }
}

TEST(ScheduleValidationTest, AcceptsAdjacentIntervalsAndAWholeDay) {
  EXPECT_TRUE(Schedule::Create({"Europe/Berlin",
                                {Hours(absl::Weekday::monday, "00:00", "24:00"),
                                 Hours(absl::Weekday::tuesday, "00:00", "12:00"),
                                 Hours(absl::Weekday::tuesday, "12:00", "18:00"),
                                 Hours(absl::Weekday::sunday, "22:00", "00:00")},
                                {}})
                  .ok());
}

// Asia/Shanghai is UTC+8 all year: a local morning is the previous UTC day's
// night.
TEST(ScheduleTest, EastOfUtc) {
  const Schedule schedule = Make({"Asia/Shanghai", Weekdays("09:00", "18:00"), {}});
  // Monday 2026-03-02 09:00 in Shanghai is 01:00 UTC.
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-03-02T00:59")));
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-03-02T01:00")));
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-03-02T09:59")));
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-03-02T10:00")));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-02T00:00")), Utc("2026-03-02T01:00"));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-02T01:00")), Utc("2026-03-02T10:00"));
  // Sunday 2026-03-01 20:00 UTC is already Monday 04:00 in Shanghai.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-01T20:00")), Utc("2026-03-02T01:00"));
  // Friday 18:00 local (10:00 UTC) to Monday 09:00 local.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-06T10:00")), Utc("2026-03-09T01:00"));
}

// America/Los_Angeles is UTC-8 in winter: a local Friday afternoon is
// Saturday in UTC.
TEST(ScheduleTest, WestOfUtc) {
  const Schedule schedule = Make({"America/Los_Angeles", Weekdays("09:00", "17:00"), {}});
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-03-07T00:30")));  // Fri 16:30 local
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-03-07T01:00")));  // Fri 17:00 local
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-06T20:00")), Utc("2026-03-07T01:00"));
  // Los Angeles moves to UTC-7 on 2026-03-08: Monday opens an hour earlier
  // in UTC than Friday did.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-07T01:00")), Utc("2026-03-09T16:00"));

  // America/Sao_Paulo has kept UTC-3 all year since 2019.
  const Schedule sao_paulo = Make({"America/Sao_Paulo", Weekdays("08:00", "20:00"), {}});
  EXPECT_TRUE(sao_paulo.IsOpen(Utc("2026-03-06T22:59")));
  EXPECT_FALSE(sao_paulo.IsOpen(Utc("2026-03-06T23:00")));
  EXPECT_EQ(sao_paulo.NextOpening(Utc("2026-07-06T10:00")), Utc("2026-07-06T11:00"));
}

// New York springs forward on Sunday 2026-03-08 (02:00 EST becomes 03:00
// EDT) and falls back on Sunday 2026-11-01 (02:00 EDT becomes 01:00 EST).
TEST(ScheduleTest, DaylightSavingChanges) {
  const Schedule schedule =
      Make({"America/New_York", {Hours(absl::Weekday::sunday, "01:00", "05:00")}, {}});
  // Spring forward: 01:00 EST (06:00Z) to 05:00 EDT (09:00Z) is three hours.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-08T00:00")), Utc("2026-03-08T06:00"));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-08T06:00")), Utc("2026-03-08T09:00"));
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-03-08T00:00"), Utc("2026-03-09T00:00")),
            absl::Hours(3));
  // Fall back: 01:00 EDT (05:00Z) to 05:00 EST (10:00Z) is five hours.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-11-01T00:00")), Utc("2026-11-01T05:00"));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-11-01T05:00")), Utc("2026-11-01T10:00"));
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-11-01T00:00"), Utc("2026-11-02T00:00")),
            absl::Hours(5));
  // An ordinary Sunday: four hours.
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-03-15T00:00"), Utc("2026-03-16T00:00")),
            absl::Hours(4));

  // An opening in the skipped hour opens the same distance after the
  // change: 02:30 does not exist on 2026-03-08, so it opens at 03:30 EDT.
  const Schedule skipped =
      Make({"America/New_York", {Hours(absl::Weekday::sunday, "02:30", "04:00")}, {}});
  EXPECT_FALSE(skipped.IsOpen(Utc("2026-03-08T07:15")));  // 03:15 EDT
  EXPECT_EQ(skipped.NextOpening(Utc("2026-03-08T06:00")), Utc("2026-03-08T07:30"));
  EXPECT_EQ(skipped.NextTransition(Utc("2026-03-08T07:30")), Utc("2026-03-08T08:00"));
  // A repeated local time is its first occurrence: 01:30 EDT.
  const Schedule repeated =
      Make({"America/New_York", {Hours(absl::Weekday::sunday, "01:30", "03:00")}, {}});
  EXPECT_EQ(repeated.NextOpening(Utc("2026-11-01T00:00")), Utc("2026-11-01T05:30"));
  EXPECT_EQ(repeated.NextTransition(Utc("2026-11-01T05:30")), Utc("2026-11-01T08:00"));

  // Europe/Berlin: weekday hours keep their local time across the change on
  // 2026-03-29 (CET, UTC+1, becomes CEST, UTC+2).
  const Schedule berlin = Make({"Europe/Berlin", Weekdays("09:00", "17:00"), {}});
  EXPECT_EQ(berlin.NextOpening(Utc("2026-03-27T16:00")), Utc("2026-03-30T07:00"));
  EXPECT_EQ(berlin.NextTransition(Utc("2026-03-27T08:00")), Utc("2026-03-27T16:00"));
}

TEST(ScheduleTest, IntervalsCrossingMidnight) {
  const Schedule schedule = Make({"Asia/Singapore",
                                  {Hours(absl::Weekday::friday, "22:00", "06:00"),
                                   Hours(absl::Weekday::sunday, "23:00", "01:00")},
                                  {}});
  // Singapore is UTC+8. Friday 2026-03-06 22:00 local is 14:00Z.
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-03-06T13:59")));
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-03-06T14:00")));
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-03-06T21:59")));  // Saturday 05:59
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-03-06T22:00")));  // Saturday 06:00
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-06T14:00")), Utc("2026-03-06T22:00"));
  // Sunday 23:00 to Monday 01:00 wraps into the next week.
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-07T00:00")), Utc("2026-03-08T15:00"));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-08T15:00")), Utc("2026-03-08T17:00"));
}

TEST(ScheduleTest, AdjacentIntervalsAreOneOpening) {
  const Schedule schedule = Make({"UTC",
                                  {Hours(absl::Weekday::monday, "00:00", "24:00"),
                                   Hours(absl::Weekday::tuesday, "00:00", "12:00"),
                                   Hours(absl::Weekday::tuesday, "12:00", "18:00")},
                                  {}});
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-02T10:00")), Utc("2026-03-03T18:00"));
}

TEST(ScheduleTest, HolidaySpanningMidnight) {
  std::vector<WeeklyInterval> every_day;
  for (absl::Weekday day :
       {absl::Weekday::monday, absl::Weekday::tuesday, absl::Weekday::wednesday,
        absl::Weekday::thursday, absl::Weekday::friday, absl::Weekday::saturday,
        absl::Weekday::sunday}) {
    every_day.push_back(Hours(day, "00:00", "24:00"));
  }
  // Closed from New Year's Eve 18:00 to 2 January 09:00, Shanghai time.
  const Schedule schedule =
      Make({"Asia/Shanghai",
            every_day,
            {{Local("2026-12-31T18:00"), Local("2027-01-02T09:00"), /*open=*/false}}});
  EXPECT_TRUE(schedule.IsOpen(Utc("2026-12-31T09:59")));  // 17:59 local
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-12-31T10:00")));
  EXPECT_FALSE(schedule.IsOpen(Utc("2026-12-31T16:00")));  // midnight local
  EXPECT_FALSE(schedule.IsOpen(Utc("2027-01-02T00:59")));
  EXPECT_TRUE(schedule.IsOpen(Utc("2027-01-02T01:00")));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-12-30T00:00")), Utc("2026-12-31T10:00"));
  EXPECT_EQ(schedule.NextOpening(Utc("2026-12-31T10:00")), Utc("2027-01-02T01:00"));
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-12-31T00:00"), Utc("2027-01-03T00:00")),
            absl::Hours(10) + absl::Hours(23));
}

TEST(ScheduleTest, SpecialOpeningHoursOverrideTheWeek) {
  // Weekdays only, but open on Sunday 2026-03-08 10:00-14:00 for a token
  // launch, and a long holiday masking three weeks of weekday hours.
  const Schedule schedule =
      Make({"Europe/Berlin",
            Weekdays("09:00", "17:00"),
            {{Local("2026-03-08T10:00"), Local("2026-03-08T14:00"), /*open=*/true},
             {Local("2026-07-01T00:00"), Local("2026-07-22T00:00"), /*open=*/false}}});
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-07T12:00")), Utc("2026-03-08T09:00"));
  EXPECT_EQ(schedule.NextTransition(Utc("2026-03-08T09:00")), Utc("2026-03-08T13:00"));
  EXPECT_EQ(schedule.NextOpening(Utc("2026-03-08T13:00")), Utc("2026-03-09T08:00"));
  // 2026-06-30 is a Tuesday; 2026-07-22 a Wednesday (CEST, UTC+2).
  EXPECT_EQ(schedule.NextOpening(Utc("2026-06-30T16:00")), Utc("2026-07-22T07:00"));
}

// A callback requested on Friday evening is booked for Monday morning.
TEST(ScheduleTest, FridayEveningBooksMondayMorning) {
  const Schedule schedule = Make({"Europe/Berlin", Weekdays("09:00", "17:00"), {}});
  // Friday 2026-03-06 19:00 CET.
  const absl::Time friday_evening = Utc("2026-03-06T18:00");
  EXPECT_FALSE(schedule.IsOpen(friday_evening));
  EXPECT_EQ(schedule.NextOpening(friday_evening), Utc("2026-03-09T08:00"));
}

TEST(ScheduleTest, BusinessTime) {
  const Schedule schedule = Make({"Europe/Berlin", Weekdays("09:00", "17:00"), {}});
  // Friday 16:00 CET plus two business hours is Monday 10:00.
  EXPECT_EQ(schedule.AddBusinessTime(Utc("2026-03-06T15:00"), absl::Hours(2)),
            Utc("2026-03-09T09:00"));
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-03-06T15:00"), Utc("2026-03-09T09:00")),
            absl::Hours(2));
  // From Saturday, 48 business hours are six working days: the next
  // Monday to Monday a week later, closing time.
  EXPECT_EQ(schedule.AddBusinessTime(Utc("2026-03-07T12:00"), absl::Hours(48)),
            Utc("2026-03-16T16:00"));
  // Exactly at closing: the next opening's hours count.
  EXPECT_EQ(schedule.AddBusinessTime(Utc("2026-03-06T16:00"), absl::Minutes(1)),
            Utc("2026-03-09T08:01"));
  EXPECT_EQ(schedule.AddBusinessTime(Utc("2026-03-06T16:00"), absl::ZeroDuration()),
            Utc("2026-03-06T16:00"));
  EXPECT_EQ(schedule.BusinessDuration(Utc("2026-03-09T00:00"), Utc("2026-03-08T00:00")),
            absl::ZeroDuration());
}

TEST(ScheduleTest, AlwaysClosedNeverOpens) {
  const Schedule schedule = Make({"Asia/Shanghai", {}, {}});
  const absl::Time t = Utc("2026-03-06T18:00");
  EXPECT_FALSE(schedule.IsOpen(t));
  EXPECT_EQ(schedule.NextOpening(t), std::nullopt);
  EXPECT_EQ(schedule.NextTransition(t), std::nullopt);
  EXPECT_EQ(schedule.AddBusinessTime(t, absl::Hours(1)), std::nullopt);
  EXPECT_EQ(schedule.BusinessDuration(t, t + absl::Hours(24 * 30)), absl::ZeroDuration());

  // Closed but for one special day: it opens then, and never after.
  const Schedule once = Make(
      {"Asia/Shanghai", {}, {{Local("2027-02-01T10:00"), Local("2027-02-01T12:00"), true}}});
  EXPECT_EQ(once.NextOpening(t), Utc("2027-02-01T02:00"));
  EXPECT_EQ(once.NextTransition(Utc("2027-02-01T02:00")), Utc("2027-02-01T04:00"));
  EXPECT_EQ(once.NextOpening(Utc("2027-02-01T04:00")), std::nullopt);
}

TEST(ScheduleTest, AlwaysOpen) {
  const Schedule schedule = Schedule::AlwaysOpen();
  const absl::Time t = Utc("2026-03-06T18:00");
  EXPECT_TRUE(schedule.IsOpen(t));
  EXPECT_EQ(schedule.NextTransition(t), std::nullopt);
  EXPECT_EQ(schedule.NextOpening(t), t);
  EXPECT_EQ(schedule.AddBusinessTime(t, absl::Hours(48)), t + absl::Hours(48));
  EXPECT_EQ(schedule.BusinessDuration(t, t + absl::Hours(3)), absl::Hours(3));
}

}  // namespace
}  // namespace switchboard::routing

namespace switchboard::routing {
namespace {

// Random valid schedules in zones with daylight-saving changes (Lord Howe's
// is half an hour), checked against a minute-by-minute walk of IsOpen:
// NextTransition finds the first change, BusinessDuration and
// AddBusinessTime add up the open minutes.
TEST(ScheduleConsistencyTest, AgreesWithAMinuteByMinuteWalk) {
  std::mt19937 random(20260308);
  auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(random); };
  const absl::Weekday days[] = {absl::Weekday::monday,   absl::Weekday::tuesday,
                                absl::Weekday::wednesday, absl::Weekday::thursday,
                                absl::Weekday::friday,   absl::Weekday::saturday,
                                absl::Weekday::sunday};
  for (const char* zone : {"America/New_York", "Europe/Berlin", "Australia/Lord_Howe",
                           "Asia/Shanghai", "America/Sao_Paulo"}) {
    for (int round = 0; round < 6; ++round) {
      ScheduleSpec spec;
      spec.time_zone = zone;
      for (absl::Weekday day : days) {
        // Mornings between 06:00 and 12:00; evenings from 12:00, possibly
        // into the next day until 05:59: never overlapping.
        if (uniform(0, 2) > 0) {
          const int start = uniform(360, 700);
          spec.weekly.push_back({day, start, uniform(start + 1, 720)});
        }
        if (uniform(0, 2) > 0) {
          const int start = uniform(720, 1380);
          const int end = uniform(0, 3) == 0 ? uniform(0, 359) : uniform(start + 1, 1440);
          spec.weekly.push_back({day, start, end});
        }
      }
      if (round < 2) {
        // Once a week, across midnight: changes a week apart.
        spec.weekly = {{days[uniform(0, 6)], uniform(1200, 1439), uniform(0, 359)}};
      }
      absl::CivilMinute from(2026, 3, uniform(1, 20), uniform(0, 23), 0);
      for (int i = 0; i < uniform(0, 3); ++i) {
        from += uniform(60, 3 * 1440);
        const absl::CivilMinute end = from + uniform(30, 2 * 1440);
        spec.special.push_back({from, end, uniform(0, 1) == 1});
        from = end;
      }
      absl::StatusOr<Schedule> built = Schedule::Create(spec);
      ASSERT_TRUE(built.ok()) << built.status();
      const Schedule& schedule = *built;
      for (int sample = 0; sample < 4; ++sample) {
        const absl::Time t = absl::FromCivil(absl::CivilSecond(2026, 3, uniform(1, 31),
                                                               uniform(0, 23), uniform(0, 59),
                                                               uniform(0, 59)),
                                             absl::UTCTimeZone());
        const bool open = schedule.IsOpen(t);
        // Every change falls on a whole minute (zone offsets are whole
        // minutes): the first boundary after t.
        const absl::Time first_minute =
            absl::UnixEpoch() + absl::Floor(t - absl::UnixEpoch(), absl::Minutes(1)) +
            absl::Minutes(1);
        std::optional<absl::Time> walked;
        absl::Duration open_minutes = absl::ZeroDuration();
        if (open) open_minutes += first_minute - t;
        const absl::Time horizon = first_minute + absl::Hours(24 * 10);
        for (absl::Time m = first_minute; m < horizon; m += absl::Minutes(1)) {
          const bool now_open = schedule.IsOpen(m);
          if (!walked.has_value() && now_open != open) walked = m;
          if (now_open) open_minutes += absl::Minutes(1);
        }
        const std::optional<absl::Time> next = schedule.NextTransition(t);
        if (walked.has_value()) {
          EXPECT_EQ(next, walked) << zone << " at " << t;
        } else {
          EXPECT_TRUE(!next.has_value() || *next >= horizon) << zone << " at " << t;
        }
        EXPECT_EQ(schedule.BusinessDuration(t, horizon), open_minutes) << zone << " at " << t;
        if (open_minutes > absl::Minutes(1)) {
          const std::optional<absl::Time> ends = schedule.AddBusinessTime(t, open_minutes);
          ASSERT_TRUE(ends.has_value()) << zone << " at " << t;
          EXPECT_LE(*ends, horizon);
          EXPECT_EQ(schedule.BusinessDuration(t, *ends), open_minutes) << zone << " at " << t;
        }
      }
    }
  }
}

}  // namespace
}  // namespace switchboard::routing
