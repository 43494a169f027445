#include "services/routing/schedule_book.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "libs/clock/clock.h"
#include "libs/protoutil/time.h"
#include "libs/storage/group_commit.h"
#include "libs/storage/test_dir.h"
#include "services/routing/held_store.h"
#include "services/routing/sqlite_store.h"

namespace switchboard::routing {
namespace {

using common::v1::CATEGORY_DEPOSIT;
using common::v1::CATEGORY_KYC;
using common::v1::CHANNEL_CHAT;
using common::v1::CHANNEL_EMAIL;
using common::v1::CHANNEL_PHONE;
using ::testing::HasSubstr;

v1::QueueSelector Selector(common::v1::Channel channel, common::v1::Category category,
                           const std::string& language) {
  v1::QueueSelector s;
  s.set_channel(channel);
  s.set_category(category);
  s.set_language(language);
  return s;
}

// Weekdays 09:00-18:00 in Shanghai, for the given queues.
v1::Schedule OfficeHours(const std::string& id, std::vector<v1::QueueSelector> applies_to) {
  v1::Schedule s;
  s.set_schedule_id(id);
  s.set_display_name("Office hours");
  s.set_time_zone("Asia/Shanghai");
  for (v1::DayOfWeek day : {v1::DAY_OF_WEEK_MONDAY, v1::DAY_OF_WEEK_TUESDAY,
                            v1::DAY_OF_WEEK_WEDNESDAY, v1::DAY_OF_WEEK_THURSDAY,
                            v1::DAY_OF_WEEK_FRIDAY}) {
    v1::WeeklyHours* hours = s.add_weekly_hours();
    hours->set_day(day);
    hours->set_start_time("09:00");
    hours->set_end_time("18:00");
  }
  for (v1::QueueSelector& selector : applies_to) *s.add_applies_to() = std::move(selector);
  return s;
}

QueueId Queue(common::v1::Channel channel, common::v1::Category category,
              const std::string& language) {
  return {v1::ENTRY_KIND_SESSION, channel, category, language};
}

class ScheduleBookTest : public ::testing::Test {
 protected:
  ScheduleBookTest() : path_(storage::MakeTempDir() + "/routing.db") {
    // Monday 2026-03-02 12:00 in Shanghai: open.
    clock_.Set(absl::FromCivil(absl::CivilMinute(2026, 3, 2, 4, 0), absl::UTCTimeZone()));
    Open();
  }
  ~ScheduleBookTest() override { Close(); }

  void Open() {
    db_ = *storage::Database::OpenMigrated({path_}, RoutingMigrations());
    committer_ = std::make_unique<storage::GroupCommitter>(db_.get());
    sqlite_ = std::make_unique<SqliteRoutingStore>(committer_.get(), "switchboard.routing.v1",
                                                   nullptr);
    store_ = std::make_unique<HeldRoutingStore>(sqlite_.get());
    book_ = std::make_unique<ScheduleBook>(store_.get(), &clock_, [this] { ++changes_; });
    ASSERT_TRUE(book_->Load().ok());
  }

  void Close() {
    book_.reset();
    committer_->Stop();
    store_.reset();
    sqlite_.reset();
    committer_.reset();
    db_.reset();
  }

  // The routing.schedule_changed events in the outbox, oldest first.
  std::vector<events::v1::ScheduleChanged> Events() {
    std::vector<events::v1::ScheduleChanged> out;
    auto reader = storage::Database::Open({path_});
    EXPECT_TRUE(reader.ok());
    auto select = (*reader)->Prepare(
        "SELECT value FROM outbox WHERE type = 'routing.schedule_changed' ORDER BY id");
    EXPECT_TRUE(select.ok());
    while (*select->Step()) {
      events::v1::Event event;
      EXPECT_TRUE(event.ParseFromString(select->ColumnBlob(0)));
      EXPECT_EQ(event.entity_id(), event.schedule_changed().schedule_id());
      out.push_back(event.schedule_changed());
    }
    return out;
  }

  std::string path_;
  FakeClock clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::GroupCommitter> committer_;
  std::unique_ptr<SqliteRoutingStore> sqlite_;
  std::unique_ptr<HeldRoutingStore> store_;
  std::unique_ptr<ScheduleBook> book_;
  int changes_ = 0;
};

TEST_F(ScheduleBookTest, SetVersionsStoresAndEmits) {
  absl::StatusOr<v1::Schedule> set =
      book_->Set(OfficeHours("phone-cn", {Selector(CHANNEL_PHONE, {}, "zh-CN")}), std::nullopt,
                 "sup-1");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->version(), 1);
  EXPECT_EQ(set->updated_by(), "sup-1");
  EXPECT_EQ(protoutil::FromTimestamp(set->updated_at()), clock_.Now());
  // The language is kept as its primary subtag, as queues are.
  EXPECT_EQ(set->applies_to(0).language(), "zh");
  EXPECT_EQ(changes_, 1);

