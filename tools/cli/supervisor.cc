#include "tools/cli/supervisor.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/protoutil/time.h"
#include "tools/cli/command_line.h"
#include "tools/cli/hours.h"

namespace switchboard::cli {
namespace {

int Begin(Command& command, const std::vector<std::string>& args, size_t positional,
          std::string* token) {
  if (int code = command.Start(args, {}, positional, positional); code >= 0) return code;
  absl::StatusOr<std::string> minted = command.clients->Token(
      auth::Role::kSupervisor, command.common.as.empty() ? "supervisor-1" : command.common.as);
  if (!minted.ok()) return command.BadUsage(minted.status());
  *token = *std::move(minted);
  return -1;
}

int Queues(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor queues [--category=C] [--channel=C]");
  std::string category, channel;
  command.flags.Add("category", &category, "only this category");
  command.flags.Add("channel", &channel, "only this channel");
  std::string token;
  if (int code = Begin(command, args, 0, &token); code >= 0) return code;
  routing::v1::GetQueueStatsRequest request;
  if (!category.empty()) {
    absl::StatusOr<int> parsed = ParseEnum(common::v1::Category_descriptor(), "category", category);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_category(static_cast<common::v1::Category>(*parsed));
  }
  if (!channel.empty()) {
    absl::StatusOr<int> parsed = ParseEnum(common::v1::Channel_descriptor(), "channel", channel);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_channel(static_cast<common::v1::Channel>(*parsed));
  }
  routing::v1::GetQueueStatsResponse response;
  absl::Status status = FromGrpc(command.clients->routing->GetQueueStats(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  for (const auto& queue : response.queues()) command.printer->Print(queue, FormatQueue(queue));
  if (response.queues_size() == 0) command.printer->Text("no queues yet");
  return kExitOk;
}

int Agents(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor agents [--status=online]");
  std::string status_name;
  command.flags.Add("status", &status_name, "only agents with this status");
  std::string token;
  if (int code = Begin(command, args, 0, &token); code >= 0) return code;
  presence::v1::ListAgentsRequest request;
  if (!status_name.empty()) {
    absl::StatusOr<int> parsed =
        ParseEnum(presence::v1::AgentStatus_descriptor(), "status", status_name);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_status(static_cast<presence::v1::AgentStatus>(*parsed));
  }
  request.set_page_size(500);
  int count = 0;
  do {
    presence::v1::ListAgentsResponse response;
    absl::Status status = FromGrpc(command.clients->presence->ListAgents(
        command.clients->Context(token).get(), request, &response));
    if (!status.ok()) return command.printer->Fail(status);
    for (const auto& agent : response.agents()) {
      command.printer->Print(agent, FormatAgent(agent));
      ++count;
    }
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  if (count == 0) command.printer->Text("no agents");
  return kExitOk;
}

int Complaints(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor complaints [--state=open]");
  std::string state;
  command.flags.Add("state", &state, "only complaints in these states, e.g. open,acknowledged");
  std::string token;
  if (int code = Begin(command, args, 0, &token); code >= 0) return code;
  feedback::v1::ListComplaintsRequest request;
  absl::StatusOr<std::vector<int>> states =
      ParseEnumList(feedback::v1::ComplaintState_descriptor(), "state", state);
  if (!states.ok()) return command.BadUsage(states.status());
  for (int value : *states) request.add_states(static_cast<feedback::v1::ComplaintState>(value));
  request.set_page_size(200);
  int count = 0;
  do {
    feedback::v1::ListComplaintsResponse response;
    absl::Status status = FromGrpc(command.clients->feedback->ListComplaints(
        command.clients->Context(token).get(), request, &response));
    if (!status.ok()) return command.printer->Fail(status);
    for (const auto& complaint : response.complaints()) {
      command.printer->Print(complaint, FormatComplaint(complaint));
      ++count;
    }
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  if (count == 0) command.printer->Text("no complaints");
  return kExitOk;
}

int Summary(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor summary [--since=24h] [--by=agent|category|channel]");
  absl::Duration since = absl::Hours(24);
  std::string by;
  command.flags.Add("since", &since, "the window: this long back from now (at most 366 days)");
  command.flags.Add("by", &by, "group by agent, category or channel");
  std::string token;
  if (int code = Begin(command, args, 0, &token); code >= 0) return code;
  feedback::v1::GetSummaryRequest request;
  protoutil::ToTimestamp(absl::Now() - since, request.mutable_start_time());
  if (!by.empty()) {
    absl::StatusOr<int> parsed = ParseEnum(feedback::v1::SummaryGrouping_descriptor(), "by", by);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_group_by(static_cast<feedback::v1::SummaryGrouping>(*parsed));
  }
  do {
    feedback::v1::GetSummaryResponse response;
    absl::Status status = FromGrpc(command.clients->feedback->GetSummary(
        command.clients->Context(token).get(), request, &response));
    if (!status.ok()) return command.printer->Fail(status);
    if (request.page_token().empty()) {
      command.printer->Print(response,
                             absl::StrCat("last ", HumanDuration(since), ": ",
                                          FormatSummary(response.total())));
    } else {
      command.printer->Print(response, "");
    }
    for (const auto& group : response.groups()) {
      const std::string key =
          !group.agent_id().empty() ? absl::StrCat("agent ", group.agent_id())
          : group.category() != common::v1::CATEGORY_UNSPECIFIED
              ? EnumLabel(common::v1::Category_descriptor(), group.category())
          : group.channel() != common::v1::CHANNEL_UNSPECIFIED
              ? EnumLabel(common::v1::Channel_descriptor(), group.channel())
              : "(bot only)";
      command.printer->Text(absl::StrCat("-- ", key, ": ", FormatSummary(group.summary())));
    }
    request.set_page_token(response.next_page_token());
  } while (!request.page_token().empty());
  return kExitOk;
}

int Contact(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor contact CUSTOMER (--email=ADDRESS | --sms=+NUMBER)"
                      " [--language=en]");
  std::string email, sms;
  command.flags.Add("email", &email, "where the customer's email codes go");
  command.flags.Add("sms", &sms, "where the customer's SMS codes go (E.164)");
  std::string language;
  command.flags.Add("language", &language, "language of the notice to the customer: en or zh-CN");
  std::string token;
  if (int code = Begin(command, args, 1, &token); code >= 0) return code;
  if (email.empty() == sms.empty()) {
    return command.BadUsage(absl::InvalidArgumentError("give exactly one of --email, --sms"));
  }
  identity::v1::RegisterContactRequest request;
  request.set_customer_id(command.positional[0]);
  request.set_method(email.empty() ? common::v1::VERIFICATION_METHOD_SMS_OTP
                                   : common::v1::VERIFICATION_METHOD_EMAIL_OTP);
  request.set_address(email.empty() ? sms : email);
  request.set_language(language);
  identity::v1::RegisterContactResponse response;
  absl::Status status = FromGrpc(command.clients->identity->RegisterContact(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  if (response.has_pending_change()) {
    command.printer->Print(response, FormatAccountChange(response.pending_change()));
    command.printer->Note(
        "the customer was notified and may confirm or cancel it; it applies by itself when "
        "the cool-down ends");
  } else {
    command.printer->Print(response, absl::StrCat("contact of ", command.positional[0],
                                                  " unchanged"));
  }
  return kExitOk;
}

int Profile(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard supervisor profile AGENT [--categories=deposit,withdrawal] "
                  "[--languages=en] [--capacity=chat:3] [--name=NAME]");
  std::string categories = "general,deposit,withdrawal,trading,kyc,technical";
  std::string languages = "en", capacity = "chat:3", name;
  command.flags.Add("categories", &categories, "categories the agent handles, comma-separated");
  command.flags.Add("languages", &languages, "languages spoken, comma-separated BCP 47 tags");
  command.flags.Add("capacity", &capacity,
                    "the most sessions at once per channel, e.g. chat:3,email:5");
  command.flags.Add("name", &name, "display name; empty means the agent id");
  std::string token;
  if (int code = Begin(command, args, 1, &token); code >= 0) return code;
  const std::string& agent = command.positional[0];
  presence::v1::SetAgentProfileRequest request;
  request.set_agent_id(agent);
  presence::v1::AgentProfile* profile = request.mutable_profile();
  profile->set_display_name(name.empty() ? agent : name);
  absl::StatusOr<std::vector<int>> parsed_categories =
      ParseEnumList(common::v1::Category_descriptor(), "categories", categories);
  if (!parsed_categories.ok()) return command.BadUsage(parsed_categories.status());
  for (int category : *parsed_categories) {
    profile->mutable_skills()->add_categories(static_cast<common::v1::Category>(category));
  }
  for (absl::string_view language : absl::StrSplit(languages, ',', absl::SkipWhitespace())) {
    profile->mutable_skills()->add_languages(std::string(language));
  }
  absl::StatusOr<std::vector<std::pair<std::string, int>>> capacities =
      ParseNamedCounts("capacity", capacity);
  if (!capacities.ok()) return command.BadUsage(capacities.status());
  for (const auto& [channel_name, count] : *capacities) {
    absl::StatusOr<int> channel =
        ParseEnum(common::v1::Channel_descriptor(), "capacity", channel_name);
    if (!channel.ok()) return command.BadUsage(channel.status());
    presence::v1::ChannelCapacity* item = profile->add_capacities();
    item->set_channel(static_cast<common::v1::Channel>(*channel));
    item->set_capacity(count);
  }
  presence::v1::SetAgentProfileResponse response;
  absl::Status status = FromGrpc(command.clients->presence->SetAgentProfile(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatAgent(response.agent()));
  return kExitOk;
}

// `hours set SCHEDULE ...`: creates or replaces a schedule.
int HoursSet(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard supervisor hours set SCHEDULE --zone=Europe/Berlin "
                  "--weekly=mon-fri=09:00-17:00 [--closed=2026-12-25,START/END] "
                  "[--open=START/END] [--applies_to=phone,chat/deposit/zh] [--name=NAME] "
                  "[--expected_version=N]");
  std::string zone, weekly, closed, open, applies_to, name, expected_version;
  command.flags.Add("zone", &zone, "IANA time zone of the hours, e.g. Asia/Shanghai");
  command.flags.Add("weekly", &weekly,
                    "weekly hours: DAYS=HH:MM-HH:MM, comma-separated (mon-fri=09:00-17:00)");
  command.flags.Add("closed", &closed,
                    "holidays: dates or local START/END, comma-separated");
  command.flags.Add("open", &open, "special opening hours: local START/END, comma-separated");
  command.flags.Add("applies_to", &applies_to,
                    "queues: CHANNEL[/CATEGORY[/LANGUAGE]], '*' for any, comma-separated");
  command.flags.Add("name", &name, "a name for people");
  command.flags.Add("expected_version", &expected_version,
                    "change only if the schedule is at this version (0: create only)");
  std::string token;
  if (int code = Begin(command, args, 1, &token); code >= 0) return code;
  routing::v1::SetScheduleRequest request;
  routing::v1::Schedule* schedule = request.mutable_schedule();
  schedule->set_schedule_id(command.positional[0]);
  schedule->set_time_zone(zone);
  schedule->set_display_name(name);
  for (absl::Status s : {ParseWeekly(weekly, schedule), ParseSpecialDays(closed, false, schedule),
                         ParseSpecialDays(open, true, schedule),
                         ParseAppliesTo(applies_to, schedule)}) {
    if (!s.ok()) return command.BadUsage(s);
  }
  if (!expected_version.empty()) {
    int64_t version = 0;
    if (!absl::SimpleAtoi(expected_version, &version) || version < 0) {
      return command.BadUsage(
          absl::InvalidArgumentError("--expected_version: a version number, 0 or more"));
    }
    request.set_expected_version(version);
  }
  routing::v1::SetScheduleResponse response;
  absl::Status status = FromGrpc(command.clients->routing->SetSchedule(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatSchedule(response.schedule()));
  return kExitOk;
}

// `hours show [SCHEDULE]`: one schedule with whether it is open now, or all.
int HoursShow(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard supervisor hours show [SCHEDULE]");
  std::string token;
  if (int code = command.Start(args, {}, 0, 1); code >= 0) return code;
  absl::StatusOr<std::string> minted = command.clients->Token(
      auth::Role::kSupervisor, command.common.as.empty() ? "supervisor-1" : command.common.as);
  if (!minted.ok()) return command.BadUsage(minted.status());
  token = *std::move(minted);
  if (!command.positional.empty()) {
    routing::v1::GetScheduleRequest request;
    request.set_schedule_id(command.positional[0]);
    routing::v1::GetScheduleResponse response;
    absl::Status status = FromGrpc(command.clients->routing->GetSchedule(
        command.clients->Context(token).get(), request, &response));
    if (!status.ok()) return command.printer->Fail(status);
    std::string now = response.open() ? "open now" : "closed now";
    if (response.has_next_transition_at()) {
      absl::StrAppend(&now, response.open() ? ", closes " : ", opens ",
                      absl::FormatTime("%Y-%m-%d %H:%M UTC",
                                       protoutil::FromTimestamp(response.next_transition_at()),
                                       absl::UTCTimeZone()));
    }
    command.printer->Print(response,
                           absl::StrCat(FormatSchedule(response.schedule()), "\n  ", now));
    return kExitOk;
  }
  routing::v1::ListSchedulesRequest request;
  int shown = 0;
  while (true) {
    routing::v1::ListSchedulesResponse response;
    absl::Status status = FromGrpc(command.clients->routing->ListSchedules(
        command.clients->Context(token).get(), request, &response));
    if (!status.ok()) return command.printer->Fail(status);
    for (const routing::v1::Schedule& schedule : response.schedules()) {
      command.printer->Print(schedule, FormatSchedule(schedule));
      ++shown;
    }
    if (response.next_page_token().empty()) break;
    request.set_page_token(response.next_page_token());
  }
  if (shown == 0) command.printer->Text("no schedules: every queue is always open");
  return kExitOk;
}

int Hours(const std::vector<std::string>& args, Io& io) {
  const std::string name = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (name == "set") return HoursSet(rest, io);
  if (name == "show") return HoursShow(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown hours command \"" << name
         << "\"\nusage: switchboard supervisor hours set|show ... (see switchboard help)\n";
  return kExitUsage;
}

}  // namespace

int RunSupervisor(const std::vector<std::string>& args, Io& io) {
  const std::string name = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (name == "queues") return Queues(rest, io);
  if (name == "agents") return Agents(rest, io);
  if (name == "complaints") return Complaints(rest, io);
  if (name == "summary") return Summary(rest, io);
  if (name == "contact") return Contact(rest, io);
  if (name == "profile") return Profile(rest, io);
  if (name == "hours") return Hours(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown supervisor command \"" << name
         << "\"\nusage: switchboard supervisor queues|agents|complaints|summary|contact|"
            "profile|hours ... (see switchboard help)\n";
  return kExitUsage;
}

}  // namespace switchboard::cli
