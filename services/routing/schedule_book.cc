#include "services/routing/schedule_book.h"

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "libs/events/envelope.h"
#include "libs/protoutil/time.h"
#include "libs/validation/validation.h"
#include "services/routing/eligibility.h"

namespace switchboard::routing {
namespace {

constexpr size_t kMaxText = 200;
constexpr size_t kMaxScheduleId = 64;

absl::Weekday ToWeekday(v1::DayOfWeek day) {
  switch (day) {
    case v1::DAY_OF_WEEK_TUESDAY:
      return absl::Weekday::tuesday;
    case v1::DAY_OF_WEEK_WEDNESDAY:
      return absl::Weekday::wednesday;
    case v1::DAY_OF_WEEK_THURSDAY:
      return absl::Weekday::thursday;
    case v1::DAY_OF_WEEK_FRIDAY:
      return absl::Weekday::friday;
    case v1::DAY_OF_WEEK_SATURDAY:
      return absl::Weekday::saturday;
    case v1::DAY_OF_WEEK_SUNDAY:
      return absl::Weekday::sunday;
    default:
      return absl::Weekday::monday;
  }
}

bool IsLanguageSubtag(const std::string& language) {
  if (language.size() < 2 || language.size() > 35) return false;
  for (char c : language) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
  }
  return absl::ascii_isalpha(static_cast<unsigned char>(language[0]));
}

// Specificity of a selector: more fields named wins; between equally many,
// naming the channel, then the category.
int Rank(bool channel, bool category, bool language) {
  return (channel + category + language) * 8 + channel * 4 + category * 2 + language;
}

absl::Status StaleVersion(const std::string& id, int64_t expected, int64_t actual) {
  if (actual == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "expected_version: schedule ", id, " does not exist (expected version ", expected, ")"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("expected_version: schedule ", id, " is at version ", actual,
                   ", not ", expected, " (someone changed it; read it again)"));
}

}  // namespace

absl::StatusOr<Schedule> BuildSchedule(v1::Schedule& schedule) {
  if (absl::Status s = validation::ValidateId("schedule_id", schedule.schedule_id(),
                                              kMaxScheduleId);
      !s.ok()) {
    return s;
  }
  for (char c : schedule.schedule_id()) {
    if (c == '@' || c == ':') {
      return absl::InvalidArgumentError(
          "schedule_id: letters, digits, '.', '_' and '-' only");
    }
  }
  if (absl::Status s = validation::ValidateText("display_name", schedule.display_name(), kMaxText);
      !s.ok()) {
    return s;
  }
  ScheduleSpec spec;
  spec.time_zone = schedule.time_zone();
  // Counts are checked by Schedule::Create too; checking here first keeps a
  // huge request from being parsed field by field.
  if (schedule.weekly_hours_size() > kMaxWeeklyIntervals) {
    return absl::InvalidArgumentError(
        absl::StrCat("weekly_hours: at most ", kMaxWeeklyIntervals, " intervals"));
  }
  if (schedule.special_days_size() > kMaxSpecialPeriods) {
    return absl::InvalidArgumentError(
        absl::StrCat("special_days: at most ", kMaxSpecialPeriods, " periods"));
  }
  for (int i = 0; i < schedule.weekly_hours_size(); ++i) {
    const v1::WeeklyHours& hours = schedule.weekly_hours(i);
    const std::string field = absl::StrCat("weekly_hours[", i, "]");
    if (hours.day() == v1::DAY_OF_WEEK_UNSPECIFIED || !v1::DayOfWeek_IsValid(hours.day())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".day: required, DAY_OF_WEEK_MONDAY to DAY_OF_WEEK_SUNDAY"));
    }
    absl::StatusOr<int> start = ParseTimeOfDay(hours.start_time(), field + ".start_time");
    if (!start.ok()) return start.status();
    absl::StatusOr<int> end = ParseTimeOfDay(hours.end_time(), field + ".end_time");
    if (!end.ok()) return end.status();
    spec.weekly.push_back({ToWeekday(hours.day()), *start, *end});
  }
  for (int i = 0; i < schedule.special_days_size(); ++i) {
    const v1::SpecialDay& day = schedule.special_days(i);
    const std::string field = absl::StrCat("special_days[", i, "]");
    absl::StatusOr<absl::CivilMinute> start = ParseLocalTime(day.start(), field + ".start");
    if (!start.ok()) return start.status();
    absl::CivilMinute end;
    if (day.end().empty()) {
      end = absl::CivilMinute(absl::CivilDay(*start) + 1);
    } else {
      absl::StatusOr<absl::CivilMinute> parsed = ParseLocalTime(day.end(), field + ".end");
      if (!parsed.ok()) return parsed.status();
      end = *parsed;
    }
    if (absl::Status s =
            validation::ValidateText(field + ".description", day.description(), kMaxText);
        !s.ok()) {
      return s;
    }
    spec.special.push_back({*start, end, day.open()});
  }
  if (schedule.applies_to_size() > kMaxSelectorsPerSchedule) {
    return absl::InvalidArgumentError(
        absl::StrCat("applies_to: at most ", kMaxSelectorsPerSchedule, " selectors"));
  }
  std::set<std::tuple<int, int, std::string>> seen;
  for (int i = 0; i < schedule.applies_to_size(); ++i) {
    v1::QueueSelector& selector = *schedule.mutable_applies_to(i);
    const std::string field = absl::StrCat("applies_to[", i, "]");
    if (!common::v1::Channel_IsValid(selector.channel())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".channel: unknown channel ", selector.channel()));
    }
    if (!common::v1::Category_IsValid(selector.category())) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".category: unknown category ", selector.category()));
    }
    if (!selector.language().empty()) {
      if (!IsLanguageSubtag(selector.language())) {
        return absl::InvalidArgumentError(
            absl::StrCat(field, ".language: a BCP 47 tag such as en or zh, or empty for any"));
      }
      selector.set_language(PrimaryLanguage(selector.language()));
    }
    if (!seen.emplace(selector.channel(), selector.category(), selector.language()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": repeats an earlier selector of this schedule"));
    }
  }
  return Schedule::Create(std::move(spec));
}

