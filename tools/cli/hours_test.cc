#include "tools/cli/hours.h"

#include "gtest/gtest.h"

namespace switchboard::cli {
namespace {

TEST(HoursTest, ParsesWeeklyRangesAndNights) {
  routing::v1::Schedule schedule;
  ASSERT_TRUE(ParseWeekly("mon-fri=09:00-17:00, sat=10:00-14:00,Fri=22:00-06:00", &schedule).ok());
  ASSERT_EQ(schedule.weekly_hours_size(), 7);
  EXPECT_EQ(schedule.weekly_hours(0).day(), routing::v1::DAY_OF_WEEK_MONDAY);
  EXPECT_EQ(schedule.weekly_hours(4).day(), routing::v1::DAY_OF_WEEK_FRIDAY);
  EXPECT_EQ(schedule.weekly_hours(5).day(), routing::v1::DAY_OF_WEEK_SATURDAY);
  EXPECT_EQ(schedule.weekly_hours(5).start_time(), "10:00");
  EXPECT_EQ(schedule.weekly_hours(6).end_time(), "06:00");
  for (const char* bad :
       {"mon=09:00", "funday=09:00-10:00", "fri-mon=09:00-10:00", "09:00-17:00"}) {
    routing::v1::Schedule ignored;
    absl::Status status = ParseWeekly(bad, &ignored);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(status.message().find("--weekly"), std::string::npos) << status;
  }
}

TEST(HoursTest, ParsesSpecialDaysAndSelectors) {
  routing::v1::Schedule schedule;
  ASSERT_TRUE(ParseSpecialDays("2026-12-25,2026-12-31T18:00/2027-01-02T09:00", false, &schedule)
                  .ok());
  ASSERT_TRUE(ParseSpecialDays("2026-03-08T10:00/2026-03-08T14:00", true, &schedule).ok());
  ASSERT_EQ(schedule.special_days_size(), 3);
  EXPECT_EQ(schedule.special_days(0).start(), "2026-12-25");
  EXPECT_TRUE(schedule.special_days(0).end().empty());
  EXPECT_EQ(schedule.special_days(1).end(), "2027-01-02T09:00");
  EXPECT_FALSE(schedule.special_days(1).open());
  EXPECT_TRUE(schedule.special_days(2).open());

  ASSERT_TRUE(ParseAppliesTo("phone,chat/deposit,*/withdrawal/zh", &schedule).ok());
  ASSERT_EQ(schedule.applies_to_size(), 3);
  EXPECT_EQ(schedule.applies_to(0).channel(), common::v1::CHANNEL_PHONE);
  EXPECT_EQ(schedule.applies_to(0).category(), common::v1::CATEGORY_UNSPECIFIED);
  EXPECT_EQ(schedule.applies_to(1).category(), common::v1::CATEGORY_DEPOSIT);
  EXPECT_EQ(schedule.applies_to(2).channel(), common::v1::CHANNEL_UNSPECIFIED);
  EXPECT_EQ(schedule.applies_to(2).language(), "zh");
  EXPECT_EQ(ParseAppliesTo("fax", &schedule).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseAppliesTo("chat/deposit/en/extra", &schedule).code(),
            absl::StatusCode::kInvalidArgument);

  schedule.set_schedule_id("desk");
  schedule.set_time_zone("Europe/Berlin");
  schedule.set_version(4);
  const std::string text = FormatSchedule(schedule);
  EXPECT_NE(text.find("desk v4 in Europe/Berlin"), std::string::npos) << text;
  EXPECT_NE(text.find("weekly: none (closed)"), std::string::npos) << text;
  EXPECT_NE(text.find("closed 2026-12-31T18:00 to 2027-01-02T09:00"), std::string::npos) << text;
  EXPECT_NE(text.find("queues: phone/*/*, chat/deposit/*, */withdrawal/zh"), std::string::npos)
      << text;
}

}  // namespace
}  // namespace switchboard::cli