  v1::Schedule changed = *set;
  changed.mutable_weekly_hours(0)->set_end_time("20:00");
  absl::StatusOr<v1::Schedule> second = book_->Set(changed, 1, "sup-2");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->version(), 2);

  const std::vector<events::v1::ScheduleChanged> events = Events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].version(), 1);
  EXPECT_EQ(events[0].actor_id(), "sup-1");
  EXPECT_EQ(events[1].version(), 2);
  EXPECT_EQ(events[1].actor_id(), "sup-2");
  EXPECT_EQ(events[1].schedule().weekly_hours(0).end_time(), "20:00");
  EXPECT_FALSE(events[1].deleted());

  // Durable: a restart reads it back, and versions continue.
  Close();
  Open();
  absl::StatusOr<v1::Schedule> read = book_->Get("phone-cn");
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->version(), 2);
  EXPECT_EQ(read->weekly_hours(0).end_time(), "20:00");
  EXPECT_EQ(book_->For(Queue(CHANNEL_PHONE, CATEGORY_DEPOSIT, "zh")).schedule_id, "phone-cn");
  absl::StatusOr<v1::Schedule> third = book_->Set(*read, 2, "sup-1");
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->version(), 3);
}

TEST_F(ScheduleBookTest, StaleExpectedVersionIsRefused) {
  ASSERT_TRUE(book_->Set(OfficeHours("s", {}), 0, "sup-1").ok());
  // 0 asks to create: it exists now.
  absl::Status create_again = book_->Set(OfficeHours("s", {}), 0, "sup-2").status();
  EXPECT_EQ(create_again.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(create_again.message(), HasSubstr("expected_version"));
  ASSERT_TRUE(book_->Set(OfficeHours("s", {}), 1, "sup-1").ok());
  // A second supervisor still holding version 1 loses.
  absl::Status stale = book_->Set(OfficeHours("s", {}), 1, "sup-2").status();
  EXPECT_EQ(stale.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.message(), HasSubstr("version 2"));
  EXPECT_EQ(book_->Delete("s", 1, "sup-2").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(book_->Get("s")->version(), 2);
  EXPECT_EQ(Events().size(), 2u);
}

TEST_F(ScheduleBookTest, DeleteFallsBackAndNeverReusesVersions) {
  ASSERT_TRUE(book_->Set(OfficeHours("chat", {Selector(CHANNEL_CHAT, {}, "")}), std::nullopt,
                         "sup-1")
                  .ok());
  ASSERT_TRUE(book_->Set(OfficeHours("chat-deposit",
                                     {Selector(CHANNEL_CHAT, CATEGORY_DEPOSIT, "")}),
                         std::nullopt, "sup-1")
                  .ok());
  const QueueId queue = Queue(CHANNEL_CHAT, CATEGORY_DEPOSIT, "en");
  EXPECT_EQ(book_->For(queue).schedule_id, "chat-deposit");
  absl::StatusOr<bool> found = book_->Delete("chat-deposit", 2, "sup-1");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(*found);
  EXPECT_EQ(book_->For(queue).schedule_id, "chat");
  EXPECT_EQ(book_->Get("chat-deposit").status().code(), absl::StatusCode::kNotFound);
  // Idempotent.
  EXPECT_FALSE(*book_->Delete("chat-deposit", std::nullopt, "sup-1"));

  const std::vector<events::v1::ScheduleChanged> events = Events();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_TRUE(events[2].deleted());
  EXPECT_EQ(events[2].version(), 3);
  EXPECT_EQ(events[2].schedule().schedule_id(), "chat-deposit");

  // Re-created after a restart, it does not start again at version 1 (a
  // client holding the old version 1 or 2 cannot overwrite it).
  Close();
  Open();
  EXPECT_EQ(book_->Get("chat-deposit").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<v1::Schedule> again = book_->Set(OfficeHours("chat-deposit", {}), 0, "sup-1");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->version(), 4);
}

TEST_F(ScheduleBookTest, MostSpecificSelectorGoverns) {
  ASSERT_TRUE(book_->Set(OfficeHours("chat", {Selector(CHANNEL_CHAT, {}, "")}), std::nullopt, "s")
                  .ok());
  ASSERT_TRUE(book_->Set(OfficeHours("deposit", {Selector({}, CATEGORY_DEPOSIT, "")}),
                         std::nullopt, "s")
                  .ok());
  ASSERT_TRUE(book_->Set(OfficeHours("deposit-zh", {Selector({}, CATEGORY_DEPOSIT, "zh")}),
                         std::nullopt, "s")
                  .ok());
  ASSERT_TRUE(
      book_->Set(OfficeHours("everything", {Selector({}, {}, "")}), std::nullopt, "s").ok());
  // Two fields beat one.
  EXPECT_EQ(book_->For(Queue(CHANNEL_CHAT, CATEGORY_DEPOSIT, "zh")).schedule_id, "deposit-zh");
  // Between one field each, the channel wins.
  EXPECT_EQ(book_->For(Queue(CHANNEL_CHAT, CATEGORY_DEPOSIT, "en")).schedule_id, "chat");
  EXPECT_EQ(book_->For(Queue(CHANNEL_EMAIL, CATEGORY_DEPOSIT, "en")).schedule_id, "deposit");
  // The catch-all.
  EXPECT_EQ(book_->For(Queue(CHANNEL_EMAIL, CATEGORY_KYC, "en")).schedule_id, "everything");
  // Complaint queues are never scheduled.
  EXPECT_EQ(book_->For({v1::ENTRY_KIND_COMPLAINT, {}, CATEGORY_KYC, ""}).schedule, nullptr);

  ASSERT_TRUE(*book_->Delete("everything", std::nullopt, "s"));
  const Governing none = book_->For(Queue(CHANNEL_EMAIL, CATEGORY_KYC, "en"));
  EXPECT_EQ(none.schedule, nullptr);
  const v1::QueueHours hours = book_->HoursOf(Queue(CHANNEL_EMAIL, CATEGORY_KYC, "en"),
                                              clock_.Now());
  EXPECT_TRUE(hours.open());
  EXPECT_FALSE(hours.has_next_transition_at());
  EXPECT_TRUE(hours.schedule_id().empty());
}

TEST_F(ScheduleBookTest, ASelectorBelongsToOneSchedule) {
  ASSERT_TRUE(book_->Set(OfficeHours("a", {Selector(CHANNEL_PHONE, {}, "")}), std::nullopt, "s")
                  .ok());
  absl::Status taken =
      book_->Set(OfficeHours("b", {Selector(CHANNEL_CHAT, {}, ""),
                                   Selector(CHANNEL_PHONE, {}, "")}),
                 std::nullopt, "s")
          .status();
  EXPECT_EQ(taken.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(taken.message(), HasSubstr("applies_to[1]"));
  EXPECT_THAT(taken.message(), HasSubstr("schedule a"));
  // Moving it: take it off `a`, then give it to `b`.
  ASSERT_TRUE(book_->Set(OfficeHours("a", {}), std::nullopt, "s").ok());
  ASSERT_TRUE(book_->Set(OfficeHours("b", {Selector(CHANNEL_PHONE, {}, "")}), std::nullopt, "s")
                  .ok());
  EXPECT_EQ(book_->For(Queue(CHANNEL_PHONE, CATEGORY_KYC, "en")).schedule_id, "b");
}

TEST_F(ScheduleBookTest, HoursOfAClosedQueue) {
  ASSERT_TRUE(
      book_->Set(OfficeHours("phone", {Selector(CHANNEL_PHONE, {}, "")}), std::nullopt, "s").ok());
  const QueueId queue = Queue(CHANNEL_PHONE, CATEGORY_DEPOSIT, "zh");
  v1::QueueHours open = book_->HoursOf(queue, clock_.Now());
  EXPECT_TRUE(open.open());
  EXPECT_EQ(open.schedule_id(), "phone");
  EXPECT_EQ(open.schedule_version(), 1);
  EXPECT_EQ(open.time_zone(), "Asia/Shanghai");
  // Closes at 18:00 local, 10:00 UTC.
  EXPECT_EQ(protoutil::FromTimestamp(open.next_transition_at()),
            absl::FromCivil(absl::CivilMinute(2026, 3, 2, 10, 0), absl::UTCTimeZone()));
  // Friday 2026-03-06 20:00 local: opens Monday 09:00 local (01:00 UTC).
  const absl::Time friday =
      absl::FromCivil(absl::CivilMinute(2026, 3, 6, 12, 0), absl::UTCTimeZone());
  v1::QueueHours closed = book_->HoursOf(queue, friday);
  EXPECT_FALSE(closed.open());
  EXPECT_EQ(protoutil::FromTimestamp(closed.next_opening_at()),
            absl::FromCivil(absl::CivilMinute(2026, 3, 9, 1, 0), absl::UTCTimeZone()));
  EXPECT_EQ(closed.next_opening_at().seconds(), closed.next_transition_at().seconds());
}

TEST_F(ScheduleBookTest, BadInputNamesTheField) {
  struct Case {
    std::function<void(v1::Schedule&)> edit;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](v1::Schedule& s) { s.set_schedule_id(""); }, "schedule_id"},
      {[](v1::Schedule& s) { s.set_schedule_id("a:b"); }, "schedule_id"},
      {[](v1::Schedule& s) { s.set_time_zone("Asia/Atlantis"); }, "time_zone"},
      {[](v1::Schedule& s) { s.mutable_weekly_hours(1)->set_day(v1::DAY_OF_WEEK_UNSPECIFIED); },
       "weekly_hours[1].day"},
      {[](v1::Schedule& s) { s.mutable_weekly_hours(2)->set_start_time("9am"); },
       "weekly_hours[2].start_time"},
      {[](v1::Schedule& s) { s.mutable_weekly_hours(0)->set_end_time("09:00"); },
       "weekly_hours[0].end_time"},
      {[](v1::Schedule& s) { *s.add_weekly_hours() = s.weekly_hours(0); }, "weekly_hours[5]"},
      {[](v1::Schedule& s) { s.add_special_days()->set_start("2026-13-01"); },
       "special_days[0].start"},
      {[](v1::Schedule& s) {
         auto* day = s.add_special_days();
         day->set_start("2026-10-01");
         day->set_end("2026-09-30");
       },
       "special_days[0].end"},
      {[](v1::Schedule& s) { *s.add_applies_to() = Selector({}, {}, "english!"); },
       "applies_to[0].language"},
      {[](v1::Schedule& s) {
         *s.add_applies_to() = Selector(CHANNEL_CHAT, {}, "en");
         *s.add_applies_to() = Selector(CHANNEL_CHAT, {}, "en-GB");
       },
       "applies_to[1]"},
      {[](v1::Schedule& s) {
         s.add_applies_to()->set_channel(static_cast<common::v1::Channel>(99));
       },
       "applies_to[0].channel"},
  };
  for (const Case& c : cases) {
    v1::Schedule schedule = OfficeHours("s", {});
    c.edit(schedule);
    absl::Status status = book_->Set(schedule, std::nullopt, "sup").status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c.field;
    EXPECT_THAT(status.message(), HasSubstr(c.field)) << status;
  }
  EXPECT_EQ(changes_, 0);
  EXPECT_TRUE(Events().empty());
}

TEST_F(ScheduleBookTest, AFailedCommitChangesNothing) {
  ASSERT_TRUE(book_->Set(OfficeHours("s", {Selector(CHANNEL_CHAT, {}, "")}), std::nullopt, "sup")
                  .ok());
  store_->Break(absl::UnavailableError("disk gone"));
  EXPECT_EQ(book_->Set(OfficeHours("s", {}), std::nullopt, "sup").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(book_->Delete("s", std::nullopt, "sup").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(book_->Get("s")->version(), 1);
  EXPECT_EQ(book_->For(Queue(CHANNEL_CHAT, CATEGORY_KYC, "en")).schedule_id, "s");
  store_->Repair();
  absl::StatusOr<v1::Schedule> next = book_->Set(OfficeHours("s", {}), 1, "sup");
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->version(), 2);
}

TEST_F(ScheduleBookTest, ListsByIdInPages) {
  for (const char* id : {"c", "a", "b"}) {
    ASSERT_TRUE(book_->Set(OfficeHours(id, {}), std::nullopt, "sup").ok());
  }
  bool more = false;
  std::vector<v1::Schedule> page = book_->List("", 2, &more);
  ASSERT_EQ(page.size(), 2u);
  EXPECT_EQ(page[0].schedule_id(), "a");
  EXPECT_EQ(page[1].schedule_id(), "b");
  EXPECT_TRUE(more);
  page = book_->List("b", 2, &more);
  ASSERT_EQ(page.size(), 1u);
  EXPECT_EQ(page[0].schedule_id(), "c");
  EXPECT_FALSE(more);
}

}  // namespace
}  // namespace switchboard::routing