ScheduleBook::ScheduleBook(RoutingStore* store, Clock* clock, std::function<void()> on_change)
    : store_(store),
      clock_(clock),
      on_change_(std::move(on_change)),
      commits_("routing", storage::OrderedCommits::FailedWrite::kStoreError) {}

absl::Status ScheduleBook::Load() {
  absl::StatusOr<RoutingStore::ScheduleContents> contents = store_->LoadSchedules();
  if (!contents.ok()) return contents.status();
  absl::MutexLock lock(&mu_);
  version_ = contents->version;
  for (v1::Schedule& proto : contents->schedules) {
    absl::StatusOr<Schedule> schedule = BuildSchedule(proto);
    if (!schedule.ok()) {
      return absl::DataLossError(absl::StrCat("routing.db: stored schedule ", proto.schedule_id(),
                                              " no longer validates: ",
                                              schedule.status().message()));
    }
    version_ = std::max(version_, proto.version());
    Record record{std::move(proto), std::make_shared<const Schedule>(std::move(*schedule))};
    Index(record);
    std::string id = record.proto.schedule_id();
    schedules_.emplace(std::move(id), std::move(record));
  }
  return absl::OkStatus();
}

void ScheduleBook::Index(const Record& record) {
  for (const v1::QueueSelector& s : record.proto.applies_to()) {
    selectors_[{s.channel(), s.category(), s.language()}] = record.proto.schedule_id();
  }
}

void ScheduleBook::Unindex(const v1::Schedule& schedule) {
  for (const v1::QueueSelector& s : schedule.applies_to()) {
    selectors_.erase({s.channel(), s.category(), s.language()});
  }
}

absl::Status ScheduleBook::Commit(RoutingWrite write) {
  return commits_.Await(commits_.Commit(*store_, std::move(write)));
}

absl::StatusOr<v1::Schedule> ScheduleBook::Set(v1::Schedule proto,
                                               std::optional<int64_t> expected_version,
                                               const std::string& actor_id) {
  absl::StatusOr<Schedule> schedule = BuildSchedule(proto);
  if (!schedule.ok()) return schedule.status();
  if (absl::Status s = store_->Admit(); !s.ok()) return s;

  absl::MutexLock write_lock(&write_mu_);
  const absl::Time now = clock_->Now();
  RoutingWrite write;
  {
    absl::MutexLock lock(&mu_);
    const std::string& id = proto.schedule_id();
    auto existing = schedules_.find(id);
    const int64_t current = existing == schedules_.end() ? 0 : existing->second.proto.version();
    if (expected_version.has_value() && *expected_version != current) {
      if (*expected_version == 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "expected_version: 0 asks to create schedule ", id, ", which exists at version ",
            current));
      }
      return StaleVersion(id, *expected_version, current);
    }
    if (existing == schedules_.end() && static_cast<int>(schedules_.size()) >= kMaxSchedules) {
      return absl::FailedPreconditionError(
          absl::StrCat("schedule_id: at most ", kMaxSchedules,
                       " schedules; delete one or extend an existing one"));
    }
    for (int i = 0; i < proto.applies_to_size(); ++i) {
      const v1::QueueSelector& s = proto.applies_to(i);
      auto owner = selectors_.find({s.channel(), s.category(), s.language()});
      if (owner != selectors_.end() && owner->second != id) {
        return absl::FailedPreconditionError(
            absl::StrCat("applies_to[", i, "]: this selector belongs to schedule ",
                         owner->second, "; remove it there first"));
      }
    }
    proto.set_version(version_ + 1);
  }
  protoutil::ToTimestamp(now, proto.mutable_updated_at());
  proto.set_updated_by(actor_id);

  events::v1::Event event;
  auto* changed = event.mutable_schedule_changed();
  changed->set_schedule_id(proto.schedule_id());
  changed->set_version(proto.version());
  changed->set_actor_id(actor_id);
  *changed->mutable_schedule() = proto;
  events::Seal(event, "routing", proto.schedule_id(), now).IgnoreError();
  write.events.push_back(std::move(event));
  write.schedules.push_back(proto);
  write.schedule_version = proto.version();
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;

  {
    absl::MutexLock lock(&mu_);
    auto existing = schedules_.find(proto.schedule_id());
    if (existing != schedules_.end()) {
      Unindex(existing->second.proto);
      schedules_.erase(existing);
    }
    version_ = proto.version();
    Record record{proto, std::make_shared<const Schedule>(std::move(*schedule))};
    Index(record);
    schedules_.emplace(proto.schedule_id(), std::move(record));
  }
  if (on_change_) on_change_();
  return proto;
}

