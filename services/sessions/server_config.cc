#include "services/sessions/server_config.h"

#include <string>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "switchboard/common/v1/common.pb.h"

namespace switchboard::sessions {

void AddServerFlags(config::FlagSet& flags, ServerConfig* config) {
  flags.Add("bot_address", &config->bot_address,
            "bot service host:port; empty: no bot, chats go straight to a human");
  flags.Add("routing_address", &config->routing_address,
            "routing service host:port; empty: sessions wait QUEUED-pending");
  flags.Add("bot_deadline", &config->bot_deadline,
            "a bot turn slower than this escalates the session to a human");
  flags.Add("routing_timeout", &config->routing_timeout,
            "deadline of calls to routing (failed calls are retried)");
  flags.Add("email_sla", &config->sessions.email_sla,
            "first-response target of EMAIL sessions");
  flags.Add("business_hours_sla_categories", &config->business_hours_sla_categories,
            "EMAIL categories whose target counts only the open hours of the EMAIL "
            "queue's schedule (routing), e.g. deposit,withdrawal; routing unreachable: "
            "the calendar target applies");
  flags.Add("email_sla_by_category", &config->email_sla_by_category,
            "per-category EMAIL targets, e.g. ACCOUNT_SECURITY=4h,DEPOSIT=24h");
  flags.Add("reopen_window", &config->sessions.reopen_window,
            "how long after resolution a session may be reopened");
  flags.Add("idle_timeout", &config->sessions.idle_timeout,
            "BOT and ASSIGNED sessions without a message this long are closed");
  flags.Add("resolved_idle_timeout", &config->sessions.resolved_idle_timeout,
            "RESOLVED sessions are closed this long after resolution");
  flags.Add("sweep_interval", &config->sweep_interval,
            "how often SLA breaches and idle sessions are checked");
  flags.Add("routing_retry_interval", &config->routing_retry_interval,
            "how often calls to routing that failed are retried");
  flags.Add("bot_threads", &config->bot_threads,
            "threads running bot turns (apart from the RPC workers)");
  flags.Add("peer_threads", &config->peer_threads,
            "threads making background calls to routing and the bot (escalations, "
            "shed bot turns), apart from the RPC workers");
  flags.Add("bot_queue", &config->bot_queue,
            "bot turns that may wait for a bot thread; beyond it a turn escalates "
            "to a human at once");
  flags.Add("closed_cache_size", &config->closed_cache_size,
            "CLOSED sessions kept in memory after a read; others come from the store");
  flags.Add("reader_connections", &config->reader_connections,
            "connections to the store (SQLite or PostgreSQL) that serve reads (lists, "
            "transcripts, key look-ups)");
  flags.Add("max_queued_writes", &config->max_queued_writes,
            "writes waiting for the group commit beyond which client writes are "
            "refused with RESOURCE_EXHAUSTED and a retry-after");
  flags.Add("stream_backlog", &config->stream_backlog,
            "events a StreamSessionEvents stream may hold unsent before it is ended "
            "with RESOURCE_EXHAUSTED (the client resumes from its last sequence)");
  flags.Add("max_streams_per_user", &config->service.max_streams_per_user,
            "open StreamSessionEvents per customer or agent");
  flags.Add("max_streams_per_staff", &config->service.max_streams_per_staff,
            "open StreamSessionEvents per supervisor or service");
  flags.Add("max_calls_per_user", &config->service.max_calls_per_user,
            "unary calls a customer or agent may have queued or running at once");
  flags.Add("max_calls_per_staff", &config->service.max_calls_per_staff,
            "unary calls a supervisor or service may have queued or running at once");
  flags.Add("reads_per_second", &config->reads_per_second,
            "ListSessions and ListMessages per second per customer or agent");
  flags.Add("reads_burst", &config->reads_burst,
            "ListSessions and ListMessages a customer or agent may make at once");
  flags.Add("staff_reads_per_second", &config->staff_reads_per_second,
            "ListSessions and ListMessages per second per supervisor or service");
  flags.Add("staff_reads_burst", &config->staff_reads_burst,
            "ListSessions and ListMessages a supervisor or service may make at once");
  flags.Add("max_attachment_mib", &config->max_attachment_mib,
            "largest file UploadAttachment accepts, in MiB");
  flags.Add("max_attachments_per_message", &config->sessions.max_attachments_per_message,
            "files one message may carry");
  flags.Add("attachment_files_per_day", &config->attachments.max_files_per_day,
            "files one customer or agent may upload in any 24 hours");
  flags.Add("attachment_mib_per_day", &config->attachment_mib_per_day,
            "MiB one customer or agent may upload in any 24 hours");
  flags.Add("upload_time_limit", &config->attachments.upload_timeout,
            "longest an upload may take, first request to last chunk");
  flags.Add("attachment_retention", &config->attachments.retention,
            "attachments of sessions closed longer ago are deleted (0: kept)");
  flags.Add("blob_store", &config->blob_store,
            "where attachments' bytes go: files (under --data_dir/attachments) or an "
            "S3-compatible endpoint https://host[:port]");
  flags.Add("s3_bucket", &config->s3_bucket, "the object store's bucket");
  flags.Add("s3_region", &config->s3_region, "the object store's region (SigV4 scope)");
  flags.Add("s3_access_key_id", &config->s3_access_key_id, "the object store's access key id");
  flags.Add("s3_secret_access_key_file", &config->s3_secret_access_key_file,
            "file holding the object store's secret access key");
  flags.Add("clamd_address", &config->clamd_address,
            "ClamAV daemon scanning uploads: unix:/path or host:port");
  flags.Add("scan_interval", &config->scan_interval,
            "how often pending attachments are sent to the scanner");
}

absl::Status CheckServerConfig(ServerConfig& config) {
  if (absl::Status s = ParseCategories(config.business_hours_sla_categories,
                                       &config.sessions.business_hours_sla_categories);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseSlaByCategory(config.email_sla_by_category,
                                          &config.sessions.email_sla_by_category);
      !s.ok()) {
    return s;
  }
  if (config.bot_threads < 1 || config.peer_threads < 1 || config.bot_queue < 0 || config.closed_cache_size < 0 ||
      config.reader_connections < 1 || config.max_queued_writes < 1 ||
      config.stream_backlog < 1 || config.service.max_streams_per_user < 1 ||
      config.service.max_streams_per_staff < 1 || config.service.max_calls_per_user < 1 ||
      config.service.max_calls_per_staff < 1 || config.reads_per_second < 1 ||
      config.reads_burst < 1 || config.staff_reads_per_second < 1 ||
      config.staff_reads_burst < 1) {
    return absl::InvalidArgumentError(
        "--bot_threads, --peer_threads, --reader_connections, --max_queued_writes, --stream_backlog and the "
        "per-caller limits must be at least 1; --bot_queue and --closed_cache_size at least 0");
  }
  config.sessions.closed_cache_size = static_cast<size_t>(config.closed_cache_size);
  config.service.max_stream_backlog = static_cast<size_t>(config.stream_backlog);
  config.service.reads_per_second = config.reads_per_second;
  config.service.reads_burst = config.reads_burst;
  config.service.staff_reads_per_second = config.staff_reads_per_second;
  config.service.staff_reads_burst = config.staff_reads_burst;
  if (config.max_attachment_mib < 1 || config.sessions.max_attachments_per_message < 1 ||
      config.attachments.max_files_per_day < 1 || config.attachment_mib_per_day < 1) {
    return absl::InvalidArgumentError(
        "--max_attachment_mib, --max_attachments_per_message, --attachment_files_per_day "
        "and --attachment_mib_per_day must be at least 1");
  }
  config.attachments.max_file_bytes = int64_t{config.max_attachment_mib} << 20;
  config.attachments.max_bytes_per_day = int64_t{config.attachment_mib_per_day} << 20;
  config.service.upload_time_limit = config.attachments.upload_timeout;
  if (config.blob_store != "files" && (config.s3_bucket.empty() ||
                                       config.s3_access_key_id.empty() ||
                                       config.s3_secret_access_key_file.empty())) {
    return absl::InvalidArgumentError(
        "--blob_store=<endpoint> needs --s3_bucket, --s3_access_key_id and "
        "--s3_secret_access_key_file");
  }
  if (config.attachments.upload_timeout <= absl::ZeroDuration() ||
      config.scan_interval <= absl::ZeroDuration() ||
      config.attachments.retention < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--upload_time_limit and --scan_interval must be above 0, --attachment_retention "
        "at least 0");
  }
  if (config.sweep_interval <= absl::ZeroDuration() ||
      config.routing_retry_interval <= absl::ZeroDuration() ||
      config.bot_deadline <= absl::ZeroDuration() ||
      config.routing_timeout <= absl::ZeroDuration() ||
      config.sessions.email_sla <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--sweep_interval, --routing_retry_interval, --bot_deadline, --routing_timeout and "
        "--email_sla must be above 0");
  }
  return absl::OkStatus();
}

