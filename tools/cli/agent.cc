#include "tools/cli/agent.h"

#include <signal.h>

#include <atomic>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "libs/blob/blob_store.h"
#include "libs/protoutil/time.h"
#include "tools/cli/attachment_files.h"
#include "tools/cli/chat.h"
#include "tools/cli/command_line.h"
#include "tools/cli/streams.h"

namespace switchboard::cli {

void BlockStopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

bool WaitForStop(absl::Duration limit) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  const timespec timeout = absl::ToTimespec(std::max(limit, absl::ZeroDuration()));
  return sigtimedwait(&set, nullptr, &timeout) > 0;
}

namespace {

constexpr char kDefaultAgent[] = "agent-1";

int Begin(Command& command, const std::vector<std::string>& args,
          const std::set<std::string>& bools, size_t min_positional, size_t max_positional,
          std::string* token, std::string* subject = nullptr) {
  if (int code = command.Start(args, bools, min_positional, max_positional); code >= 0) {
    return code;
  }
  const std::string as = command.common.as.empty() ? kDefaultAgent : command.common.as;
  absl::StatusOr<std::string> minted = command.clients->Token(auth::Role::kAgent, as);
  if (!minted.ok()) return command.BadUsage(minted.status());
  *token = *std::move(minted);
  if (subject != nullptr) *subject = as;
  return -1;
}

int SetOffline(Command& command, const std::string& token) {
  presence::v1::SetStatusRequest request;
  request.set_status(presence::v1::AGENT_STATUS_OFFLINE);
  presence::v1::SetStatusResponse response;
  absl::Status status = FromGrpc(command.clients->presence->SetStatus(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatAgent(response.agent()));
  return kExitOk;
}

int Online(const std::vector<std::string>& args, Io& io) {
  BlockStopSignals();
  Command command(io,
                  "switchboard agent online [--capacity=chat:2] [--status=online] "
                  "[--auto_accept] [--for=DURATION]");
  std::string capacity, status_name = "online";
  bool auto_accept = false;
  absl::Duration limit = absl::InfiniteDuration();
  command.flags.Add("capacity", &capacity,
                    "take fewer sessions at once than a supervisor allows, per channel, e.g. "
                    "chat:2 (at most the limit; empty keeps the current capacity)");
  command.flags.Add("status", &status_name, "online, away or busy");
  command.flags.Add("auto_accept", &auto_accept, "have routing accept offers automatically");
  command.flags.Add("for", &limit, "stay on this long, then go offline (default: until Ctrl-C)");
  std::string token, agent;
  if (int code = Begin(command, args, {"auto_accept"}, 0, 0, &token, &agent); code >= 0) {
    return code;
  }
  presence::v1::SetStatusRequest request;
  absl::StatusOr<int> status_value =
      ParseEnum(presence::v1::AgentStatus_descriptor(), "status", status_name);
  if (!status_value.ok()) return command.BadUsage(status_value.status());
  if (*status_value == presence::v1::AGENT_STATUS_OFFLINE) {
    return command.BadUsage(absl::InvalidArgumentError(
        "--status: use `switchboard agent offline` to go offline"));
  }
  request.set_status(static_cast<presence::v1::AgentStatus>(*status_value));
  request.set_device_id("switchboard-cli");
  if (!capacity.empty()) {
    absl::StatusOr<std::vector<std::pair<std::string, int>>> capacities =
        ParseNamedCounts("capacity", capacity);
    if (!capacities.ok()) return command.BadUsage(capacities.status());
    for (const auto& [channel_name, count] : *capacities) {
      absl::StatusOr<int> channel =
          ParseEnum(common::v1::Channel_descriptor(), "capacity", channel_name);
      if (!channel.ok()) return command.BadUsage(channel.status());
      presence::v1::ChannelCapacity* item = request.add_capacities();
      item->set_channel(static_cast<common::v1::Channel>(*channel));
      item->set_capacity(count);
    }
  }
  routing::v1::UpdateAgentSettingsRequest settings;
  settings.mutable_settings()->set_auto_accept(auto_accept);
  routing::v1::UpdateAgentSettingsResponse settings_response;
  absl::Status status = FromGrpc(command.clients->routing->UpdateAgentSettings(
      command.clients->Context(token).get(), settings, &settings_response));
  if (!status.ok()) return command.printer->Fail(status);
  presence::v1::SetStatusResponse response;
  status = FromGrpc(command.clients->presence->SetStatus(command.clients->Context(token).get(),
                                                         request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatAgent(response.agent()));
  absl::Duration interval = protoutil::FromDuration(response.heartbeat_interval());
  if (interval <= absl::ZeroDuration()) interval = absl::Seconds(10);
  command.printer->Note(absl::StrCat("heartbeat every ", HumanDuration(interval),
                                     "; Ctrl-C goes offline"));
  const absl::Time until = limit == absl::InfiniteDuration() ? absl::InfiniteFuture()
                                                             : absl::Now() + limit;
  while (absl::Now() < until && !WaitForStop(std::min(interval, until - absl::Now()))) {
    if (absl::Now() >= until) break;
    presence::v1::HeartbeatRequest heartbeat;
    heartbeat.set_device_id("switchboard-cli");
    presence::v1::HeartbeatResponse renewed;
    status = FromGrpc(command.clients->presence->Heartbeat(command.clients->Context(token).get(),
                                                           heartbeat, &renewed));
    if (absl::IsFailedPrecondition(status)) {
      // Someone (a supervisor, another device) set the agent OFFLINE.
      return command.printer->Fail(status);
    }
    if (!status.ok()) {
      command.printer->Note(ErrorLine(status) + " (heartbeat; retrying)");
      continue;
    }
    if (renewed.heartbeat_interval().seconds() > 0) {
      interval = protoutil::FromDuration(renewed.heartbeat_interval());
    }
  }
  return SetOffline(command, token);
}

int Offline(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent offline");
  std::string token;
  if (int code = Begin(command, args, {}, 0, 0, &token); code >= 0) return code;
  return SetOffline(command, token);
}

int Accept(Command& command, const std::string& token, const std::string& offer_id) {
  routing::v1::AcceptOfferRequest request;
  request.set_offer_id(offer_id);
  routing::v1::AcceptOfferResponse response;
  absl::Status status = FromGrpc(command.clients->routing->AcceptOffer(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  const auto& assignment = response.assignment();
  command.printer->Print(
      response,
      absl::StrCat("accepted ", offer_id, ": ",
                   assignment.session_id().empty()
                       ? absl::StrCat("complaint ", assignment.complaint_id())
                       : absl::StrCat("session ", assignment.session_id()),
                   " is yours (waited ",
                   HumanDuration(protoutil::FromDuration(assignment.queue_wait())), ")"));
  return kExitOk;
}

int Offers(const std::vector<std::string>& args, Io& io) {
  BlockStopSignals();
  Command command(io, "switchboard agent offers [--accept] [--for=DURATION]");
  bool accept = false;
  absl::Duration limit = absl::InfiniteDuration();
  command.flags.Add("accept", &accept, "accept every offer as it arrives");
  command.flags.Add("for", &limit, "watch this long (default: until Ctrl-C)");
  std::string token;
  if (int code = Begin(command, args, {"accept"}, 0, 0, &token); code >= 0) return code;
  std::unique_ptr<grpc::ClientContext> context = command.clients->StreamContext(token, limit);
  std::atomic<bool> done{false};
  grpc::Status finished;
  std::thread reader([&] {
    auto stream = command.clients->routing->WatchOffers(context.get(), {});
    routing::v1::WatchOffersResponse response;
    while (stream->Read(&response)) {
      if (response.has_offer()) {
        command.printer->Print(response, FormatOffer(response.offer(), false));
        if (accept && response.offer().outcome() == routing::v1::OFFER_OUTCOME_UNSPECIFIED) {
          Accept(command, token, response.offer().offer_id());
        }
      } else if (response.has_offer_closed()) {
        command.printer->Print(response, FormatOffer(response.offer_closed(), true));
      } else {
        command.printer->Print(response, absl::StrCat("-- ", response.caught_up().open_offers(),
                                                      " open offers; waiting for more"));
      }
    }
    finished = stream->Finish();
    done = true;
  });
  while (!done && !WaitForStop(absl::Milliseconds(200))) {
  }
  context->TryCancel();
  reader.join();
  if (finished.error_code() == grpc::StatusCode::CANCELLED ||
      finished.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return kExitOk;  // Ctrl-C or --for
  }
  if (!finished.ok()) return command.printer->Fail(FromGrpc(finished));
  return kExitOk;
}

int AcceptCommand(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent accept OFFER");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  return Accept(command, token, command.positional[0]);
}

int Decline(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent decline OFFER [--reason=busy]");
  std::string reason;
  command.flags.Add("reason", &reason, "busy, not_my_skill, leaving or other");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  routing::v1::DeclineOfferRequest request;
  request.set_offer_id(command.positional[0]);
  if (!reason.empty()) {
    absl::StatusOr<int> parsed =
        ParseEnum(routing::v1::DeclineReason_descriptor(), "reason", reason);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.set_reason(static_cast<routing::v1::DeclineReason>(*parsed));
  }
  routing::v1::DeclineOfferResponse response;
  absl::Status status = FromGrpc(command.clients->routing->DeclineOffer(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, FormatOffer(response.offer(), true));
  return kExitOk;
}

int Chat(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent chat SESSION [--linger=1s]");
  absl::Duration linger = absl::Seconds(1);
  command.flags.Add("linger", &linger, "after the input ends, keep showing events this long");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  return RunChat(command, token, command.positional[0], linger);
}

int Say(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent say SESSION TEXT");
  std::string token;
  if (int code = Begin(command, args, {}, 2, 2, &token); code >= 0) return code;
  return SendOne(command, token, command.positional[0], command.positional[1]);
}

int Transfer(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard agent transfer SESSION (--category=C [--language=L] | "
                  "--to_agent=ID | --to_bot) [--note=N]");
  std::string category, language, to_agent, note;
  bool to_bot = false;
  command.flags.Add("category", &category, "transfer to this category's queue");
  command.flags.Add("language", &language, "with --category: the queue's language");
  command.flags.Add("to_agent", &to_agent, "transfer to this agent");
  command.flags.Add("to_bot", &to_bot, "hand the session back to the bot");
  command.flags.Add("note", &note, "a note for the next agent");
  std::string token;
  if (int code = Begin(command, args, {"to_bot"}, 1, 1, &token); code >= 0) return code;
  sessions::v1::TransferSessionRequest request;
  request.set_session_id(command.positional[0]);
  const int targets = !category.empty() + !to_agent.empty() + to_bot;
  if (targets != 1) {
    return command.BadUsage(absl::InvalidArgumentError(
        "give exactly one of --category, --to_agent, --to_bot"));
  }
  if (!category.empty()) {
    absl::StatusOr<int> parsed = ParseEnum(common::v1::Category_descriptor(), "category", category);
    if (!parsed.ok()) return command.BadUsage(parsed.status());
    request.mutable_queue()->set_category(static_cast<common::v1::Category>(*parsed));
    request.mutable_queue()->set_language(language);
  } else if (!to_agent.empty()) {
    request.set_agent_id(to_agent);
  } else {
    request.set_to_bot(true);
  }
  request.set_note(note);
  request.set_request_id(NewRequestId());
  sessions::v1::TransferSessionResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->TransferSession(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, absl::StrCat("transferred: ", FormatSession(response.session())));
  return kExitOk;
}

int Resolve(const std::vector<std::string>& args, Io& io) {
  Command command(io, "switchboard agent resolve SESSION [--summary=TEXT]");
  std::string summary;
  command.flags.Add("summary", &summary, "what was done");
  std::string token;
  if (int code = Begin(command, args, {}, 1, 1, &token); code >= 0) return code;
  sessions::v1::ResolveSessionRequest request;
  request.set_session_id(command.positional[0]);
  request.set_resolution_summary(summary);
  request.set_request_id(NewRequestId());
  sessions::v1::ResolveSessionResponse response;
  absl::Status status = FromGrpc(command.clients->sessions->ResolveSession(
      command.clients->Context(token).get(), request, &response));
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Print(response, absl::StrCat("resolved: ", FormatSession(response.session())));
  return kExitOk;
}

// `attachment get SESSION ATTACHMENT`: DownloadAttachment into a file,
// written only once the bytes match the attachment's SHA-256.
int AttachmentGet(const std::vector<std::string>& args, Io& io) {
  Command command(io,
                  "switchboard agent attachment get SESSION ATTACHMENT [--out=PATH] [--force] "
                  "[--url]");
  std::string out;
  bool force = false, url = false;
  command.flags.Add("out", &out, "where to write the file; default: its name, in this folder");
  command.flags.Add("force", &force, "overwrite the file if it exists");
  command.flags.Add("url", &url,
                    "ask for a signed URL instead of the bytes (servers keeping files in an "
                    "object store); printed, not fetched");
  std::string token;
  if (int code = Begin(command, args, {"force", "url"}, 2, 2, &token); code >= 0) return code;
  sessions::v1::DownloadAttachmentRequest request;
  request.set_session_id(command.positional[0]);
  request.set_attachment_id(command.positional[1]);
  request.set_prefer_url(url);
  std::unique_ptr<grpc::ClientContext> context = command.clients->Context(token);
  auto reader = command.clients->sessions->DownloadAttachment(context.get(), request);
  sessions::v1::DownloadAttachmentResponse response;
  if (!reader->Read(&response)) return command.printer->Fail(FromGrpc(reader->Finish()));
  const sessions::v1::Attachment attachment = response.attachment();
  const bool default_name = out.empty();
  if (default_name) out = attachment.file_name();
  const auto writable = [&] {
    absl::Status status = default_name ? CheckLocalName(out) : absl::OkStatus();
    return status.ok() ? CheckNotThere(out, force) : status;
  };
  absl::Status status;
  if (!response.has_attachment()) {
    status = absl::InternalError("the server's first response is not the attachment");
  } else if (!url) {
    status = writable();  // before the bytes come; with a URL no file may be needed
  }
  if (!status.ok()) {
    context->TryCancel();
    while (reader->Read(&response)) {
    }
    reader->Finish();
    return command.printer->Fail(status);
  }
  std::string bytes;
  bool sent_url = false;
  while (reader->Read(&response)) {
    if (response.has_chunk()) {
      bytes += response.chunk();
    } else if (response.has_signed_url()) {
      sent_url = true;
      const sessions::v1::SignedUrl& signed_url = response.signed_url();
      // The URL alone on stdout, for curl -o FILE "$(switchboard ...)".
      command.printer->Print(signed_url, signed_url.url());
      const absl::Time expires = protoutil::FromTimestamp(signed_url.expires_at());
      command.printer->Note(absl::StrCat(
          attachment.file_name(), ": a plain GET of this URL serves it until ",
          absl::FormatTime("%H:%M:%S", expires, absl::LocalTimeZone()), " (in ",
          HumanDuration(expires - absl::Now()), ")"));
    }
  }
  status = FromGrpc(reader->Finish());
  if (!status.ok()) return command.printer->Fail(status);
  if (sent_url) return kExitOk;
  const std::string received = blob::ContentAddress(bytes);
  if (received != absl::AsciiStrToLower(attachment.sha256())) {
    return command.printer->Fail(absl::DataLossError(
        absl::StrCat("the bytes received (", HumanBytes(static_cast<int64_t>(bytes.size())),
                     ") have SHA-256 ", received, ", not the attachment's ", attachment.sha256(),
                     "; nothing written")));
  }
  if (url) status = writable();
  if (status.ok()) status = WriteLocalFile(out, bytes, force);
  if (!status.ok()) return command.printer->Fail(status);
  command.printer->Text(absl::StrCat("wrote ", out, " (SHA-256 checked): ",
                                     FormatAttachment(attachment)));
  command.printer->JsonLine(absl::StrCat("{\"path\":", JsonString(out),
                                         ",\"attachment\":", ToJson(attachment), "}"));
  return kExitOk;
}

int AttachmentCommand(const std::vector<std::string>& args, Io& io) {
  const std::string name = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (name == "get") return AttachmentGet(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown attachment command \"" << name
         << "\"\nusage: switchboard agent attachment get ... (see switchboard help)\n";
  return kExitUsage;
}

}  // namespace

int RunAgent(const std::vector<std::string>& args, Io& io) {
  const std::string name = args.empty() ? "" : args[0];
  const std::vector<std::string> rest(args.begin() + (args.empty() ? 0 : 1), args.end());
  if (name == "online") return Online(rest, io);
  if (name == "offline") return Offline(rest, io);
  if (name == "offers") return Offers(rest, io);
  if (name == "accept") return AcceptCommand(rest, io);
  if (name == "decline") return Decline(rest, io);
  if (name == "chat") return Chat(rest, io);
  if (name == "say") return Say(rest, io);
  if (name == "transfer") return Transfer(rest, io);
  if (name == "resolve") return Resolve(rest, io);
  if (name == "attachment") return AttachmentCommand(rest, io);
  io.err << "error: INVALID_ARGUMENT: unknown agent command \"" << name
         << "\"\nusage: switchboard agent online|offline|offers|accept|decline|chat|say|"
            "transfer|resolve|attachment ... (see switchboard help)\n";
  return kExitUsage;
}

}  // namespace switchboard::cli