absl::StatusOr<bool> ScheduleBook::Delete(const std::string& schedule_id,
                                          std::optional<int64_t> expected_version,
                                          const std::string& actor_id) {
  if (absl::Status s = validation::ValidateId("schedule_id", schedule_id, kMaxScheduleId);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = store_->Admit(); !s.ok()) return s;
  absl::MutexLock write_lock(&write_mu_);
  const absl::Time now = clock_->Now();
  v1::Schedule deleted;
  int64_t version = 0;
  {
    absl::MutexLock lock(&mu_);
    auto existing = schedules_.find(schedule_id);
    const int64_t current = existing == schedules_.end() ? 0 : existing->second.proto.version();
    if (expected_version.has_value() && *expected_version != current) {
      return StaleVersion(schedule_id, *expected_version, current);
    }
    if (existing == schedules_.end()) return false;
    deleted = existing->second.proto;
    version = version_ + 1;
  }
  events::v1::Event event;
  auto* changed = event.mutable_schedule_changed();
  changed->set_schedule_id(schedule_id);
  changed->set_version(version);
  changed->set_actor_id(actor_id);
  changed->set_deleted(true);
  *changed->mutable_schedule() = deleted;
  events::Seal(event, "routing", schedule_id, now).IgnoreError();
  RoutingWrite write;
  write.events.push_back(std::move(event));
  write.deleted_schedules.push_back(schedule_id);
  write.schedule_version = version;
  if (absl::Status s = Commit(std::move(write)); !s.ok()) return s;
  {
    absl::MutexLock lock(&mu_);
    Unindex(deleted);
    schedules_.erase(schedule_id);
    version_ = version;
  }
  if (on_change_) on_change_();
  return true;
}

absl::StatusOr<v1::Schedule> ScheduleBook::Get(const std::string& schedule_id) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = schedules_.find(schedule_id);
  if (it == schedules_.end()) {
    return absl::NotFoundError(absl::StrCat("schedule_id: no schedule ", schedule_id));
  }
  return it->second.proto;
}

std::vector<v1::Schedule> ScheduleBook::List(const std::string& after, size_t limit,
                                             bool* more) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<v1::Schedule> out;
  *more = false;
  for (auto it = schedules_.upper_bound(after); it != schedules_.end(); ++it) {
    if (out.size() == limit) {
      *more = true;
      break;
    }
    out.push_back(it->second.proto);
  }
  return out;
}

Governing ScheduleBook::For(const QueueId& queue) const {
  if (queue.kind == v1::ENTRY_KIND_COMPLAINT) return {};
  absl::ReaderMutexLock lock(&mu_);
  int best_rank = -1;
  const std::string* best = nullptr;
  for (bool channel : {false, true}) {
    for (bool category : {false, true}) {
      for (bool language : {false, true}) {
        const int rank = Rank(channel, category, language);
        if (rank <= best_rank) continue;
        auto it = selectors_.find({channel ? queue.channel : common::v1::CHANNEL_UNSPECIFIED,
                                   category ? queue.category : common::v1::CATEGORY_UNSPECIFIED,
                                   language ? queue.language : std::string()});
        if (it == selectors_.end()) continue;
        best_rank = rank;
        best = &it->second;
      }
    }
  }
  if (best == nullptr) return {};
  const Record& record = schedules_.at(*best);
  return {record.schedule, record.proto.schedule_id(), record.proto.version()};
}

v1::QueueHours ScheduleBook::HoursOf(const QueueId& queue, absl::Time now) const {
  const Governing governing = For(queue);
  v1::QueueHours hours;
  if (governing.schedule == nullptr) {
    hours.set_open(true);
    protoutil::ToTimestamp(now, hours.mutable_next_opening_at());
    return hours;
  }
  const Schedule& schedule = *governing.schedule;
  hours.set_schedule_id(governing.schedule_id);
  hours.set_schedule_version(governing.version);
  hours.set_time_zone(schedule.spec().time_zone);
  hours.set_open(schedule.IsOpen(now));
  if (std::optional<absl::Time> next = schedule.NextTransition(now); next.has_value()) {
    protoutil::ToTimestamp(*next, hours.mutable_next_transition_at());
  }
  if (hours.open()) {
    protoutil::ToTimestamp(now, hours.mutable_next_opening_at());
  } else if (hours.has_next_transition_at()) {
    *hours.mutable_next_opening_at() = hours.next_transition_at();
  }
  return hours;
}

}  // namespace switchboard::routing