absl::Status ParseSlaByCategory(absl::string_view text,
                                absl::flat_hash_map<int, absl::Duration>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    common::v1::Category category;
    absl::Duration target;
    const std::string name = absl::StrCat(
        "CATEGORY_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(kv.first)));
    if (!common::v1::Category_Parse(name, &category) ||
        category == common::v1::CATEGORY_UNSPECIFIED ||
        !absl::ParseDuration(absl::StripAsciiWhitespace(kv.second), &target) ||
        target <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--email_sla_by_category: \"", item,
          "\" is not CATEGORY=DURATION, e.g. ACCOUNT_SECURITY=4h"));
    }
    (*out)[category] = target;
  }
  return absl::OkStatus();
}

absl::Status ParseCategories(absl::string_view text, absl::flat_hash_set<int>* out) {
  for (absl::string_view item : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    common::v1::Category category;
    const std::string name =
        absl::StrCat("CATEGORY_", absl::AsciiStrToUpper(absl::StripAsciiWhitespace(item)));
    if (!common::v1::Category_Parse(name, &category) ||
        category == common::v1::CATEGORY_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--business_hours_sla_categories: \"", item,
          "\" is not a category, e.g. deposit,withdrawal"));
    }
    out->insert(category);
  }
  return absl::OkStatus();
}

}  // namespace switchboard::sessions
